"""The token-rotation flow: gather the facts, ask ``domain.rotation.decide_rotation``, execute.

Entry points: ``start`` (the schedule, or on demand) and ``finished`` (a rotate-tokens status). A
manager whose SSM agent is not registered is skipped: the next round decides on the next manager.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from aws_lambda_powertools import Logger

from swarmkeeper.adapters.bus import EventBus
from swarmkeeper.adapters.commands import AgentNotRegistered, RunCommands
from swarmkeeper.adapters.instances import Ec2Instances
from swarmkeeper.adapters.parameters import ClusterParameters
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.domain import outputs
from swarmkeeper.domain.errors import SwarmkeeperError
from swarmkeeper.domain.kernel import NON_TERMINAL, Outcome, Publish
from swarmkeeper.domain.models import RotationOp
from swarmkeeper.domain.rotation import (
    ROTATE,
    EndRotation,
    LogFailure,
    MarkHealthy,
    RotationAction,
    RotationDecision,
    RotationFacts,
    RotationFinished,
    RotationNotDelivered,
    RotationPolicy,
    RotationRequested,
    RotationStimulus,
    SendRotate,
    StartRotation,
    decide_rotation,
)
from swarmkeeper.flows.flow import Known, Redecide, Stop, run
from swarmkeeper.flows.managers import joined_managers_healthy_first
from swarmkeeper.settings import RuntimeSettings

logger = Logger(child=True)

COMMENT = "swarmkeeper rotate-tokens"
_CLUSTER, _MANAGERS = "cluster", "managers"  # Known


class RotationNotSettled(SwarmkeeperError):
    """Every round asked for another manager; raised so the event is retried."""


class TokenRotation:
    name = "rotation"
    max_rounds = 16  # more managers than a manager group ever holds: each may refuse delivery
    not_settled = RotationNotSettled

    def __init__(
        self,
        settings: RuntimeSettings,
        instances: Ec2Instances,
        commands: RunCommands,
        parameters: ClusterParameters,
        state: StateTable,
        bus: EventBus,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.instances = instances
        self.commands = commands
        self.parameters = parameters
        self.state = state
        self.bus = bus
        self.clock = clock
        self.policy = RotationPolicy(settings.cluster_name)

    # --- entry points ----------------------------------------------------------------------

    def start(self, correlation_id: str) -> RotationDecision:
        return run(self, RotationRequested(correlation_id))

    def finished(self, command_id: str, instance_id: str, status: str) -> RotationDecision:
        return run(self, RotationFinished(command_id, instance_id, status))

    # --- the flow --------------------------------------------------------------------------

    def gather(self, stimulus: RotationStimulus, known: Known) -> RotationFacts:
        if isinstance(stimulus, RotationFinished):
            return self._finished_facts(stimulus)
        exists = known.get(_CLUSTER, lambda: self.parameters.cluster_id() is not None)
        if not exists:
            return RotationFacts()
        managers = known.get(
            _MANAGERS,
            lambda: joined_managers_healthy_first(
                self.instances, self.state, self.settings.manager_group_name
            ),
        )
        return RotationFacts(cluster_exists=True, managers=managers)

    def decide(self, stimulus: RotationStimulus, facts: RotationFacts) -> RotationDecision:
        return decide_rotation(stimulus, facts, self.clock(), self.policy)

    def execute(self, action: RotationAction, facts: RotationFacts, known: Known) -> None:
        match action:
            case StartRotation(op=pending):
                if not self.state.start_rotation(pending, self.clock()):
                    raise Stop(Outcome.IGNORE, "a token rotation is already in flight")
            case SendRotate(target=target, op=pending, tried=tried):
                self._send(target, pending, tried)
            case EndRotation(command_id=command_id):
                self.state.end_rotation(command_id)
            case MarkHealthy(instance_id=instance_id):
                self.state.mark_healthy(instance_id, self.clock())
            case LogFailure(instance_id=instance_id, reason=reason):
                logger.error("token rotation failed", extra={"instance_id": instance_id, "reason": reason})
            case Publish(event=event):
                self.bus.publish(event)
            case _:
                raise TypeError(f"unknown action {action!r}")

    # --- helpers ---------------------------------------------------------------------------

    def _finished_facts(self, stimulus: RotationFinished) -> RotationFacts:
        if stimulus.status in NON_TERMINAL:
            return RotationFacts()
        rotation = self.state.get_rotation()
        if rotation is None or rotation.command_id != stimulus.command_id:
            return RotationFacts(op=rotation)
        invocation = self.commands.invocation(stimulus.command_id, stimulus.instance_id)
        stdout = invocation.stdout if invocation else ""
        detail = outputs.excerpt((invocation.stderr or invocation.stdout) if invocation else "")
        return RotationFacts(op=rotation, rotated=tuple(outputs.parse_rotated(stdout)), detail=detail)

    def _send(self, target: str, pending: RotationOp, tried: tuple[str, ...]) -> None:
        s = self.settings
        params = {"ParameterPrefix": s.parameter_prefix, "KmsKeyId": s.kms_key_id, "Region": s.region}
        try:
            command_id = self.commands.send(f"{s.document_prefix}{ROTATE}", target, params, COMMENT)
        except AgentNotRegistered as err:
            logger.warning(
                "manager's SSM agent is not registered; trying the next", extra={"instance_id": target}
            )
            raise Redecide(RotationNotDelivered(pending, (*tried, target))) from err
        node = self.instances.describe(target)
        node_id = (node.node_id if node else None) or ""
        self.state.save_rotation(replace(pending, command_id=command_id, target=target, node_id=node_id))
