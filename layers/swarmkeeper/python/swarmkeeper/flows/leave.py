"""The exit flow: a node leaves the swarm before its instance goes (drain, demote, leave, remove), or
is removed right away when its instance is already gone.

Entry points: ``request`` (terminate lifecycle action, Spot warning, rebalance recommendation, the
instance's shutting-down / terminated state change), ``step`` (delayed re-delivery: drain polls,
waits for a fresh view or the quorum guard) and ``command_finished`` (status of a drain-node,
leave-swarm or remove-node this flow sent). Each runs the ``flows.flow`` loop like the join flow: gather
facts, ask ``domain.leave.decide_leave``, execute the actions in order. A decision made again in the
same run (a create race, a manager that could not be sent the command) reads the op again unless this
run saved it, and the manager-change lock after this run took or released it; the instance, the swarm
view and the managers as read. A request for an instance whose leave is in flight is answered from
the op alone (a shutting-down then terminated pair: the second finds the removal the first started).
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
from swarmkeeper.adapters.load_balancer import LoadBalancerTargets
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.adapters.steps import StepQueue
from swarmkeeper.domain import outputs
from swarmkeeper.domain.errors import SwarmkeeperError
from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.kernel import Decision, Outcome, Publish
from swarmkeeper.domain.leave import DRAIN, REMOVE, decide_leave
from swarmkeeper.domain.leave_types import (
    VIA_STATE,
    BootstrapReported,
    CompleteTerminate,
    CreateLeave,
    DeregisterTargets,
    ForgetNode,
    Heartbeat,
    LeaveAction,
    LeaveCommandFinished,
    LeaveDecision,
    LeaveFacts,
    LeaveNotDelivered,
    LeavePolicy,
    LeaveRequested,
    LeaveStepDue,
    LeaveStimulus,
    ReleaseManagerLock,
    RequestView,
    SaveLeave,
    ScheduleLeaveStep,
    SendCommand,
)
from swarmkeeper.domain.manager_removal import ANOTHER_CHANGE, waits_for_the_lock
from swarmkeeper.domain.models import GroupLaunches, LeaveOp, LeaveStage, LifecycleResult, Role
from swarmkeeper.domain.outputs import BootstrapResult
from swarmkeeper.flows.flow import Known, Redecide, Stop, run
from swarmkeeper.flows.managers import joined_managers_healthy_first, removals_waiting
from swarmkeeper.flows.sending import save_send_record
from swarmkeeper.settings import RuntimeSettings

logger = Logger(child=True)

MAX_ROUNDS = 6  # a create race, or one manager after another refusing delivery
_COMMENT = re.compile(r"swarmkeeper leave (i-[0-9a-f]+)")


# Known, cluster-wide
_VIEW, _MANAGERS, _LOCK_HOLDER, _LAUNCHES = "view", "managers", "manager-lock-holder", "launches"


class LeaveNotSettled(SwarmkeeperError):
    """The decision kept asking for fresh facts; raised so the event is retried."""


@frozen
class _Facts:
    facts: LeaveFacts
    op: LeaveOp | None


def leave_comment(instance_id: str) -> str:
    return f"swarmkeeper leave {instance_id}"


def leaving_instance(comment: str) -> str | None:
    m = _COMMENT.fullmatch(comment)
    return m.group(1) if m else None


@dataclass
class LeaveAdapters:
    instances: Ec2Instances
    lifecycle: LifecycleActions
    commands: RunCommands
    state: StateTable
    steps: StepQueue
    bus: EventBus
    targets: LoadBalancerTargets | None = None  # the cluster's load balancer, when it has one


class LeaveFlow:
    name = "leave"
    max_rounds = MAX_ROUNDS
    not_settled = LeaveNotSettled

    def __init__(
        self,
        settings: RuntimeSettings,
        policy: LeavePolicy,
        adapters: LeaveAdapters,
        request_view: Callable[[str, str], object],
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.policy = policy
        self.adapters = adapters
        self.request_view = request_view
        self.clock = clock

    # --- entry points ----------------------------------------------------------------------

    def request(self, stimulus: LeaveRequested) -> LeaveDecision:
        return self._run(stimulus)

    def step(self, stimulus: LeaveStepDue) -> LeaveDecision:
        return self._run(stimulus)

    def bootstrap_reported(self, stimulus: BootstrapReported) -> LeaveDecision:
        """The result of the bootstrap-node of a join this flow's leave overtook."""
        return self._run(stimulus)

    def command_finished(
        self, action: str, command_id: str, ran_on: str, status: str, invocation: Invocation | None
    ) -> LeaveDecision:
        """A terminal status of a drain-node / leave-swarm / remove-node (``invocation``: its result)."""
        leaving = leaving_instance(invocation.comment) if invocation else None
        if leaving is None:
            return Decision(Outcome.IGNORE, f"{action} command {command_id} was not sent by the exit flow")
        stdout = invocation.stdout if invocation else ""
        drain = outputs.parse_drain(stdout) if action == DRAIN else None
        ok = status == "Success"
        stimulus = LeaveCommandFinished(
            instance_id=leaving,
            command_id=command_id,
            action=action,
            status=status,
            ran_on=ran_on,
            tasks_remaining=drain.tasks_remaining if drain else None,
            missing=bool(drain and drain.missing),
            removed=action == REMOVE and outputs.parse_removed(stdout) is not None,
            detail="" if ok else outputs.excerpt(invocation.stderr or stdout if invocation else ""),
        )
        return self._run(stimulus)

    # --- the flow --------------------------------------------------------------------------

    def _run(self, stimulus: LeaveStimulus) -> LeaveDecision:
        return run(self, stimulus)

    def decide(self, stimulus: LeaveStimulus, gathered: _Facts) -> LeaveDecision:
        return decide_leave(stimulus, gathered.facts, gathered.op, self.clock(), self.policy)

    def gather(self, stimulus: LeaveStimulus, known: Known) -> _Facts:
        a, iid = self.adapters, stimulus.instance_id
        join, leave = known.take(("ops", iid), lambda: a.state.get_ops(iid))
        if leave is not None and answered_by_the_op(stimulus, leave):
            return _Facts(LeaveFacts(None, leave.role, leave.node_id, join), leave)
        bootstrap = None
        if isinstance(stimulus, LeaveStepDue) and leave is not None and awaits_its_poll(stimulus, leave):
            # The status event may be late or lost: the command says where it is.
            invocation = a.commands.invocation(leave.bootstrap_command, iid)
            if invocation is not None:
                result = outputs.parse_bootstrap(invocation.stdout)
                bootstrap = bootstrap_reported(iid, leave.bootstrap_command, invocation.status, result)
        instance = known.get(("instance", iid), lambda: a.instances.describe(iid))
        role = self.policy.identity.role_of(instance.tags) if instance is not None else None
        node_id = (instance.node_id if instance is not None else None) or ""
        if leave is not None:
            role, node_id = leave.role, leave.node_id
        else:
            # EC2 may have forgotten a terminated instance: the node# item says it was ours.
            if instance is None or (role is not None and not node_id):
                recorded = known.get(("node", iid), lambda: a.state.get_node(iid))
                if recorded is not None:
                    node_id, role = node_id or recorded[0], role or recorded[1]
            node_id = node_id or (join.node_id if join is not None else "")
        view = known.get(_VIEW, a.state.get_view)
        managers = view.command_managers() if view is not None else ()
        if not managers:
            managers = known.get(
                _MANAGERS,
                lambda: joined_managers_healthy_first(a.instances, a.state, self.settings.manager_group_name),
            )
        holder, launches = None, GroupLaunches()
        if role is Role.MANAGER:
            holder = known.get(_LOCK_HOLDER, lambda: a.state.manager_lock_holder(self.clock()))
            launches = known.get(_LAUNCHES, lambda: a.lifecycle.launches(self.settings.manager_group_name))
        load_balanced = False
        draining = leave is None or leave.stage is LeaveStage.DRAINING
        if (
            a.targets is not None
            and role is Role.WORKER
            and draining
            and instance is not None
            and not instance.gone
        ):
            targets = a.targets
            load_balanced = known.get(("targeted", iid), lambda: bool(targets.targeted(iid)))
        facts = LeaveFacts(
            instance, role, node_id, join, view, managers, holder, launches, bootstrap, load_balanced
        )
        return _Facts(facts, leave)

    def execute(self, action: LeaveAction, _facts: _Facts, known: Known) -> None:
        a, now = self.adapters, self.clock()
        match action:
            case CreateLeave(op=new, replacing=replacing):
                if not a.state.create_leave(new, replacing):
                    # A leave exists already, or the join moved on meanwhile: decide on the op as stored.
                    raise Redecide(_as_request(new))
                known.put(("ops", new.instance_id), (None, new))
            case SaveLeave(op=new):
                if not a.state.save_leave(new):
                    raise Stop(
                        Outcome.IGNORE, f"leave moved on elsewhere (expected version {new.version - 1})"
                    )
                known.put(("ops", new.instance_id), (None, new))
            case SendCommand(action=name, target=target, parameters=params, then=then, lock_until=until):
                self._send(name, target, dict(params), then, until, now, known)
            case Heartbeat(instance_id=iid, group=group):
                a.lifecycle.heartbeat(group, self.settings.terminate_hook_name, iid)
            case CompleteTerminate(instance_id=iid, group=group):
                completed = a.lifecycle.complete(
                    group, self.settings.terminate_hook_name, iid, str(LifecycleResult.CONTINUE)
                )
                logger.info("terminate lifecycle action", extra={"instance_id": iid, "completed": completed})
            case DeregisterTargets(instance_id=iid):
                groups = a.targets.deregister(iid) if a.targets is not None else ()
                logger.info(
                    "deregistered from the load balancer", extra={"instance_id": iid, "groups": groups}
                )
                known.forget(("targeted", iid))
            case ScheduleLeaveStep(step=step, delay_seconds=delay):
                a.steps.schedule(step, delay)
            case RequestView(correlation_id=correlation_id, leaving=leaving):
                try:
                    self.request_view(correlation_id, leaving)
                except Exception:  # a fresh view is wanted, not required now: the next step asks again
                    logger.exception("could not start a reconcile for a fresh swarm view")
            case ReleaseManagerLock(holder=holder):
                if a.state.release_manager_lock(holder):
                    self._wake_lock_waiters()
                known.forget(_LOCK_HOLDER)
            case ForgetNode(instance_id=iid, clear_tag=clear_tag):
                a.state.forget_node(iid)
                known.forget(("node", iid))
                if clear_tag:
                    a.instances.clear_node_id(iid)
                    known.forget(("instance", iid))
            case Publish(event=event):
                a.bus.publish(event)
            case _:
                raise TypeError(f"unknown action {action!r}")

    def _wake_lock_waiters(self) -> None:
        """The lock is free: the other manager removals waiting for it go on now, not at their step."""
        a = self.adapters
        for leave in removals_waiting(a.state, a.state.open_ops(), waits_for_the_lock):
            a.steps.schedule(LeaveStepDue(leave.instance_id, leave.version, leave.correlation_id), 0)
            logger.info("manager removal woken: the lock is free", extra={"instance_id": leave.instance_id})

    def _send(
        self,
        name: str,
        target: str,
        params: dict[str, str],
        then: LeaveOp,
        until: float | None,
        now: float,
        known: Known,
    ) -> None:
        a, iid = self.adapters, then.instance_id
        if until is not None:
            known.forget(_LOCK_HOLDER)
            if not a.state.acquire_manager_lock(iid, now, until):
                waiting = replace(then, target="", waiting_for=ANOTHER_CHANGE)
                if not a.state.save_leave(waiting):
                    raise Stop(Outcome.IGNORE, "leave moved on elsewhere")
                a.steps.schedule(
                    LeaveStepDue(iid, then.version, then.correlation_id), self.policy.view_wait_seconds
                )
                raise Stop(Outcome.WAIT, "another manager change holds the lock")
        sending = replace(then, command_id="", target=target, waiting_for="")
        document = f"{self.settings.document_prefix}{name}"
        try:
            sent = save_send_record(
                sending,
                a.state.save_leave,
                lambda: a.commands.send(document, target, params, leave_comment(iid)),
                lambda op: known.keep(("ops", iid), (None, op) if op else None),
            )
        except AgentNotRegistered as err:
            if until is not None:
                a.state.release_manager_lock(iid)
            raise Redecide(LeaveNotDelivered(iid, sending.version, name, target)) from err
        if not sent:
            if until is not None:
                a.state.release_manager_lock(iid)
            raise Stop(Outcome.IGNORE, f"leave moved on elsewhere (expected version {then.version - 1})")


