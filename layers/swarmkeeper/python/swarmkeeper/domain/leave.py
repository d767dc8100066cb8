"""What to do next for a node on its way out: a pure function of (stimulus, facts, leave op, now).

The exit flow (``swarmkeeper.flows.leave``) gathers the facts, calls ``decide_leave`` and executes
the actions in order, like the join flow does with ``domain.join.decide_join``. Nothing here touches AWS.

Stages of a leave op (``op#<instance-id>``, kind leave):

- graceful (terminate lifecycle action, Spot interruption warning, rebalance recommendation):
  worker:  draining -> leaving -> removing -> done
  manager: draining -> removing -> leaving -> done
  A manager is demoted (by remove-node, from another manager) *before* it leaves: leave-swarm on a
  manager that is still a raft member would make it unreachable before the configuration shrinks,
  which with an even manager count loses the majority the guard just checked (4 managers, 3
  reachable: the guard allows the change, 2 of 4 is not a majority).
- ungraceful (the instance is shutting down or gone): removing -> done, no drain, no leave.

A manager is removed only when ``domain.manager_removal.gate`` lets it: on a fresh swarm view, past
the quorum guard, keeping the cluster's spare while Auto Scaling brings in a replacement, with the
manager-change lock, so two manager changes never overlap. While it waits it heartbeats the lifecycle
action; past the op's deadline (the hook budget) the action is completed anyway and what is left is
reconcile's.

A leave that overlaps a join replaces its op (the join then announces nothing) and publishes Node
Join Cancelled. With the join's bootstrap-node in flight it waits (awaiting-bootstrap: polls, heart-
beats, up to the drain budget) for its result: a node id starts the leave above, none closes it. Past
that wait the instance goes, and a node id reported even later is removed at once (as a dead node's).
A join already admitting (its write landed first) is a joined node, drained once Node Joined is out.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from swarmkeeper.domain.kernel import (
    NON_TERMINAL,
    TERMINAL_SUCCESS,
    BusEvent,
    Decision,
    DetailType,
    Outcome,
    Publish,
    detail_type,
    ignore,
)
from swarmkeeper.domain.leave_types import (
    VIA_LIFECYCLE,
    VIA_REBALANCE,
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
from swarmkeeper.domain.manager_removal import gate
from swarmkeeper.domain.models import (
    JoinOp,
    LeaveOp,
    LeaveStage,
    Role,
    Stage,
)

DRAIN = "drain-node"
LEAVE = "leave-swarm"
REMOVE = "remove-node"

NODE_DRAINING = detail_type("Node Draining")
NODE_REMOVED = detail_type("Node Removed")
DEAD_NODE_REMOVED = detail_type("Dead Node Removed")
MANAGER_DEMOTED = detail_type("Manager Demoted")
QUORUM_AT_RISK = detail_type("Quorum At Risk")
NODE_JOIN_CANCELLED = detail_type("Node Join Cancelled")  # the end of a join that a leave overtook

_STAGE_OF = {DRAIN: LeaveStage.DRAINING, LEAVE: LeaveStage.LEAVING, REMOVE: LeaveStage.REMOVING}

BOOTSTRAP_RESULT = "the result of the bootstrap-node in flight"
ADMISSION = "the join's admission to be announced"
DEREGISTRATION = "its deregistration from the load balancer's targets"

# -------------------------------------------------------------------------------------- decide


def decide_leave(
    stimulus: LeaveStimulus, facts: LeaveFacts, op: LeaveOp | None, now: float, policy: LeavePolicy
) -> LeaveDecision:
    match stimulus:
        case LeaveRequested():
            return _on_request(stimulus, facts, op, now, policy)
        case LeaveStepDue():
            return _on_step(stimulus, facts, op, now, policy)
        case LeaveCommandFinished():
            return _on_finished(stimulus, facts, op, now, policy)
        case LeaveNotDelivered():
            return _on_not_delivered(stimulus, facts, op, now, policy)
        case BootstrapReported():
            return _on_bootstrap_reported(stimulus, facts, op, now, policy)
    raise TypeError(f"unknown stimulus {stimulus!r}")


def _on_request(
    s: LeaveRequested, f: LeaveFacts, op: LeaveOp | None, now: float, p: LeavePolicy
) -> LeaveDecision:
    if s.group is not None and not p.identity.owns_group(s.group):
        return _ignore(f"group {s.group} is not one of cluster {p.identity.name}")
    if f.role is None:
        return _ignore(f"instance is not a known member of cluster {p.identity.name}")
    if s.token and f.join is not None and s.token == f.join.replaced_leave_token:
        return _ignore("late duplicate of the scale-in that sent the instance into the warm pool")
    if op is not None:
        return _on_request_in_flight(s, f, op, now, p)
    if s.via == VIA_REBALANCE and (f.role is Role.MANAGER or not p.rebalance_drain_workers):
        return _ignore(f"rebalance recommendation: {f.role}s are not drained on it")
    join = f.join if f.join is not None and not f.join.stage.closed else None
    if s.via == VIA_REBALANCE and join is not None:
        # A recommendation, not a notice: the join goes on; a later terminate or warning finds it.
        return _ignore(f"rebalance recommendation: its join is {join.stage}")
    gone = s.via == VIA_STATE or f.instance is None or f.instance.gone
    via = VIA_STATE if gone and s.via != VIA_LIFECYCLE else s.via
    replacing = f.join.version if f.join is not None else None
    base = 0 if f.join is None else f.join.version
    new = LeaveOp(
        instance_id=s.instance_id,
        role=f.role,
        node_id=f.node_id,
        stage=LeaveStage.DRAINING,
        version=base + 1,
        started_at=now,
        drain_deadline=now + p.drain_budget(via),
        deadline=now + p.budget(via, f.role),
        correlation_id=s.correlation_id,
        via=via,
        group=s.group,
        expires_at=now + p.budget(via, f.role) + p.closed_op_seconds,
        lifecycle_token=s.token,
        into_warm_pool=s.into_warm_pool,
    )
    # The join in flight is cancelled (only one leave wins the replacement), unless it was admitting.
    cancelled: tuple[LeaveAction, ...] = ()
    if join is not None and join.stage is not Stage.ADMITTING:
        cancelled = (Publish(_event(p, new, NODE_JOIN_CANCELLED, f"the instance left first ({via} event)")),)
    if join is not None and join.stage is Stage.BOOTSTRAPPING and not f.node_id:
        return _await_bootstrap(new, join, replacing, cancelled, now, p)
    if not f.node_id:
        # Never joined: nothing to drain or remove.
        closed = _closing(replace(new, stage=LeaveStage.DONE, reason="never joined the swarm"), now, p)
        actions: tuple[LeaveAction, ...] = (CreateLeave(closed, replacing), *cancelled)
        if s.group:
            actions += (CompleteTerminate(s.instance_id, s.group),)
        return Decision(Outcome.REMOVED, "no swarm node to remove: never joined", actions)
    if gone:
        removing = replace(new, stage=LeaveStage.REMOVING)
        d = _to_removal(removing, f, now, p, fresh=True, reason=f"instance is {_state(f)}")
        return Decision(d.outcome, d.reason, (CreateLeave(removing, replacing), *cancelled, *d.actions))
    if join is not None and join.stage is Stage.ADMITTING:
        # Its join's write landed first and Node Joined is being announced: drain right after.
        pausing = replace(new, waiting_for=ADMISSION)
        step = LeaveStepDue(s.instance_id, pausing.version, s.correlation_id)
        delay = p.admission_wait_seconds
        why = f"its join is being admitted: drain in {delay}s"
        return Decision(Outcome.WAIT, why, (CreateLeave(pausing, replacing), ScheduleLeaveStep(step, delay)))
    started = (
        CreateLeave(new, replacing),
        *cancelled,
        Publish(_event(p, new, NODE_DRAINING, f"{via} event")),
    )
    d = _send_drain(new, f, now, p)
    return Decision(Outcome.DRAIN, d.reason, started + d.actions)


def _await_bootstrap(
    new: LeaveOp,
    join: JoinOp,
    replacing: int | None,
    cancelled: tuple[LeaveAction, ...],
    now: float,
    p: LeavePolicy,
) -> LeaveDecision:
    """The join's bootstrap-node is in flight, so the node may be joining right now: wait for its
    result rather than decide it never joined."""
    waiting = replace(
        new,
        stage=LeaveStage.AWAITING_BOOTSTRAP,
        waiting_for=BOOTSTRAP_RESULT,
        bootstrap_command=join.command_id,
        awaiting_bootstrap=True,
    )
    step = LeaveStepDue(new.instance_id, waiting.version, new.correlation_id)
    delay = _bounded(p.poll_seconds, waiting.drain_deadline - now)
    command = join.command_id or "(its id not recorded yet)"
    why = f"bootstrap-node {command} in flight: its result awaited up to {int(waiting.drain_deadline - now)}s"
    return Decision(
        Outcome.WAIT, why, (CreateLeave(waiting, replacing), *cancelled, ScheduleLeaveStep(step, delay))
    )


def _on_request_in_flight(
    s: LeaveRequested, f: LeaveFacts, op: LeaveOp, now: float, p: LeavePolicy
) -> LeaveDecision:
    if s.via == VIA_LIFECYCLE:
        if op.stage.closed:
            # Removed already (e.g. after a Spot warning): let the instance go.
            group = s.group or op.group
            actions = (CompleteTerminate(s.instance_id, group),) if group else ()
            return Decision(Outcome.COMPLETE, f"leave already {op.stage}: continue the termination", actions)
        if op.group:
            return _ignore(f"leave already {op.stage} for this lifecycle action")
        held = _next(op, group=s.group, lifecycle_token=s.token, into_warm_pool=s.into_warm_pool)
        return Decision(
            Outcome.WAIT,
            f"leave {op.stage}: the lifecycle action waits for it",
            (SaveLeave(held), *_resume(held)),
        )
    if s.via == VIA_STATE and op.stage is LeaveStage.AWAITING_BOOTSTRAP:
        # A result sent before it went may still come: the wait goes on, a node id it brings is removed.
        return _ignore("awaiting its bootstrap-node's result: the instance went meanwhile")
    if s.via == VIA_STATE and not op.stage.closed and op.stage is not LeaveStage.REMOVING:
        # The instance went away mid-drain: nothing left to drain or leave, remove it now.
        removing = replace(op, stage=LeaveStage.REMOVING, excluded=(), attempts=0, waiting_for="")
        return _to_removal(removing, f, now, p, fresh=True, reason="instance is gone")
    return _ignore(f"leave already {op.stage} (started by {op.via} event {op.correlation_id})")


def _on_step(s: LeaveStepDue, f: LeaveFacts, op: LeaveOp | None, now: float, p: LeavePolicy) -> LeaveDecision:
    if op is None or op.stage.closed:
        return _ignore("no leave in flight")
    if op.version != s.version:
        return _ignore(f"stale step (version {s.version}, op at {op.version})")
    if op.command_id:
        return _ignore(f"command {op.command_id} in flight ({op.stage})")
    if now >= op.deadline:
        return _give_up(op, f"gave up at {op.stage} after {int(now - op.started_at)}s", now, p)
    gone = f.instance is None or f.instance.gone
    if op.stage is LeaveStage.AWAITING_BOOTSTRAP:
        if f.bootstrap is not None and f.bootstrap.status not in NON_TERMINAL:
            return _on_bootstrap_reported(f.bootstrap, f, op, now, p)
        if now >= op.drain_deadline:
            return _stop_awaiting(op, now, p)
        return _wait(op, BOOTSTRAP_RESULT, now, p, _bounded(p.poll_seconds, op.drain_deadline - now))
    if op.stage is LeaveStage.DRAINING:
        if gone:
            return _to_removal(op, f, now, p, fresh=True, reason="instance is gone")
        if now >= op.drain_deadline:
            return _after_drain(op, f, now, p, f"drain budget of {p.drain_budget(op.via)}s spent")
        d = _send_drain(op, f, now, p)
        if op.waiting_for == ADMISSION:  # the drain of a node whose join was admitting, announced now
            return replace(d, actions=(Publish(_event(p, op, NODE_DRAINING, f"{op.via} event")), *d.actions))
        return d
    if op.stage is LeaveStage.LEAVING:
        return _after_leave(op, f, now, p)
    return _to_removal(op, f, now, p, fresh=False)


def _on_finished(
    s: LeaveCommandFinished, f: LeaveFacts, op: LeaveOp | None, now: float, p: LeavePolicy
) -> LeaveDecision:
    if op is None or op.stage.closed:
        return _ignore("no leave in flight for this command")
    # The flow saves the stage (and target) before SendCommand and the id after it: a command that
    # finishes in between finds its stage, its target and no id yet, and is that stage's command.
    sent_not_recorded = (
        op.command_id == ""
        and not op.waiting_for
        and _STAGE_OF.get(s.action) is op.stage
        and bool(s.ran_on)
        and s.ran_on == op.target
    )
    if op.command_id != s.command_id and not sent_not_recorded:
        return _ignore(f"stale command {s.command_id} (leave is at {op.stage} {op.command_id or '-'})")
    if s.status in NON_TERMINAL:
        return _ignore(f"command {s.status}")
    ok = s.status == TERMINAL_SUCCESS
    done = replace(op, command_id="")
    if op.stage is LeaveStage.DRAINING and s.action == DRAIN:
        if not ok or s.tasks_remaining is None:
            failed = _failed(done, f"drain-node {s.status}: {s.detail}".rstrip(": "))
            if failed.attempts < p.manager_attempts:
                return _send_drain(failed, f, now, p)
            return _after_drain(failed, f, now, p, "drain failed on every manager tried")
        if s.missing:
            return _finish(done, now, p, "the swarm no longer knows the node")
        if s.tasks_remaining == 0:
            return _after_drain(done, f, now, p, "drained")
        if now >= op.drain_deadline or now >= op.deadline:
            return _after_drain(done, f, now, p, f"drain timed out, {s.tasks_remaining} tasks remaining")
        return _wait(done, f"{s.tasks_remaining} tasks to move", now, p, p.poll_seconds)
    if op.stage is LeaveStage.LEAVING and s.action == LEAVE:
        return _after_leave(done, f, now, p)
    if op.stage is LeaveStage.REMOVING and s.action == REMOVE:
        if ok and s.removed:
            return _after_removal(done, f, now, p)
        failed = _failed(done, f"remove-node {s.status}: {s.detail}".rstrip(": "))
        release = (ReleaseManagerLock(op.instance_id),) if op.role is Role.MANAGER else ()
        d = _retry_removal(failed, f, now, p, fresh=op.role is Role.MANAGER)
        return replace(d, actions=release + d.actions)
    return _ignore(f"{s.action} does not match leave stage {op.stage}")


def _on_not_delivered(
    s: LeaveNotDelivered, f: LeaveFacts, op: LeaveOp | None, now: float, p: LeavePolicy
) -> LeaveDecision:
    if op is None or op.stage.closed or op.version != s.version:
        return _ignore("no leave waiting on this command")
    if s.action == LEAVE:
        # The leaving instance itself is gone (or its agent is): leaving is best effort.
        skipped = _next(op, stage=LeaveStage.LEAVING, command_id="")
        return _after_leave(skipped, f, now, p)
    failed = replace(op, excluded=(*op.excluded, s.target), attempts=op.attempts + 1)
    if s.action == DRAIN:
        return _send_drain(failed, f, now, p)
    release = (ReleaseManagerLock(op.instance_id),) if op.role is Role.MANAGER else ()
    d = _retry_removal(failed, f, now, p, fresh=False)
    return replace(d, actions=release + d.actions)


def _on_bootstrap_reported(
    s: BootstrapReported, f: LeaveFacts, op: LeaveOp | None, now: float, p: LeavePolicy
) -> LeaveDecision:
    if op is None or not op.awaiting_bootstrap:
        return _ignore("no leave awaiting a bootstrap-node result")
    if op.bootstrap_command and s.command_id != op.bootstrap_command:
        return _ignore(f"stale command {s.command_id} (the cancelled join's is {op.bootstrap_command})")
    if s.status in NON_TERMINAL:
        return _ignore(f"command {s.status}")
    settled = replace(op, awaiting_bootstrap=False, bootstrap_command=s.command_id, waiting_for="")
    if not s.node_id:
        if op.stage.closed:
            return _ignore(f"bootstrap-node {s.status} without a node id: nothing joined")
        closed = replace(settled, stage=LeaveStage.DONE, reason="never joined the swarm")
        ended = (CompleteTerminate(op.instance_id, op.group),) if op.group else ()
        why = f"bootstrap-node {s.status} without a node id: never joined"
        return Decision(Outcome.REMOVED, why, (*ended, SaveLeave(_closing(_next(closed), now, p))))
    joined = replace(settled, node_id=s.node_id, role=s.role or op.role)
    if op.stage.closed:
        # The instance was let go before the result came: remove its node now, as a dead node.
        budget = p.removal_budget(joined.role)
        reopened = replace(
            joined,
            stage=LeaveStage.REMOVING,
            via=VIA_STATE,
            group=None,
            started_at=now,
            drain_deadline=now,
            deadline=now + budget,
            expires_at=now + budget + p.closed_op_seconds,
            reason="",
        )
        why = f"its bootstrap-node reported node {s.node_id} after the instance was let go"
        return _to_removal(reopened, f, now, p, fresh=True, reason=why)
    if op.stage is not LeaveStage.AWAITING_BOOTSTRAP:
        return _ignore(f"leave is {op.stage}: its node is known")
    if f.instance is None or f.instance.gone:
        why = f"joined as {s.node_id}; instance is {_state(f)}"
        return _to_removal(replace(joined, stage=LeaveStage.REMOVING), f, now, p, fresh=True, reason=why)
    draining = replace(joined, stage=LeaveStage.DRAINING)
    d = _send_drain(draining, f, now, p)
    event = Publish(_event(p, draining, NODE_DRAINING, f"{op.via} event; joined as {s.node_id} meanwhile"))
    return Decision(Outcome.DRAIN, d.reason, (event, *d.actions))


def _stop_awaiting(op: LeaveOp, now: float, p: LeavePolicy) -> LeaveDecision:
    """The wait for the bootstrap-node's result is over: let the instance go. The op stays
    ``awaiting_bootstrap``: a node id the result brings later is removed then."""
    why = f"bootstrap-node still without a result after {int(now - op.started_at)}s"
    closed = _closing(_next(op, stage=LeaveStage.DONE, reason=why), now, p)
    ended = (CompleteTerminate(op.instance_id, op.group),) if op.group else ()
    return Decision(
        Outcome.COMPLETE, f"{why}: a node id it reports is removed then", (*ended, SaveLeave(closed))
    )


# ------------------------------------------------------------------------------------- stages


def _send_drain(op: LeaveOp, f: LeaveFacts, now: float, p: LeavePolicy) -> LeaveDecision:
    if f.load_balanced and now < op.drain_deadline:
        # Out of the load balancer first (as Auto Scaling does before the terminate hook): no connection
        # reaches the node while its tasks move, nor after CONTINUE.
        d = _wait(op, DEREGISTRATION, now, p, _bounded(p.poll_seconds, op.drain_deadline - now))
        return replace(d, actions=(DeregisterTargets(op.instance_id), *d.actions))
    target = _pick(op, f)
    if target is None:
        if now >= op.drain_deadline:
            return _after_drain(op, f, now, p, "no manager to drain from")
        return _wait(replace(op, excluded=()), "a manager to drain from", now, p, p.poll_seconds)
    timeout = int(max(1, min(p.drain_chunk_seconds, op.drain_deadline - now)))
    then = _next(op, stage=LeaveStage.DRAINING, target=target, waiting_for="")
    params = (("NodeId", op.node_id), ("TimeoutSeconds", str(timeout)))
    return Decision(
        Outcome.DRAIN,
        f"drain {op.node_id} from {target} (up to {timeout}s)",
        (SendCommand(DRAIN, target, params, then),),
    )


def _after_drain(op: LeaveOp, f: LeaveFacts, now: float, p: LeavePolicy, why: str) -> LeaveDecision:
    # A new stage counts its own attempts; managers that failed the drain stay excluded.
    op = replace(op, reason=why, attempts=0)
    if op.role is Role.MANAGER:
        return _to_removal(op, f, now, p, fresh=True, reason=why)
    return _send_leave(op, f, now, p, why)


def _send_leave(op: LeaveOp, f: LeaveFacts, now: float, p: LeavePolicy, why: str) -> LeaveDecision:
    if f.instance is None or f.instance.gone:
        return _after_leave(_next(op, stage=LeaveStage.LEAVING), f, now, p)
    then = _next(op, stage=LeaveStage.LEAVING, target=op.instance_id, waiting_for="")
    return Decision(
        Outcome.LEAVE,
        f"{why}; leave-swarm on {op.instance_id}",
        (SendCommand(LEAVE, op.instance_id, (), then),),
    )


def _after_leave(op: LeaveOp, f: LeaveFacts, now: float, p: LeavePolicy) -> LeaveDecision:
    if op.role is Role.MANAGER:  # managers leave after their removal
        return _finish(op, now, p, "removed and left")
    return _to_removal(replace(op, excluded=(), attempts=0), f, now, p, fresh=False)


def _to_removal(
    op: LeaveOp, f: LeaveFacts, now: float, p: LeavePolicy, fresh: bool, reason: str = ""
) -> LeaveDecision:
    """Send remove-node from a manager, or wait (fresh view, quorum guard, manager lock, a manager)."""
    removing = replace(op, stage=LeaveStage.REMOVING, command_id="")
    if now >= op.deadline:
        return _give_up(removing, f"gave up removing after {int(now - op.started_at)}s", now, p)
    lock_until: float | None = None
    alert: tuple[LeaveAction, ...] = ()
    if op.role is Role.MANAGER:
        verdict = gate(removing, f, now, p, fresh)
        removing = verdict.op
        if verdict.alert:
            alert = (Publish(_event(p, removing, QUORUM_AT_RISK, verdict.alert)),)
        if verdict.not_listed:
            return _after_removal(removing, f, now, p, demoted=False, why="not a manager in the swarm view")
        if verdict.wait_for:
            first = alert + (
                (RequestView(op.correlation_id, op.instance_id),) if verdict.request_view else ()
            )
            first += (ReleaseManagerLock(op.instance_id),) if verdict.release_lock else ()
            d = _wait(removing, verdict.wait_for, now, p, verdict.delay)
            return replace(d, actions=(*first, *d.actions))
        lock_until = now + p.lock_seconds
    target = _pick(removing, f)
    if target is None:
        return _wait(
            replace(removing, excluded=()), "a manager to remove the node from", now, p, p.poll_seconds
        )
    then = _next(removing, target=target, waiting_for="")
    params = (("NodeId", op.node_id), ("ParameterPrefix", p.parameter_prefix), ("Region", p.region))
    why = f"{reason}; " if reason else ""
    send = SendCommand(REMOVE, target, params, then, lock_until)
    return Decision(Outcome.REMOVE, f"{why}remove {op.node_id} from {target}", (*alert, send))


def _retry_removal(failed: LeaveOp, f: LeaveFacts, now: float, p: LeavePolicy, fresh: bool) -> LeaveDecision:
    """Another manager, up to ``manager_attempts`` of them; then a pause before a new round of tries
    (for a manager on a view taken after the pause)."""
    if failed.attempts < p.manager_attempts:
        return _to_removal(failed, f, now, p, fresh=fresh)
    if now >= failed.deadline:
        return _give_up(failed, f"gave up removing after {int(now - failed.started_at)}s", now, p)
    rested = replace(failed, stage=LeaveStage.REMOVING, command_id="", excluded=(), attempts=0)
    if failed.role is Role.MANAGER:
        rested = replace(rested, view_wanted_at=now + p.poll_seconds)
    what = f"a new round of removal attempts ({failed.attempts} managers failed)"
    return _wait(rested, what, now, p, p.poll_seconds)


def _after_removal(
    op: LeaveOp, f: LeaveFacts, now: float, p: LeavePolicy, demoted: bool = True, why: str = "removed"
) -> LeaveDecision:
    events: tuple[LeaveAction, ...] = ()
    if op.role is Role.MANAGER:
        if demoted:
            events = (Publish(_event(p, op, MANAGER_DEMOTED, "demoted and removed from the swarm")),)
        events += (ReleaseManagerLock(op.instance_id),)
        if op.graceful and f.instance is not None and not f.instance.gone:
            d = _send_leave(op, f, now, p, why)
            return replace(d, actions=events + d.actions)
    d = _finish(op, now, p, why)
    return replace(d, actions=events + d.actions)


def _finish(op: LeaveOp, now: float, p: LeavePolicy, why: str) -> LeaveDecision:
    closed = _closing(_next(op, stage=LeaveStage.DONE, command_id="", reason=why), now, p)
    kind = NODE_REMOVED if op.graceful else DEAD_NODE_REMOVED
    forget = ForgetNode(op.instance_id, clear_tag=op.into_warm_pool)
    actions: tuple[LeaveAction, ...] = (forget, Publish(_event(p, op, kind, why)))
    if op.group:
        actions += (CompleteTerminate(op.instance_id, op.group),)
    return Decision(Outcome.REMOVED, f"node {op.node_id} {why}", (*actions, SaveLeave(closed)))


def _give_up(op: LeaveOp, why: str, now: float, p: LeavePolicy) -> LeaveDecision:
    """The hook budget is spent: let the instance go; reconcile removes what is left of the node."""
    closed = _closing(_next(op, stage=LeaveStage.DONE, command_id="", reason=why), now, p)
    actions: tuple[LeaveAction, ...] = ()
    if op.role is Role.MANAGER:
        actions += (ReleaseManagerLock(op.instance_id),)
    if op.group:
        actions += (CompleteTerminate(op.instance_id, op.group),)
    return Decision(Outcome.GAVE_UP, f"{why}; left to reconcile", (*actions, SaveLeave(closed)))


# ------------------------------------------------------------------------------------- helpers


def _wait(op: LeaveOp, what: str, now: float, p: LeavePolicy, delay: int) -> LeaveDecision:
    delay = int(max(1, min(delay, 900, op.deadline - now)))
    waiting = _next(op, command_id="", waiting_for=what)
    actions: tuple[LeaveAction, ...] = (SaveLeave(waiting),)
    if op.group:
        actions += (Heartbeat(op.instance_id, op.group),)
    step = LeaveStepDue(op.instance_id, waiting.version, op.correlation_id)
    return Decision(Outcome.WAIT, f"waiting {delay}s for {what}", (*actions, ScheduleLeaveStep(step, delay)))


def _bounded(delay: int, left: float) -> int:
    """``delay``, but never past what is ``left`` of a wait (at least a second)."""
    return int(max(1, min(delay, left)))


def _resume(op: LeaveOp) -> tuple[LeaveAction, ...]:
    """A saved op invalidates the step scheduled for its previous version: schedule one anew."""
    if op.waiting_for and not op.command_id:
        return (ScheduleLeaveStep(LeaveStepDue(op.instance_id, op.version, op.correlation_id), 1),)
    return ()


def _pick(op: LeaveOp, f: LeaveFacts) -> str | None:
    return next((m for m in f.managers if m != op.instance_id and m not in op.excluded), None)


def _failed(op: LeaveOp, reason: str) -> LeaveOp:
    excluded = (*op.excluded, op.target) if op.target and op.target != op.instance_id else op.excluded
    return replace(op, excluded=excluded, attempts=op.attempts + 1, reason=reason)


def _next(op: LeaveOp, **changes: Any) -> LeaveOp:
    return replace(op, version=op.version + 1, **changes)


def _closing(op: LeaveOp, now: float, p: LeavePolicy) -> LeaveOp:
    return replace(op, waiting_for="", expires_at=now + p.closed_op_seconds)


def _state(f: LeaveFacts) -> str:
    return f.instance.state if f.instance is not None else "gone"


def _ignore(reason: str) -> LeaveDecision:
    return ignore(reason)


def _event(p: LeavePolicy, op: LeaveOp, kind: DetailType, reason: str) -> BusEvent:
    return BusEvent(
        detail_type=kind,
        cluster=p.identity.name,
        instance_id=op.instance_id,
        node_id=op.node_id,
        role=str(op.role),
        reason=reason,
        correlation_id=op.correlation_id,
    )
