"""The exit flow: a node leaves the swarm before its instance goes (drain, demote, leave, remove), or
is removed right away when its instance is already gone.

Entry points: ``request`` (terminate lifecycle action, Spot warning, rebalance recommendation, the
instance's shutting-down / terminated state change), ``step`` (delayed re-delivery: drain polls,
waits for a fresh view or the quorum guard) and ``command_finished`` (status of a drain-node,
leave-swarm or remove-node this flow sent). Each gathers facts, asks ``domain.leave.decide_leave``
and executes the actions in order, like the join flow.
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
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.adapters.steps import StepQueue
from swarmkeeper.domain import outputs
from swarmkeeper.domain.errors import SwarmkeeperError
from swarmkeeper.domain.join import Decision, Publish
from swarmkeeper.domain.leave import (
    DRAIN,
    REMOVE,
    CompleteTerminate,
    CreateLeave,
    ForgetNode,
    Heartbeat,
    LeaveAction,
    LeaveCommandFinished,
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
    decide_leave,
)
from swarmkeeper.domain.models import LeaveOp, LifecycleResult, Role
from swarmkeeper.flows.managers import joined_managers_healthy_first
from swarmkeeper.settings import RuntimeSettings

logger = Logger(child=True)

MAX_ROUNDS = 6  # a create race, or one manager after another refusing delivery
_COMMENT = re.compile(r"^swarmkeeper leave (i-[0-9a-f]+)$")


class LeaveNotSettled(SwarmkeeperError):
    """The decision kept asking for fresh facts; raised so the event is retried."""


@dataclass(frozen=True)
class _Redecide(Exception):
    stimulus: LeaveStimulus


@dataclass(frozen=True)
class _Stop(Exception):
    outcome: str
    reason: str


def leave_comment(instance_id: str) -> str:
    return f"swarmkeeper leave {instance_id}"


def leaving_instance(comment: str) -> str | None:
    m = _COMMENT.match(comment)
    return m.group(1) if m else None


@dataclass
class LeaveAdapters:
    instances: Ec2Instances
    lifecycle: LifecycleActions
    commands: RunCommands
    state: StateTable
    steps: StepQueue
    bus: EventBus


class LeaveFlow:
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
        self.a = adapters
        self.request_view = request_view
        self.clock = clock

    # --- entry points ----------------------------------------------------------------------

    def request(self, stimulus: LeaveRequested) -> Decision:
        return self._run(stimulus)

    def step(self, stimulus: LeaveStepDue) -> Decision:
        return self._run(stimulus)

    def command_finished(
        self, action: str, command_id: str, ran_on: str, status: str, invocation: Invocation | None
    ) -> Decision:
        """A terminal status of a drain-node / leave-swarm / remove-node (``invocation``: its result)."""
        leaving = leaving_instance(invocation.comment) if invocation else None
        if leaving is None:
            return Decision("ignore", f"{action} command {command_id} was not sent by the exit flow")
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

    # --- loop ------------------------------------------------------------------------------

    def _run(self, stimulus: LeaveStimulus) -> Decision:
        for _ in range(MAX_ROUNDS):
            facts, op = self._facts(stimulus.instance_id)
            decision = decide_leave(stimulus, facts, op, self.clock(), self.policy)
            logger.info(
                "leave decision",
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
                    self._execute(action)
            except _Redecide as again:
                stimulus = again.stimulus
                continue
            except _Stop as stop:
                logger.info(
                    "leave stopped", extra={"instance_id": stimulus.instance_id, "reason": stop.reason}
                )
                return Decision(stop.outcome, stop.reason)
            return decision
        raise LeaveNotSettled(f"leave of {stimulus.instance_id} did not settle after {MAX_ROUNDS} rounds")

    def _facts(self, instance_id: str) -> tuple[LeaveFacts, LeaveOp | None]:
        a = self.a
        instance = a.instances.describe(instance_id)
        join, leave = a.state.get_ops(instance_id)
        role = self.policy.identity.role_of(instance.tags) if instance is not None else None
        node_id = (instance.node_id if instance is not None else None) or ""
        if leave is not None:
            role, node_id = leave.role, leave.node_id
        else:
            # EC2 may have forgotten a terminated instance: the node# item says it was ours.
            if instance is None or (role is not None and not node_id):
                recorded = a.state.get_node(instance_id)
                if recorded is not None:
                    node_id, role = node_id or recorded[0], role or recorded[1]
            node_id = node_id or (join.node_id if join is not None else "")
        view = a.state.get_view()
        managers = view.command_managers() if view is not None else ()
        if not managers:
            managers = joined_managers_healthy_first(a.instances, a.state, self.settings.manager_group_name)
        holder = a.state.manager_lock_holder(self.clock()) if role is Role.MANAGER else None
        facts = LeaveFacts(instance, role, node_id, join, view, managers, holder)
        return facts, leave

    # --- actions ---------------------------------------------------------------------------

    def _execute(self, action: LeaveAction) -> None:
        a, now = self.a, self.clock()
        match action:
            case CreateLeave(op=new, replacing=replacing):
                if not a.state.create_leave(new, replacing):
                    # A leave exists already, or the join moved on meanwhile: decide on fresh facts.
                    raise _Redecide(_as_request(new))
            case SaveLeave(op=new):
                if not a.state.save_leave(new):
                    raise _Stop("ignore", f"leave moved on elsewhere (expected version {new.version - 1})")
            case SendCommand(action=name, target=target, parameters=params, then=then, lock_until=until):
                self._send(name, target, dict(params), then, until, now)
            case Heartbeat(instance_id=iid, group=group):
                a.lifecycle.heartbeat(group, self.settings.terminate_hook_name, iid)
            case CompleteTerminate(instance_id=iid, group=group):
                completed = a.lifecycle.complete(
                    group, self.settings.terminate_hook_name, iid, str(LifecycleResult.CONTINUE)
                )
                logger.info("terminate lifecycle action", extra={"instance_id": iid, "completed": completed})
            case ScheduleLeaveStep(step=step, delay_seconds=delay):
                a.steps.schedule(step, delay)
            case RequestView(correlation_id=correlation_id, leaving=leaving):
                try:
                    self.request_view(correlation_id, leaving)
                except Exception:  # a fresh view is wanted, not required now: the next step asks again
                    logger.exception("could not start a reconcile for a fresh swarm view")
            case ReleaseManagerLock(holder=holder):
                a.state.release_manager_lock(holder)
            case ForgetNode(instance_id=iid):
                a.state.forget_node(iid)
            case Publish(event=event):
                a.bus.publish(event)
            case _:
                raise TypeError(f"unknown action {action!r}")

    def _send(
        self, name: str, target: str, params: dict[str, str], then: LeaveOp, until: float | None, now: float
    ) -> None:
        a = self.a
        if until is not None and not a.state.acquire_manager_lock(then.instance_id, now, until):
            waiting = replace(then, target="", waiting_for="another manager change")
            if not a.state.save_leave(waiting):
                raise _Stop("ignore", "leave moved on elsewhere")
            a.steps.schedule(
                LeaveStepDue(then.instance_id, then.version, then.correlation_id),
                self.policy.view_wait_seconds,
            )
            raise _Stop("wait", "another manager change holds the lock")
        # Save the stage first: the command's status event may arrive before SendCommand returns.
        sending = replace(then, command_id="", target=target, waiting_for="")
        if not a.state.save_leave(sending):
            if until is not None:
                a.state.release_manager_lock(then.instance_id)
            raise _Stop("ignore", f"leave moved on elsewhere (expected version {then.version - 1})")
        try:
            command_id = a.commands.send(
                f"{self.settings.document_prefix}{name}", target, params, leave_comment(then.instance_id)
            )
        except AgentNotRegistered as err:
            if until is not None:
                a.state.release_manager_lock(then.instance_id)
            raise _Redecide(LeaveNotDelivered(then.instance_id, sending.version, name, target)) from err
        recorded = replace(sending, command_id=command_id, version=sending.version + 1)
        if not a.state.save_leave(recorded):
            # Its status event was handled first and moved the leave on: nothing to record.
            logger.info("command finished before its id was recorded", extra={"command_id": command_id})


def _as_request(op: LeaveOp) -> LeaveRequested:
    return LeaveRequested(op.instance_id, op.via, op.correlation_id, op.group)