def answered_by_the_op(stimulus: LeaveStimulus, leave: LeaveOp) -> bool:
    """Whether ``decide_leave`` answers ``stimulus`` from the leave op alone: a request for an
    instance whose leave is in flight or done is ignored, completes the lifecycle action or holds it
    for the leave, whatever the instance, the view or the managers; except a state change (the
    instance went) during a drain or a leave, which turns it into a removal and needs them all."""
    if not isinstance(stimulus, LeaveRequested):
        return False
    removal_now = (
        stimulus.via == VIA_STATE
        and not leave.stage.closed
        and leave.stage not in (LeaveStage.REMOVING, LeaveStage.AWAITING_BOOTSTRAP)
    )
    return not removal_now


def awaits_its_poll(step: LeaveStepDue, leave: LeaveOp) -> bool:
    """A step of a leave awaiting the bootstrap-node whose id it knows: the step reads the command."""
    return (
        leave.stage is LeaveStage.AWAITING_BOOTSTRAP
        and bool(leave.bootstrap_command)
        and step.version == leave.version
    )


def bootstrap_reported(
    instance_id: str, command_id: str, status: str, result: BootstrapResult | None
) -> BootstrapReported:
    """A bootstrap-node's status and the node it printed, if any, as the leave takes them."""
    node_id, role = (result.node_id, result.role) if result else ("", None)
    return BootstrapReported(instance_id, command_id, status, node_id, role)


def _as_request(op: LeaveOp) -> LeaveRequested:
    return LeaveRequested(op.instance_id, op.via, op.correlation_id, op.group)
