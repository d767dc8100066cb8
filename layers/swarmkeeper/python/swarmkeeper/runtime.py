"""Wires settings, boto3 clients, adapters and flows once per Lambda container (lazily, on the first
invocation, so a test can put its mocks in place first; ``reset`` starts over)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from swarmkeeper.adapters.bus import EventBus
from swarmkeeper.adapters.clients import AwsClients
from swarmkeeper.adapters.commands import RunCommands
from swarmkeeper.adapters.instances import Ec2Instances
from swarmkeeper.adapters.lifecycle import LifecycleActions
from swarmkeeper.adapters.outputs import CommandOutputs
from swarmkeeper.adapters.parameters import ClusterParameters
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.adapters.steps import StepQueue
from swarmkeeper.domain.join import JoinPolicy
from swarmkeeper.domain.leave import LeavePolicy
from swarmkeeper.domain.models import ClusterIdentity
from swarmkeeper.domain.reconcile import ReconcileSettings
from swarmkeeper.flows.commands import CommandStatusRouter
from swarmkeeper.flows.join import JoinAdapters, JoinFlow
from swarmkeeper.flows.leave import LeaveAdapters, LeaveFlow
from swarmkeeper.flows.reconcile import Reconcile, ReconcileAdapters
from swarmkeeper.flows.rotation import TokenRotation
from swarmkeeper.settings import RuntimeSettings

IDEMPOTENCY_SECONDS = 3600


@dataclass
class Runtime:
    settings: RuntimeSettings
    clients: AwsClients
    join: JoinFlow
    rotation: TokenRotation
    commands: CommandStatusRouter
    leave: LeaveFlow
    reconcile: Reconcile
    _once: dict[tuple[Callable[..., Any], str], Callable[..., Any]] = field(default_factory=dict)
    _configs: list[IdempotencyConfig] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: RuntimeSettings,
        session: boto3.session.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Runtime:
        clients = AwsClients(session)
        instances = Ec2Instances(clients.ec2)
        commands = RunCommands(clients.ssm)
        parameters = ClusterParameters(clients.ssm, settings.parameter_prefix)
        state = StateTable(clients.dynamodb, settings.state_table_name)
        bus = EventBus(clients.events, settings.event_bus_name)
        lifecycle = LifecycleActions(clients.autoscaling)
        steps = StepQueue(clients.sqs, settings.step_queue_url)
        identity = ClusterIdentity(
            settings.cluster_name, settings.manager_group_name, settings.worker_group_name
        )
        policy = JoinPolicy(identity=identity, agent_wait_seconds=settings.agent_wait_seconds)
        join = JoinFlow(
            settings,
            policy,
            JoinAdapters(
                instances=instances,
                lifecycle=lifecycle,
                commands=commands,
                parameters=parameters,
                state=state,
                steps=steps,
                bus=bus,
            ),
            clock,
        )
        rotation = TokenRotation(settings, instances, commands, parameters, state, bus, clock)
        reconcile = Reconcile(
            settings,
            ReconcileAdapters(
                instances=instances,
                lifecycle=lifecycle,
                commands=commands,
                outputs=CommandOutputs(clients.s3, settings.command_output_bucket),
                state=state,
                bus=bus,
                steps=steps,
            ),
            clock,
            ReconcileSettings(down_grace=timedelta(seconds=settings.reconcile_down_grace_seconds)),
        )
        leave = LeaveFlow(
            settings,
            LeavePolicy(
                identity=identity,
                drain_timeout_seconds=settings.drain_timeout_seconds,
                parameter_prefix=settings.parameter_prefix,
                region=settings.region,
                rebalance_drain_workers=settings.rebalance_drain_workers,
            ),
            LeaveAdapters(instances, lifecycle, commands, state, steps, bus),
            lambda correlation_id, leaving: reconcile.start(
                correlation_id, "fresh view for a manager removal", exclude=(leaving,)
            ),
            clock,
        )
        router = CommandStatusRouter(settings, join, rotation, leave, reconcile)
        return cls(settings, clients, join, rotation, router, leave, reconcile)

    def once(self, fn: Callable[..., Any], key_jmespath: str = "id") -> Callable[..., Any]:
        """``fn(event=...)`` made idempotent (Powertools) on ``key_jmespath`` of the event, with its
        records in the state table: a duplicate delivery gets the first result without running."""
        key = (fn, key_jmespath)
        if key not in self._once:
            config = IdempotencyConfig(
                event_key_jmespath=key_jmespath,
                expires_after_seconds=IDEMPOTENCY_SECONDS,
                raise_on_no_idempotency_key=False,
            )
            self._configs.append(config)
            # One persistence layer per wrapper: a layer takes the first config it sees and keeps it.
            persistence = DynamoDBPersistenceLayer(
                table_name=self.settings.state_table_name,
                key_attr="pk",
                expiry_attr="expires_at",
                boto3_client=self.clients.dynamodb,
            )
            self._once[key] = idempotent_function(
                fn, data_keyword_argument="event", persistence_store=persistence, config=config
            )
        return self._once[key]

    def register_context(self, context: Any) -> None:
        for config in self._configs:
            config.register_lambda_context(context)


_session: boto3.session.Session | None = None
_clock: Callable[[], float] = time.time
_runtime: Runtime | None = None


def get(settings: RuntimeSettings) -> Runtime:
    global _runtime
    if _runtime is None or _runtime.settings != settings:
        _runtime = Runtime.build(settings, _session, _clock)
    return _runtime


def reset(session: boto3.session.Session | None = None, clock: Callable[[], float] = time.time) -> None:
    """Forget the wired runtime; the next ``get`` builds one on ``session`` with ``clock`` (tests)."""
    global _runtime, _session, _clock
    _runtime, _session, _clock = None, session, clock
