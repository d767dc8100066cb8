"""Wires settings, boto3 clients, adapters and flows once per Lambda container.

A function names the flows it uses (``load``): their modules are imported right then, while the
function's module is imported (Lambda's init phase), and no other flow's are. The objects themselves
are built on first use, in the first invocation that needs them, so a test can put its mocks in place
first (``reset`` starts over) and a function creates only the boto3 clients its flows call.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

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
from swarmkeeper.adapters.parameters import ClusterParameters
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.adapters.steps import StepQueue
from swarmkeeper.domain.models import ClusterIdentity
from swarmkeeper.settings import RuntimeSettings

if TYPE_CHECKING:
    from swarmkeeper.adapters.load_balancer import LoadBalancerTargets
    from swarmkeeper.flows.commands import CommandStatusRouter
    from swarmkeeper.flows.join import JoinFlow
    from swarmkeeper.flows.leave import LeaveFlow
    from swarmkeeper.flows.listeners import ListenersFlow
    from swarmkeeper.flows.reconcile import Reconcile
    from swarmkeeper.flows.rotation import TokenRotation
    from swarmkeeper.flows.stacks import StackFlow

IDEMPOTENCY_SECONDS = 3600

# The flows, by the name of the Runtime attribute that holds each, and the modules it is built from.
JOIN, LEAVE, RECONCILE, ROTATION, STACKS = "join", "leave", "reconcile", "rotation", "stacks"
COMMANDS = "commands"
_MODULES = {
    JOIN: ("swarmkeeper.flows.join",),
    # before a manager removal the exit flow asks reconcile for a fresh swarm view
    LEAVE: ("swarmkeeper.flows.leave", "swarmkeeper.flows.reconcile", "swarmkeeper.flows.listeners"),
    RECONCILE: ("swarmkeeper.flows.reconcile", "swarmkeeper.flows.listeners"),
    ROTATION: ("swarmkeeper.flows.rotation",),
    STACKS: ("swarmkeeper.flows.stacks",),
    # routes a command's status to whichever flow sent it: imports all of them
    COMMANDS: ("swarmkeeper.flows.commands", "swarmkeeper.flows.listeners"),
}


def load(*flows: str) -> None:
    """Import what ``flows`` are built from, now: called while a function's module is imported."""
    for flow in flows:
        for module in _MODULES[flow]:
            importlib.import_module(module)


