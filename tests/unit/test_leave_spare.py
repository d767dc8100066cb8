"""A manager removal keeps the cluster's spare while Auto Scaling launches a replacement; locks free
on a fresh view; the drain deadline on a delayed step; the removal attempt limit. Pure decisions
(``domain.leave.decide_leave``), every manager count 1-7 where it matters. Given / When / Then."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from test_leave_decision import IDENTITY, KINDS, NOW, POLICY
from test_leave_decision import facts as worker_facts
from test_leave_decision import op as worker_op
from test_leave_decision import view_of as view_at_now

from swarmkeeper.domain.join import Publish
from swarmkeeper.domain.leave import DRAIN, LEAVE, QUORUM_AT_RISK, REMOVE, decide_leave
from swarmkeeper.domain.leave_types import (
    LeaveCommandFinished,
    LeaveFacts,
    LeaveNotDelivered,
    LeavePolicy,
    LeaveStepDue,
    ReleaseManagerLock,
    RequestView,
    SendCommand,
)
from swarmkeeper.domain.manager_removal import ANOTHER_CHANGE, REPLACEMENT, waits_for_a_replacement
from swarmkeeper.domain.models import GroupLaunches, InstanceFacts, LeaveOp, LeaveStage, Role
from swarmkeeper.domain.quorum import costs_no_spare, majority
from swarmkeeper.domain.view import ClusterView

DEADLINE = NOW + 2000  # the op's deadline: the replacement wait ends removal_seconds before it
UNTIL = DEADLINE - POLICY.removal_seconds
REPLACEMENT_ID = "i-0eeeeeeeeeeeeeee1"
COMING = GroupLaunches(launching=(REPLACEMENT_ID,))


def view_of(kinds: tuple[str, ...]) -> tuple[ClusterView, list[str]]:
    """Managers of the given kinds, in a view taken a second before NOW."""
    view, ids = view_at_now(kinds)
    return replace(view, taken_at=NOW - 1), ids


def removing(instance_id: str, node_id: str, **changes) -> LeaveOp:
    base = LeaveOp(
        instance_id,
        Role.MANAGER,
        node_id,
        LeaveStage.REMOVING,
        3,
        NOW - 400,
        NOW - 100,
        DEADLINE,
        "corr",
        "lifecycle",
        group=IDENTITY.manager_group,
        view_wanted_at=NOW - 2,
        waiting_for="a fresh swarm view",
    )
    return replace(base, **changes)


def facts_for(view: ClusterView, instance_id: str, node_id: str, **changes) -> LeaveFacts:
    base = LeaveFacts(
        InstanceFacts(instance_id, "running", {}, "10.0.0.9"),
        Role.MANAGER,
        node_id,
        view=view,
        managers=view.command_managers(exclude_instances=(instance_id,)),
        replacements=COMING,
    )
    return replace(base, **changes)


def three_ready(target: int = 1) -> tuple[ClusterView, str, str]:
    view, ids = view_of(("ready", "ready", "ready"))
    return view, view.manager_instances[ids[target]], ids[target]


def step(op: LeaveOp, f: LeaveFacts, now: float = NOW, policy: LeavePolicy = POLICY):
    return decide_leave(LeaveStepDue(op.instance_id, op.version), f, op, now, policy)


def removals(decision) -> list[SendCommand]:
    return [a for a in decision.actions if isinstance(a, SendCommand) and a.action == REMOVE]


def saved(decision) -> LeaveOp:
    return next(a.op for a in decision.actions if type(a).__name__ == "SaveLeave")


def alerts(decision) -> list[str]:
    return [
        a.event.reason
        for a in decision.actions
        if isinstance(a, Publish) and a.event.detail_type == QUORUM_AT_RISK
    ]


# --- the spare, exhaustively ------------------------------------------------------------------


def mixes():
    for n in range(1, 8):
        for kinds in itertools.combinations_with_replacement(KINDS, n):
            for target in sorted(set(range(n)), key=lambda i: kinds[i]):
                yield kinds, target


def test_while_a_replacement_launches_no_removal_leaves_the_cluster_without_a_spare():
    held = removed = 0
    for kinds, target in mixes():
        # Given a live manager held by its terminate hook, and a replacement launching
        view, ids = view_of(kinds)
        node_id = ids[target]
        iid = view.manager_instances[node_id]
        op = removing(iid, node_id)
        f = facts_for(view, iid, node_id)

        # When its removal is decided, with time left before the replacement deadline
        d = step(op, f)
        without = step(op, replace(f, replacements=GroupLaunches()))

        # Then a removal sent keeps a reachable manager beyond the majority, or takes no reachable one
        n = len(kinds)
        reachable = sum(KINDS[k][1] == "reachable" for k in kinds)
        leaving_reachable = KINDS[kinds[target]][1] == "reachable"
        after = reachable - leaving_reachable
        if removals(d):
            removed += 1
            assert not leaving_reachable or after >= majority(n - 1) + 1, (kinds, target)
        # And it is held only where the quorum guard alone would have removed it, waiting for the
        # replacement (with a heartbeat), never for nothing
        if removals(without) and not removals(d):
            held += 1
            assert leaving_reachable and after < majority(n - 1) + 1, (kinds, target)
            assert d.outcome == "wait" and REPLACEMENT in d.reason
        if not removals(without):
            assert not removals(d), (kinds, target)
    assert held > 50 and removed > 50


def test_costs_no_spare_counts_only_reachable_managers():
    view, ids = view_of(("ready", "ready", "ready", "down"))
    # 3 of 4 reachable: removing a reachable one leaves 2 of 3 (no spare); the down one costs nothing
    assert not costs_no_spare(view.managers, ids[0]).allowed
    assert costs_no_spare(view.managers, ids[3]).allowed
    five, five_ids = view_of(("ready",) * 5)
    assert costs_no_spare(five.managers, five_ids[2]).allowed  # 4 of 4 remain, 3 needed


# --- examples of the wait and its end ----------------------------------------------------------


def test_three_of_three_waits_for_the_launching_replacement_and_heartbeats():
    view, iid, node_id = three_ready()
    d = step(removing(iid, node_id), facts_for(view, iid, node_id))
    assert d.outcome == "wait" and removals(d) == []
    waiting = saved(d)
    assert waits_for_a_replacement(waiting) and REPLACEMENT_ID in waiting.waiting_for
    assert waiting.view_wanted_at == NOW  # the next look is on a view taken after this one
    assert any(type(a).__name__ == "Heartbeat" for a in d.actions)
    (scheduled,) = [a for a in d.actions if type(a).__name__ == "ScheduleLeaveStep"]
    assert scheduled.delay_seconds == POLICY.replacement_poll_seconds
    assert alerts(d) == []


def test_the_next_look_asks_for_a_fresh_view():
    view, iid, node_id = three_ready()
    waiting = saved(step(removing(iid, node_id), facts_for(view, iid, node_id)))
    d = step(waiting, facts_for(view, iid, node_id), now=NOW + 30)
    assert any(isinstance(a, RequestView) for a in d.actions) and removals(d) == []


def test_a_replacement_already_listed_as_a_manager_is_not_waited_for():
    # Given three managers, the third the replacement: in the view (it joined the raft) but still
    # Pending:Wait while its join is verified; removing the leaving one leaves 2 of 2
    view, ids = view_of(("ready",) * 3)
    iid, node_id = view.manager_instances[ids[0]], ids[0]
    launching = GroupLaunches(launching=(view.manager_instances[ids[2]],))
    d = step(removing(iid, node_id), facts_for(view, iid, node_id, replacements=launching))
    # Then it is not waited for: it has come, and nothing else is coming
    assert len(removals(d)) == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"replacements": GroupLaunches()},  # nothing launching: waiting gains nothing
        {"instance": InstanceFacts("i-x", "terminated", {}, None)},  # gone: it is no member to keep
    ],
)
def test_no_wait_when_nothing_comes_or_the_instance_is_gone(changes):
    view, iid, node_id = three_ready()
    d = step(removing(iid, node_id), facts_for(view, iid, node_id, **changes))
    assert len(removals(d)) == 1 and alerts(d) == []


def test_no_wait_without_a_terminate_hook_holding_the_instance():
    view, iid, node_id = three_ready()
    d = step(removing(iid, node_id, group=None, via="spot"), facts_for(view, iid, node_id))
    assert len(removals(d)) == 1


def test_capacity_still_to_launch_counts_as_a_replacement_coming():
    # Given a replacement whose launch was abandoned: nothing Pending, one still owed
    view, iid, node_id = three_ready()
    owed = GroupLaunches(owed=1)
    d = step(removing(iid, node_id), facts_for(view, iid, node_id, replacements=owed))
    assert d.outcome == "wait" and "1 still to launch" in d.reason


def test_at_the_replacement_deadline_it_goes_on_and_says_quorum_is_at_risk_once():
    view, iid, node_id = three_ready()
    f = facts_for(view, iid, node_id)

    # A second before, it waits (never past the deadline)
    before = step(removing(iid, node_id), f, now=UNTIL - 1)
    assert removals(before) == [] and before.actions[-1].delay_seconds == 1

    # At the deadline, the guard allows it: removed, with Quorum At Risk naming the replacement
    at = step(removing(iid, node_id), f, now=UNTIL)
    (send,) = removals(at)
    (reason,) = alerts(at)
    assert REPLACEMENT_ID in reason and "no failure tolerated" in reason
    assert send.then.spare_waived and send.lock_until is not None

    # When that removal fails and is tried again, no second alert
    failed = replace(send.then, command_id="cmd", target=send.target)
    retry = decide_leave(
        LeaveCommandFinished(iid, "cmd", REMOVE, "Failed", ran_on=send.target), f, failed, UNTIL + 5, POLICY
    )
    fresh = replace(f, view=replace(view, taken_at=UNTIL + 10))
    again = step(saved(retry), fresh, now=UNTIL + 20)
    assert alerts(retry) == [] and alerts(again) == [] and len(removals(again)) == 1


def test_past_the_deadline_the_quorum_guard_still_decides():
    # Given 2 of 3 reachable (another manager is down): removing a reachable one would lose quorum
    view, ids = view_of(("ready", "ready", "down"))
    iid, node_id = view.manager_instances[ids[0]], ids[0]
    d = step(removing(iid, node_id), facts_for(view, iid, node_id), now=UNTIL + 1)
    assert removals(d) == [] and "quorum guard" in d.reason


def test_a_waiting_removal_lets_go_of_a_lock_it_holds():
    view, iid, node_id = three_ready()
    d = step(removing(iid, node_id), facts_for(view, iid, node_id, lock_holder=iid))
    assert ReleaseManagerLock(iid) in d.actions and d.outcome == "wait"


# --- the manager-change lock ------------------------------------------------------------------


def test_after_waiting_for_another_change_it_decides_on_a_view_taken_since():
    # Given five managers; this removal found the lock held by another leaving manager
    view, ids = view_of(("ready",) * 5)
    iid, node_id = view.manager_instances[ids[1]], ids[1]
    waiting = removing(iid, node_id, waiting_for=ANOTHER_CHANGE, view_wanted_at=NOW - 60)
    f = facts_for(view, iid, node_id, replacements=GroupLaunches())

    # When the lock is still held, it waits on, without asking for a view
    held = step(waiting, replace(f, lock_holder="i-0ffffffffffffffff"))
    assert held.outcome == "wait" and not any(isinstance(a, RequestView) for a in held.actions)

    # When the holder let go, it asks for a view taken after now, even though its view is newer
    # than the one it asked for before (that view still lists the holder's manager)
    free = step(waiting, f)
    assert removals(free) == [] and any(isinstance(a, RequestView) for a in free.actions)
    assert saved(free).view_wanted_at == NOW


# --- the drain deadline on a delayed step -------------------------------------------------------


def draining_worker(**changes) -> LeaveOp:
    return worker_op(waiting_for="2 tasks to move", **changes)


def test_a_delayed_drain_step_polls_before_the_drain_deadline_and_goes_on_at_it():
    op = draining_worker()
    before = step(op, worker_facts(), now=op.drain_deadline - 1)
    (poll,) = [a for a in before.actions if isinstance(a, SendCommand)]
    assert poll.action == DRAIN and dict(poll.parameters)["TimeoutSeconds"] == "1"

    at = step(op, worker_facts(), now=op.drain_deadline)
    (leave,) = [a for a in at.actions if isinstance(a, SendCommand)]
    assert leave.action == LEAVE and "drain budget" in at.reason


# --- the removal attempt limit, at its boundary -----------------------------------------------


def four_managers() -> tuple[str, ...]:
    return tuple(f"i-0000000000000000{i}" for i in range(1, 5))


def removing_worker(attempts: int, excluded: tuple[str, ...]) -> LeaveOp:
    return replace(
        draining_worker(),
        stage=LeaveStage.REMOVING,
        waiting_for="",
        command_id="cmd",
        target=four_managers()[attempts],
        attempts=attempts,
        excluded=excluded,
    )


@pytest.mark.parametrize("how", ["failed", "not-delivered"])
def test_removal_tries_manager_attempts_managers_then_pauses_for_a_new_round(how):
    managers = four_managers()
    f = replace(worker_facts(), managers=managers)

    def fail(op: LeaveOp):
        if how == "failed":
            stimulus = LeaveCommandFinished(op.instance_id, "cmd", REMOVE, "Failed", ran_on=op.target)
        else:
            op = replace(op, command_id="")
            stimulus = LeaveNotDelivered(op.instance_id, op.version, REMOVE, op.target)
        return decide_leave(stimulus, f, op, NOW, POLICY)

    # Given attempts one short of the limit: the next failure still moves to another manager
    last = POLICY.manager_attempts - 1
    d = fail(removing_worker(last - 1, managers[: last - 1]))
    (send,) = removals(d)
    assert send.target == managers[last] and send.then.attempts == last

    # At the limit (a fourth manager is there to try), it pauses, with a heartbeat, and starts afresh
    d = fail(removing_worker(last, managers[:last]))
    assert removals(d) == [] and d.outcome == "wait"
    rested = saved(d)
    assert rested.attempts == 0 and rested.excluded == () and "new round" in rested.waiting_for
    assert any(type(a).__name__ == "Heartbeat" for a in d.actions)
    again = step(rested, f, now=NOW + POLICY.poll_seconds)
    assert removals(again)[0].target == managers[0]


def test_a_manager_removal_after_the_pause_is_decided_on_a_fresh_view():
    view, ids = view_of(("ready",) * 5)
    iid, node_id = view.manager_instances[ids[4]], ids[4]
    f = facts_for(view, iid, node_id, replacements=GroupLaunches())
    op = removing(
        iid,
        node_id,
        waiting_for="",
        command_id="cmd",
        target=f.managers[2],
        attempts=POLICY.manager_attempts - 1,
        excluded=f.managers[:2],
    )
    d = decide_leave(LeaveCommandFinished(iid, "cmd", REMOVE, "Failed", ran_on=op.target), f, op, NOW, POLICY)
    assert ReleaseManagerLock(iid) in d.actions and removals(d) == []
    rested = saved(d)
    again = step(rested, f, now=NOW + POLICY.poll_seconds)
    assert any(isinstance(a, RequestView) for a in again.actions) and removals(again) == []


def test_at_the_deadline_with_the_lock_held_elsewhere_the_alert_is_not_lost():
    view, iid, node_id = three_ready()
    f = facts_for(view, iid, node_id, lock_holder="i-0ffffffffffffffff")
    d = step(removing(iid, node_id), f, now=UNTIL)
    assert removals(d) == [] and len(alerts(d)) == 1
    assert saved(d).spare_waived and saved(d).waiting_for.startswith(ANOTHER_CHANGE)
