"""The join flow: an Auto Scaling instance becomes a Ready swarm node before it goes InService.

Entry points (one per kind of input): ``request`` (launch lifecycle action / `running` fallback),
``step`` (delayed re-delivery from the step queue), ``agent_registered`` (the agent-ready
association's status event: the SSM agent is up), ``command_finished`` (SSM status change of a
bootstrap-node or verify-node command). Each gathers facts, asks ``domain.join.decide`` and executes
the actions in order.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from aws_lambda_powertools import Logger

from swarmkeeper.adapters.bus import EventBus
from swarmkeeper.adapters.commands import AgentNotRegistered, Invocation, RunCommands
from swarmkeeper.adapters.instances import Ec2Instances
from swarmkeeper.adapters.lifecycle import LifecycleActions
from swarmkeeper.adapters.parameters import ClusterParameters
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.adapters.steps import StepQueue
from swarmkeeper.domain import outputs
from swarmkeeper.domain.errors import SwarmkeeperError
from swarmkeeper.domain.join import (
    AcquireInitLock,
    Action,
    AgentNotReady,
    AgentRegistered,
    CommandFinished,
    CompleteLifecycle,
    CreateOp,
    Decision,
    JoinPolicy,
    JoinRequested,
    Publish,
    RecordNode,
    ReleaseInitLock,
    RunBootstrap,
    RunVerify,
    SaveOp,
    ScheduleStep,
    StepDue,
    Stimulus,
    TagNode,
    decide,
)
from swarmkeeper.domain.models import ClusterState, InstanceFacts, JoinOp, LifecycleResult, Role, Stage
from swarmkeeper.flows.managers import joined_managers_healthy_first
from swarmkeeper.settings import RuntimeSettings

logger = Logger(child=True)

BOOTSTRAP = "bootstrap-node"
VERIFY = "verify-node"
MAX_ROUNDS = 4  # decide -> execute -> (lock taken / agent not ready) -> decide again
_COMMENT = re.compile(r"^swarmkeeper join (i-[0-9a-f]+)$")


class JoinNotSettled(SwarmkeeperError):
    """The decision kept asking for fresh facts; raised so the event is retried."""


@dataclass(frozen=True)
class _Redecide(Exception):
    stimulus: Stimulus


@dataclass(frozen=True)
class _Stop(Exception):
    reason: str


def join_comment(instance_id: str) -> str:
    return f"swarmkeeper join {instance_id}"


def joining_instance(comment: str) -> str | None:
    m = _COMMENT.match(comment)
    return m.group(1) if m else None


@dataclass
class JoinAdapters:
    instances: Ec2Instances
    lifecycle: LifecycleActions
    commands: RunCommands
    parameters: ClusterParameters
    state: StateTable
    steps: StepQueue
    bus: EventBus


class JoinFlow:
    def __init__(
        self,
        settings: RuntimeSettings,
        policy: JoinPolicy,
        adapters: JoinAdapters,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.policy = policy
        self.a = adapters
        self.clock = clock

    # --- entry points ----------------------------------------------------------------------

    def request(self, stimulus: JoinRequested) -> Decision:
        return self._run(stimulus)

    def step(self, stimulus: StepDue) -> Decision:
        return self._run(stimulus)

    def agent_registered(self, stimulus: AgentRegistered) -> Decision:
        return self._run(stimulus)

    def command_finished(
        self, action: str, command_id: str, instance_id: str, status: str, correlation_id: str
    ) -> Decision:
        """A terminal status of a bootstrap-node / verify-node command (``instance_id``: where it ran)."""
        invocation = self.a.commands.invocation(command_id, instance_id)
        joining = (joining_instance(invocation.comment) if invocation else None) or (
            instance_id if action == BOOTSTRAP else None
        )
        if joining is None:
            return Decision("ignore", f"{action} command {command_id} was not sent by the join flow")
        return self._run(_finished(action, command_id, joining, status, correlation_id, invocation))

    # --- loop ------------------------------------------------------------------------------

    def _run(self, stimulus: Stimulus) -> Decision:
        for _ in range(MAX_ROUNDS):
            instance = self.a.instances.describe(stimulus.instance_id)
            op = self.a.state.get_op(stimulus.instance_id)
            cluster = self._cluster_state(stimulus, op)
            decision = decide(stimulus, instance, cluster, op, self.clock(), self.policy)
            logger.info(
                "join decision",
                extra={
                    "instance_id": stimulus.instance_id,
                    "stimulus": type(stimulus).__name__,
                    "stage": str(op.stage) if op else None,
                    "outcome": decision.outcome,
                    "reason": outputs.redact(decision.reason),
                    "actions": [type(a).__name__ for a in decision.actions],
                },
            )
            try:
                for action in decision.actions:
                    self._execute(action, instance)
            except _Redecide as again:
                stimulus = again.stimulus
                continue
            except _Stop as stop:
                logger.info(
                    "join stopped", extra={"instance_id": stimulus.instance_id, "reason": stop.reason}
                )
                return Decision("stopped", stop.reason)
            return decision
        raise JoinNotSettled(f"join of {stimulus.instance_id} did not settle after {MAX_ROUNDS} rounds")

    def _cluster_state(self, stimulus: Stimulus, op: JoinOp | None) -> ClusterState:
        """Only the facts the decision can use for this op's stage (saves calls)."""
        if (op is None and isinstance(stimulus, JoinRequested)) or (
            op is not None and op.stage is Stage.WAITING
        ):
            return ClusterState(
                initialized=self.a.parameters.cluster_id() is not None, init_lock=self.a.state.get_lock()
            )
        if (
            op is not None
            and op.role is Role.WORKER
            and op.stage in (Stage.BOOTSTRAPPING, Stage.AWAITING_VERIFIER)
            and not isinstance(stimulus, JoinRequested)
        ):
            return ClusterState(initialized=True, managers=self._managers_by_health())
        return ClusterState()

    def _managers_by_health(self) -> tuple[str, ...]:
        return joined_managers_healthy_first(self.a.instances, self.a.state, self.settings.manager_group_name)

    # --- actions ---------------------------------------------------------------------------

    def _execute(self, action: Action, instance: InstanceFacts | None) -> None:
        s, a = self.settings, self.a
        now = self.clock()
        match action:
            case CreateOp(op=new):
                if not a.state.create_op(new):
                    raise _Stop("a join for this instance was started by another event")
            case SaveOp(op=new):
                if not a.state.save_op(new):
                    raise _Stop(f"join moved on elsewhere (expected version {new.version - 1})")
            case AcquireInitLock(holder=holder, expires_at=expires_at):
                got = a.state.acquire_lock(holder, now, expires_at)
                logger.info("init lock", extra={"instance_id": holder, "acquired": got})
                current = a.state.get_op(holder)
                raise _Redecide(StepDue(holder, current.version if current else 0))
            case ReleaseInitLock(holder=holder):
                a.state.release_lock(holder)
            case RunBootstrap(mode=mode, then=then):
                if instance is None or not instance.private_ip:
                    raise _Stop("instance has no private address")
                params = {
                    "Role": str(then.role),
                    "Mode": str(mode),
                    "AdvertiseAddress": instance.private_ip,
                    "ParameterPrefix": s.parameter_prefix,
                    "KmsKeyId": s.kms_key_id,
                    "Region": s.region,
                }
                if s.docker_version:  # empty: the document's default (the distribution's package)
                    params["DockerVersion"] = s.docker_version
                sending = self._save_before_send(then)
                try:
                    command_id = a.commands.send(
                        self._document(BOOTSTRAP), then.instance_id, params, join_comment(then.instance_id)
                    )
                except AgentNotRegistered as err:
                    # Back to waiting, so the decision sees the agent is not ready yet.
                    waiting = replace(sending, stage=Stage.WAITING, version=sending.version + 1)
                    self._execute(SaveOp(waiting), instance)
                    raise _Redecide(AgentNotReady(then.instance_id, waiting.version)) from err
                self._record_sent(sending, command_id)
            case RunVerify(target=target, node_id=node_id, then=then):
                params = {"NodeId": node_id, "Role": str(then.role), "TimeoutSeconds": "60"}
                sending = self._save_before_send(then)
                command_id = a.commands.send(
                    self._document(VERIFY), target, params, join_comment(then.instance_id)
                )
                self._record_sent(sending, command_id)
            case ScheduleStep(step=step, delay_seconds=delay):
                a.steps.schedule(step, delay)
            case CompleteLifecycle(instance_id=iid, group=group, result=result):
                self._complete(iid, group or (instance.group if instance else None), result)
            case TagNode(instance_id=iid, node_id=node_id):
                a.instances.tag_node_id(iid, node_id)
            case RecordNode(instance_id=iid, node_id=node_id, role=role, verifier=verifier):
                a.state.record_node(iid, node_id, str(role), now)
                if verifier and verifier != iid:
                    a.state.mark_healthy(verifier, now)
            case Publish(event=event):
                a.bus.publish(event)
            case _:
                raise TypeError(f"unknown action {action!r}")

    def _save_before_send(self, then: JoinOp) -> JoinOp:
        """Save the command's stage first: its status event may arrive before SendCommand returns."""
        sending = replace(then, command_id="", waiting_for="")
        self._execute(SaveOp(sending), None)
        return sending

    def _record_sent(self, sending: JoinOp, command_id: str) -> None:
        recorded = replace(sending, command_id=command_id, version=sending.version + 1)
        if not self.a.state.save_op(recorded):
            # The command's status event was handled first and moved the join on: nothing to record.
            logger.info("command finished before its id was recorded", extra={"command_id": command_id})

    def _complete(self, instance_id: str, group: str | None, result: LifecycleResult) -> None:
        completed = False
        if group:
            completed = self.a.lifecycle.complete(
                group, self.settings.launch_hook_name, instance_id, str(result)
            )
        logger.info(
            "lifecycle action",
            extra={"instance_id": instance_id, "result": str(result), "completed": completed, "group": group},
        )
        if not completed and result is LifecycleResult.ABANDON and group:
            # No pending action (running fallback, or the hook timed out): do not let it stay InService.
            self.a.lifecycle.mark_unhealthy(instance_id)

    def _document(self, action: str) -> str:
        return f"{self.settings.document_prefix}{action}"


def _finished(
    action: str, command_id: str, joining: str, status: str, correlation_id: str, inv: Invocation | None
) -> CommandFinished:
    stdout = inv.stdout if inv else ""
    stderr = inv.stderr if inv else ""
    return CommandFinished(
        instance_id=joining,
        command_id=command_id,
        action=action,
        status=status,
        correlation_id=correlation_id,
        bootstrap=outputs.parse_bootstrap(stdout) if action == BOOTSTRAP else None,
        verify=outputs.parse_verify(stdout) if action == VERIFY else None,
        bad_join_token=outputs.says_bad_join_token(stderr + "\n" + stdout),
        detail="" if status == "Success" else outputs.excerpt(stderr or stdout),
    )