class Runtime:
    """One container's adapters and flows, each built when first used (the flows' modules are
    imported by then: see ``load``)."""

    def __init__(self, settings: RuntimeSettings, clients: AwsClients, clock: Callable[[], float]):
        self.settings = settings
        self.clients = clients
        self.clock = clock
        self._once: dict[tuple[Callable[..., Any], str], Callable[..., Any]] = {}
        self._configs: list[IdempotencyConfig] = []

    @classmethod
    def build(
        cls,
        settings: RuntimeSettings,
        session: boto3.session.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Runtime:
        return cls(settings, AwsClients(session), clock)

    # --- adapters ---------------------------------------------------------------------------

    @cached_property
    def instances(self) -> Ec2Instances:
        return Ec2Instances(self.clients.ec2)

    @cached_property
    def run_commands(self) -> RunCommands:
        return RunCommands(self.clients.ssm)

    @cached_property
    def parameters(self) -> ClusterParameters:
        return ClusterParameters(self.clients.ssm, self.settings.parameter_prefix)

    @cached_property
    def state(self) -> StateTable:
        return StateTable(self.clients.dynamodb, self.settings.state_table_name)

    @cached_property
    def bus(self) -> EventBus:
        return EventBus(self.clients.events, self.settings.event_bus_name)

    @cached_property
    def lifecycle(self) -> LifecycleActions:
        return LifecycleActions(self.clients.autoscaling)

    @cached_property
    def steps(self) -> StepQueue:
        return StepQueue(self.clients.sqs, self.settings.step_queue_url)

    @cached_property
    def identity(self) -> ClusterIdentity:
        s = self.settings
        return ClusterIdentity(s.cluster_name, s.manager_group_name, s.worker_group_name)

    # --- flows (their imports are here only so that a flow no function loaded stays unimported) --

    @cached_property
    def join(self) -> JoinFlow:
        from swarmkeeper.domain.join_types import JoinPolicy
        from swarmkeeper.flows.join import JoinAdapters, JoinFlow

        policy = JoinPolicy(identity=self.identity, agent_wait_seconds=self.settings.agent_wait_seconds)
        adapters = JoinAdapters(
            instances=self.instances,
            lifecycle=self.lifecycle,
            commands=self.run_commands,
            parameters=self.parameters,
            state=self.state,
            steps=self.steps,
            bus=self.bus,
        )
        return JoinFlow(self.settings, policy, adapters, self.clock)

    @cached_property
    def rotation(self) -> TokenRotation:
        from swarmkeeper.flows.rotation import TokenRotation

        return TokenRotation(
            self.settings,
            self.instances,
            self.run_commands,
            self.parameters,
            self.state,
            self.bus,
            self.clock,
        )

    @cached_property
    def reconcile(self) -> Reconcile:
        from swarmkeeper.adapters.outputs import CommandOutputs
        from swarmkeeper.domain.reconcile import ReconcileSettings
        from swarmkeeper.flows.reconcile import Reconcile, ReconcileAdapters

        adapters = ReconcileAdapters(
            instances=self.instances,
            lifecycle=self.lifecycle,
            commands=self.run_commands,
            outputs=CommandOutputs(self.clients.s3, self.settings.command_output_bucket),
            state=self.state,
            bus=self.bus,
            steps=self.steps,
        )
        grace = timedelta(seconds=self.settings.reconcile_down_grace_seconds)
        listeners = self.listeners
        follow = listeners.follow if listeners is not None else None
        return Reconcile(self.settings, adapters, self.clock, ReconcileSettings(down_grace=grace), follow)

    @cached_property
    def load_balancer(self) -> LoadBalancerTargets | None:
        s = self.settings
        if s.load_balancer is None:
            return None
        from swarmkeeper.adapters.load_balancer import LoadBalancerTargets

        clients = self.clients
        return LoadBalancerTargets(
            clients.elbv2,
            clients.autoscaling,
            clients.ec2,
            s.load_balancer,
            s.cluster_name,
            s.worker_group_name,
        )

    @cached_property
    def listeners(self) -> ListenersFlow | None:
        if self.load_balancer is None:
            return None
        from swarmkeeper.adapters.rejections import PublishedRejections
        from swarmkeeper.domain.listeners import ListenerPolicy
        from swarmkeeper.flows.listeners import ListenersFlow

        policy = ListenerPolicy(self.settings.cluster_name, self.settings.region)
        return ListenersFlow(policy, self.load_balancer, self.bus, PublishedRejections(self.state))

    @cached_property
    def leave(self) -> LeaveFlow:
        from swarmkeeper.domain.leave_types import LeavePolicy
        from swarmkeeper.flows.leave import LeaveAdapters, LeaveFlow

        s = self.settings
        policy = LeavePolicy(
            identity=self.identity,
            drain_timeout_seconds=s.drain_timeout_seconds,
            parameter_prefix=s.parameter_prefix,
            region=s.region,
            rebalance_drain_workers=s.rebalance_drain_workers,
        )
        adapters = LeaveAdapters(
            self.instances,
            self.lifecycle,
            self.run_commands,
            self.state,
            self.steps,
            self.bus,
            self.load_balancer,
        )
        return LeaveFlow(
            s,
            policy,
            adapters,
            lambda correlation_id, leaving: self.reconcile.start(
                correlation_id, "fresh view for a manager removal", exclude=(leaving,)
            ),
            self.clock,
        )

    @cached_property
    def stacks(self) -> StackFlow:
        from swarmkeeper.adapters.stack_files import StackFiles
        from swarmkeeper.adapters.stack_records import StackRecords
        from swarmkeeper.flows.stacks import StackAdapters, StackFlow

        adapters = StackAdapters(
            instances=self.instances,
            commands=self.run_commands,
            records=StackRecords(self.state),
            files=StackFiles(self.clients.s3, self.settings.stacks_bucket),
            state=self.state,
            bus=self.bus,
        )
        return StackFlow(self.settings, adapters, self.clock)

    @cached_property
    def commands(self) -> CommandStatusRouter:
        from swarmkeeper.flows.commands import CommandStatusRouter

        return CommandStatusRouter(
            self.settings, self.join, self.rotation, self.leave, self.reconcile, self.stacks
        )

    # --- idempotency ------------------------------------------------------------------------

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
