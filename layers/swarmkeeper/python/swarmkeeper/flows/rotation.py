"""Join-token rotation: `docker swarm join-token --rotate` (both roles) on a healthy joined manager,
whose script writes the new tokens to Parameter Store itself. The Lambda only sends the command and,
on its Success, publishes Join Tokens Rotated. One rotation at a time (``op#rotate-tokens``).

Joins in flight stay safe: bootstrap-node reads its token when it runs, and a join that fails because
the token was rotated under it is run once more by the join flow (see ``domain.join``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from aws_lambda_powertools import Logger

from swarmkeeper.adapters.bus import EventBus
from swarmkeeper.adapters.commands import AgentNotRegistered, RunCommands
from swarmkeeper.adapters.instances import Ec2Instances
from swarmkeeper.adapters.parameters import ClusterParameters
from swarmkeeper.adapters.state import RotationOp, StateTable
from swarmkeeper.domain import outputs
from swarmkeeper.domain.kernel import NON_TERMINAL, BusEvent, Decision, Outcome
from swarmkeeper.flows.managers import joined_managers_healthy_first
from swarmkeeper.settings import RuntimeSettings

logger = Logger(child=True)

ROTATE = "rotate-tokens"
COMMENT = "swarmkeeper rotate-tokens"
JOIN_TOKENS_ROTATED = "Join Tokens Rotated"
ROTATION_TTL_SECONDS = 1200  # longer than the command's delivery + execution timeouts


class TokenRotation:
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

    def start(self, correlation_id: str) -> Decision:
        if self.parameters.cluster_id() is None:
            return Decision(Outcome.IGNORE, "no swarm yet: nothing to rotate")
        managers = joined_managers_healthy_first(self.instances, self.state, self.settings.manager_group_name)
        if not managers:
            return Decision(Outcome.IGNORE, "no joined manager to rotate the tokens on")
        now = self.clock()
        pending = RotationOp("", "", "", correlation_id, now + ROTATION_TTL_SECONDS)
        if not self.state.start_rotation(pending, now):
            return Decision(Outcome.IGNORE, "a token rotation is already in flight")
        params = {
            "ParameterPrefix": self.settings.parameter_prefix,
            "KmsKeyId": self.settings.kms_key_id,
            "Region": self.settings.region,
        }
        for target in managers:
            try:
                command_id = self.commands.send(
                    f"{self.settings.document_prefix}{ROTATE}", target, params, COMMENT
                )
            except AgentNotRegistered:
                logger.warning(
                    "manager's SSM agent is not registered; trying the next", extra={"instance_id": target}
                )
                continue
            node = self.instances.describe(target)
            node_id = (node.node_id if node else None) or ""
            self.state.save_rotation(
                RotationOp(command_id, target, node_id, correlation_id, pending.expires_at)
            )
            return Decision(Outcome.ROTATE, f"rotate-tokens sent to {target}")
        self.state.end_rotation("")
        return Decision(Outcome.IGNORE, "no manager could take the rotate-tokens command")

    def finished(self, command_id: str, instance_id: str, status: str) -> Decision:
        if status in NON_TERMINAL:
            return Decision(Outcome.IGNORE, f"command {status}")
        rotation = self.state.get_rotation()
        if rotation is None or rotation.command_id != command_id:
            return Decision(Outcome.IGNORE, f"stale rotate-tokens command {command_id}")
        invocation = self.commands.invocation(command_id, instance_id)
        stdout = invocation.stdout if invocation else ""
        rotated = outputs.parse_rotated(stdout)
        self.state.end_rotation(command_id)
        if status == "Success" and {"worker", "manager"} <= set(rotated):
            self.state.mark_healthy(instance_id, self.clock())
            self.bus.publish(
                BusEvent(
                    detail_type=JOIN_TOKENS_ROTATED,
                    cluster=self.settings.cluster_name,
                    instance_id=instance_id,
                    node_id=rotation.node_id,
                    role="manager",
                    reason="rotated " + ",".join(rotated),
                    correlation_id=rotation.correlation_id,
                )
            )
            return Decision(Outcome.ROTATED, "rotated " + ",".join(rotated))
        detail = outputs.excerpt((invocation.stderr or invocation.stdout) if invocation else "")
        reason = f"rotate-tokens {status}: {detail}" if detail else f"rotate-tokens {status}"
        logger.error("token rotation failed", extra={"instance_id": instance_id, "reason": reason})
        return Decision(Outcome.ROTATION_FAILED, reason)
