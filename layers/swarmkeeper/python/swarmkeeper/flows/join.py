"""The join flow: an Auto Scaling instance becomes a Ready swarm node before it goes InService.

Entry points (one per kind of input): ``request`` (launch lifecycle action / `running` fallback),
``step`` (delayed re-delivery from the step queue), ``agent_registered`` (the agent-ready
association's status event: the SSM agent is up), ``command_finished`` (SSM status change of a
bootstrap-node or verify-node command). Each runs the ``flows.flow`` loop: gather facts, ask
``domain.join.decide_join``, execute the actions in order. Two actions send it back for another decision
(``AcquireInitLock``; ``RunBootstrap`` refused because the SSM agent has not registered); that
decision reuses the instance, the op as this run saved it and the cluster facts, except after a
write of the init lock: then whether the cluster exists and who holds the lock are read again. A
command's result whose op write loses a race is decided again on the op as stored: when a leave took
the op over, the result is the leave's (``flows.commands`` hands a bootstrap-node result to it).
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
from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.join import decide_join, out_of_the_pool_over, past_the_leave, waits_for_the_swarm
from swarmkeeper.domain.join_types import (
    AcquireInitLock,
    AgentNotReady,
    AgentRegistered,
    CompleteLifecycle,
    CreateJoin,
    JoinAction,
    JoinCommandFinished,
    JoinDecision,
    JoinPolicy,
    JoinRequested,
    JoinStepDue,
    JoinStimulus,
    RecordNode,
    ReleaseInitLock,
    RunBootstrap,
    RunVerify,
    SaveJoin,
    ScheduleJoinStep,
    TagNode,
    WakeWaitingJoins,
)
from swarmkeeper.domain.kernel import Decision, Outcome, Publish
from swarmkeeper.domain.leave_types import LeaveStepDue
from swarmkeeper.domain.manager_removal import waits_for_a_replacement
from swarmkeeper.domain.models import (
    ClusterState,
    InstanceFacts,
    JoinOp,
    LeaveOp,
    LifecycleResult,
    OpKind,
    Role,
    Stage,
)
from swarmkeeper.flows.flow import Known, Redecide, Stop, run
from swarmkeeper.flows.managers import joined_managers_healthy_first, removals_waiting
from swarmkeeper.flows.sending import save_send_record
from swarmkeeper.settings import RuntimeSettings

logger = Logger(child=True)

BOOTSTRAP = "bootstrap-node"
VERIFY = "verify-node"
MAX_ROUNDS = 4  # decide -> execute -> (lock taken / agent not ready) -> decide again
_COMMENT = re.compile(r"swarmkeeper join (i-[0-9a-f]+)")
_SWARM = "swarm"  # Known: whether the cluster exists and the init lock, read together


class JoinNotSettled(SwarmkeeperError):
    """The decision kept asking for fresh facts; raised so the event is retried."""


@frozen
class _Facts:
    stimulus: JoinStimulus
    instance: InstanceFacts | None
    cluster: ClusterState
    op: JoinOp | LeaveOp | None  # a leave op: the instance's leave began (or, for a launch out of
    # the warm pool, the closed leave that sent it there)


def join_comment(instance_id: str) -> str:
    return f"swarmkeeper join {instance_id}"


def joining_instance(comment: str) -> str | None:
    m = _COMMENT.fullmatch(comment)
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
    name = "join"
    max_rounds = MAX_ROUNDS
    not_settled = JoinNotSettled

    def __init__(
        self,
        settings: RuntimeSettings,
        policy: JoinPolicy,
        adapters: JoinAdapters,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.policy = policy
        self.adapters = adapters
        self.clock = clock

    # --- entry points ----------------------------------------------------------------------

    def request(self, stimulus: JoinRequested) -> JoinDecision:
        return self._run(stimulus)

    def step(self, stimulus: JoinStepDue) -> JoinDecision:
        return self._run(stimulus)

    def agent_registered(self, stimulus: AgentRegistered) -> JoinDecision:
        return self._run(stimulus)

    def command_finished(
        self, action: str, command_id: str, instance_id: str, status: str, correlation_id: str
    ) -> JoinDecision:
        """A terminal status of a bootstrap-node / verify-node command (``instance_id``: where it ran)."""
        finished = self.result(action, command_id, instance_id, status, correlation_id)
        if finished is None:
            return Decision(Outcome.IGNORE, f"{action} command {command_id} was not sent by the join flow")
        return self.finished(finished)

    def result(
        self, action: str, command_id: str, instance_id: str, status: str, correlation_id: str
    ) -> JoinCommandFinished | None:
        """The command's result as the join reads it; None when the join flow did not send it."""
        invocation = self.adapters.commands.invocation(command_id, instance_id)
        joining = (joining_instance(invocation.comment) if invocation else None) or (
            instance_id if action == BOOTSTRAP else None
        )
        if joining is None:
            return None
        return _finished(action, command_id, joining, status, correlation_id, invocation)

    def finished(self, stimulus: JoinCommandFinished) -> JoinDecision:
        return self._run(stimulus)

    # --- the flow --------------------------------------------------------------------------

    def _run(self, stimulus: JoinStimulus) -> JoinDecision:
        return run(self, stimulus)

    def decide(self, stimulus: JoinStimulus, facts: _Facts) -> JoinDecision:
        return decide_join(stimulus, facts.instance, facts.cluster, facts.op, self.clock(), self.policy)

    def gather(self, stimulus: JoinStimulus, known: Known) -> _Facts:
        iid = stimulus.instance_id
        if isinstance(stimulus, JoinRequested):
            return self._gather_request(stimulus, known)
        op = known.take(("op", iid), lambda: self.adapters.state.get_op_or_leave(iid))
        if isinstance(op, LeaveOp) or (isinstance(stimulus, JoinStepDue) and _stale(stimulus, op)):
            # The instance's leave began, or a stale step (its op moved on, e.g. the agent-ready event
            # came first): the decision answers on the op alone.
            return _Facts(stimulus, None, ClusterState(), op)
        instance = known.get(("instance", iid), lambda: self.adapters.instances.describe(iid))
        return _Facts(stimulus, instance, self._cluster_state(stimulus, op, known), op)

    def _gather_request(self, stimulus: JoinRequested, known: Known) -> _Facts:
        """A request sees the instance's op whatever its kind (a launch out of the warm pool replaces
        the closed leave that sent the node there); the `running` fallback also reads where Auto
        Scaling has the instance (one in the warm pool is not joined)."""
        iid = stimulus.instance_id
        op = known.take(("op", iid), lambda: self.adapters.state.get_op_or_leave(iid))
        replacing = out_of_the_pool_over(stimulus, op)
        if isinstance(op, LeaveOp) and not past_the_leave(stimulus, op):
            return _Facts(stimulus, None, ClusterState(), op)  # the leave began: answered on the op
        instance = known.get(("instance", iid), lambda: self.adapters.instances.describe(iid))
        if stimulus.via == "running" and op is None and instance is not None and not instance.gone:
            instance = replace(instance, lifecycle_state=self.adapters.lifecycle.lifecycle_state(iid))
        # With a join in flight the request is ignored, whatever the cluster looks like.
        cluster = known.get(_SWARM, self._swarm_state) if op is None or replacing else ClusterState()
        return _Facts(stimulus, instance, cluster, op)

    def _cluster_state(self, stimulus: JoinStimulus, op: JoinOp | None, known: Known) -> ClusterState:
        """Only the facts the decision can use for this op's stage (saves calls)."""
        if op is not None and op.stage is Stage.WAITING:
            return known.get(_SWARM, self._swarm_state)
        if (
            op is not None
            and op.role is Role.WORKER
            and op.stage in (Stage.BOOTSTRAPPING, Stage.AWAITING_VERIFIER)
        ):
            return ClusterState(initialized=True, managers=self._managers_by_health())
        return ClusterState()

    def _swarm_state(self) -> ClusterState:
        return ClusterState(
            initialized=self.adapters.parameters.cluster_id() is not None,
            init_lock=self.adapters.state.get_lock(),
        )

    def _managers_by_health(self) -> tuple[str, ...]:
        return joined_managers_healthy_first(
            self.adapters.instances, self.adapters.state, self.settings.manager_group_name
        )

    def execute(self, action: JoinAction, facts: _Facts, known: Known) -> None:
        s, a = self.settings, self.adapters
        instance = facts.instance
        now = self.clock()
        match action:
            case CreateJoin(op=new, replacing=replacing):
                created = a.state.create_op(new) if replacing is None else a.state.replace_op(new, replacing)
                if not created:
                    raise Stop(Outcome.STOPPED, "a join for this instance was started by another event")
                known.put(("op", new.instance_id), new)
            case SaveJoin(op=new):
                self._save(new, known, facts)
            case AcquireInitLock(holder=holder, expires_at=expires_at):
                got = a.state.acquire_lock(holder, now, expires_at)
                logger.info("init lock", extra={"instance_id": holder, "acquired": got})
                # Taken or not, read the lock again, and whether the cluster exists: a holder may have
                # initialized it and released the lock between this run's two reads.
                known.forget(_SWARM)
                current = known.get(("op", holder), lambda: a.state.get_op_or_leave(holder))
                raise Redecide(JoinStepDue(holder, current.version if current else 0))
            case ReleaseInitLock(holder=holder):
                a.state.release_lock(holder)
                known.forget(_SWARM)
            case RunBootstrap(mode=mode, then=then):
                if instance is None or not instance.private_ip:
                    raise Stop(Outcome.STOPPED, "instance has no private address")
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
                if s.container_log_group:  # empty: the document's default (containers log on the node)
                    params["ContainerLogGroup"] = s.container_log_group
                if s.ecr_registry:
                    params["EcrRegistry"] = s.ecr_registry
                document = self._document(BOOTSTRAP)
                try:
                    self._send(
                        then,
                        lambda: a.commands.send(
                            document, then.instance_id, params, join_comment(then.instance_id)
                        ),
                        known,
                        facts,
                    )
                except AgentNotRegistered as err:
                    # Back to waiting, so the decision sees the agent is not ready yet.
                    waiting = replace(
                        then, stage=Stage.WAITING, command_id="", waiting_for="", version=then.version + 1
                    )
                    self._save(waiting, known, facts)
                    raise Redecide(AgentNotReady(then.instance_id, waiting.version)) from err
            case RunVerify(target=target, node_id=node_id, then=then, labels=labels):
                params = {"NodeId": node_id, **labels.parameters(), "TimeoutSeconds": "60"}
                document = self._document(VERIFY)
                self._send(
                    then,
                    lambda: a.commands.send(document, target, params, join_comment(then.instance_id)),
                    known,
                    facts,
                )
            case ScheduleJoinStep(step=step, delay_seconds=delay):
                a.steps.schedule(step, delay)
            case CompleteLifecycle(instance_id=iid, group=group, result=result, token=token):
                self._complete(iid, group or (instance.group if instance else None), result, token)
            case TagNode(instance_id=iid, node_id=node_id):
                a.instances.tag_node_id(iid, node_id)
                known.forget(("instance", iid))
            case RecordNode(instance_id=iid, node_id=node_id, role=role, verifier=verifier):
                a.state.record_node(iid, node_id, str(role), now)
                if verifier and verifier != iid:
                    a.state.mark_healthy(verifier, now)
            case Publish(event=event):
                a.bus.publish(event)
            case WakeWaitingJoins():
                self._wake_waiting(instance.instance_id if instance else "")
            case _:
                raise TypeError(f"unknown action {action!r}")

    def _save(self, op: JoinOp, known: Known, facts: _Facts) -> None:
        """Conditional on the stored version: stored, the op is known as written."""
        if not self.adapters.state.save_op(op):
            self._lost(op, known, facts)
        known.put(("op", op.instance_id), op)

    def _lost(self, op: JoinOp, known: Known, facts: _Facts) -> None:
        """A write of ``op`` found the op moved on elsewhere. A command's result is decided again on
        the op as stored (a leave may have taken it over: the result is then the leave's)."""
        if isinstance(facts.stimulus, JoinCommandFinished):
            known.forget(("op", op.instance_id))
            raise Redecide(facts.stimulus)
        raise Stop(Outcome.STOPPED, f"join moved on elsewhere (expected version {op.version - 1})")

    def _wake_waiting(self, me: str) -> None:
        """A step now for each other join ``waits_for_the_swarm`` (its pending step, one version
        behind once this one ran, is then ignored as stale), and for each manager removal that
        ``waits_for_a_replacement`` (a manager joined: it looks again, on a fresh view)."""
        ops = self.adapters.state.open_ops()
        for leave in removals_waiting(self.adapters.state, ops, waits_for_a_replacement):
            self.adapters.steps.schedule(
                LeaveStepDue(leave.instance_id, leave.version, leave.correlation_id), 0
            )
            logger.info("manager removal woken by a manager's join", extra={"instance_id": leave.instance_id})
        for item in ops:
            if item.kind is not OpKind.JOIN or item.stage not in (Stage.WAITING, Stage.AWAITING_VERIFIER):
                continue
            instance_id = item.instance_id
            op = self.adapters.state.get_op(instance_id) if instance_id != me else None
            if op is not None and waits_for_the_swarm(op):
                self.adapters.steps.schedule(JoinStepDue(instance_id, op.version, op.correlation_id), 0)
                logger.info("join woken", extra={"instance_id": instance_id, "stage": str(op.stage)})

    def _send(self, then: JoinOp, send: Callable[[], str], known: Known, facts: _Facts) -> None:
        """The send step (``flows.sending``) for the op at the command's stage, ``then``."""
        key = ("op", then.instance_id)
        sending = replace(then, command_id="", waiting_for="")
        if not save_send_record(sending, self.adapters.state.save_op, send, lambda op: known.keep(key, op)):
            self._lost(then, known, facts)

    def _complete(
        self, instance_id: str, group: str | None, result: LifecycleResult, token: str = ""
    ) -> None:
        completed = False
        if group:
            completed = self.adapters.lifecycle.complete(
                group, self.settings.launch_hook_name, instance_id, str(result), token
            )
        logger.info(
            "lifecycle action",
            extra={"instance_id": instance_id, "result": str(result), "completed": completed, "group": group},
        )
        if not completed and result is LifecycleResult.ABANDON and group:
            # No pending action (running fallback, or the hook timed out): do not let it stay InService.
            self.adapters.lifecycle.mark_unhealthy(instance_id)

    def _document(self, action: str) -> str:
        return f"{self.settings.document_prefix}{action}"


def _stale(step: JoinStepDue, op: JoinOp | LeaveOp | None) -> bool:
    return op is None or op.stage.closed or op.version != step.version


def _finished(
    action: str, command_id: str, joining: str, status: str, correlation_id: str, inv: Invocation | None
) -> JoinCommandFinished:
    stdout = inv.stdout if inv else ""
    stderr = inv.stderr if inv else ""
    return JoinCommandFinished(
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
