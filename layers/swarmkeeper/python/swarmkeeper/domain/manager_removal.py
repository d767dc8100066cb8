"""Whether a manager's removal may go on now, a pure function of (the leave op, facts, now, policy).

``domain.leave`` asks ``gate`` before it sends remove-node for a manager and turns the answer into
actions. In order, a removal

- decides on a swarm view taken after it asked for one (a reconcile pass refreshes ``view#cluster``),
  and after waiting for the manager-change lock, on a view taken after its holder let go (the holder's
  change moved the configuration);
- passes ``quorum.can_remove_manager`` on that view (Quorum At Risk once, when it does not);
- keeps the cluster's spare while Auto Scaling brings in a replacement: a live manager held by its
  terminate hook whose removal would leave no reachable manager beyond the majority
  (``quorum.costs_no_spare``) waits while the group launches one the view does not list yet
  (``models.GroupLaunches``), a look on a fresh view every ``replacement_poll_seconds`` (at once when
  a manager joins), without the manager-change lock, so the replacement's join never waits for it; at
  ``replacement_wait_until`` it goes on if the guard allows it, and publishes Quorum At Risk once;
- takes the manager-change lock (one manager change at a time).
"""

from __future__ import annotations

from dataclasses import replace

from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.leave_types import LeaveFacts, LeavePolicy
from swarmkeeper.domain.models import LeaveOp, LeaveStage
from swarmkeeper.domain.quorum import can_remove_manager, costs_no_spare
from swarmkeeper.domain.view import ClusterView

# What a removal waits for (the start of the op's waiting_for), and what wakes it: a fresh view, the
# reconcile pass that saves one; another manager change, the lock's release; a replacement, a
# manager's join.
FRESH_VIEW = "a fresh swarm view"
ANOTHER_CHANGE = "another manager change"
REPLACEMENT = "a replacement manager"


@frozen
class Gate:
    """``op`` with what the gate noted (the view wanted, alerts sent); go on unless ``wait_for``."""

    op: LeaveOp
    wait_for: str = ""
    delay: int = 0
    request_view: bool = False
    release_lock: bool = False  # a waiting removal holds no lock
    alert: str = ""  # the reason of a Quorum At Risk to publish
    not_listed: bool = False  # the view has no such manager: nothing to remove


def gate(op: LeaveOp, facts: LeaveFacts, now: float, policy: LeavePolicy, fresh: bool) -> Gate:
    removing = op
    others_lock = facts.lock_holder not in (None, op.instance_id)
    if op.waiting_for.startswith(ANOTHER_CHANGE):
        if others_lock:
            return Gate(removing, f"{ANOTHER_CHANGE} ({facts.lock_holder})", policy.view_wait_seconds)
        fresh = True
    if fresh or removing.view_wanted_at == 0:
        removing = replace(removing, view_wanted_at=now)
    view = facts.view
    if view is None or view.taken_at < removing.view_wanted_at:
        return Gate(removing, FRESH_VIEW, policy.view_wait_seconds, request_view=True)
    if view.node(op.node_id) is None:
        return Gate(removing, not_listed=True)
    guard = can_remove_manager(view.managers, op.node_id)
    if not guard.allowed:
        alert = "" if removing.alerted else f"waiting to remove: {guard.reason}"
        waiting = replace(removing, alerted=True, view_wanted_at=now)  # decide again on the next view
        what = f"the quorum guard ({guard.reason})"
        return Gate(waiting, what, policy.guard_wait_seconds, request_view=True, alert=alert)
    alert = ""
    spare = costs_no_spare(view.managers, op.node_id)
    coming = _coming(facts, view)
    if not spare.allowed and coming and op.group and facts.instance is not None and not facts.instance.gone:
        until = policy.replacement_wait_until(op)
        if now < until:
            waiting = replace(removing, view_wanted_at=now)  # the next look is on a view taken after
            delay = int(max(1, min(policy.replacement_poll_seconds, until - now)))
            what = f"{REPLACEMENT} ({', '.join(coming)}): {spare.reason}"
            return Gate(waiting, what, delay, release_lock=facts.lock_holder == op.instance_id)
        if not removing.spare_waived:
            alert = f"{REPLACEMENT} ({', '.join(coming)}) did not join in time: {spare.reason}"
            removing = replace(removing, spare_waived=True)
    if others_lock:
        return Gate(
            removing, f"{ANOTHER_CHANGE} ({facts.lock_holder})", policy.view_wait_seconds, alert=alert
        )
    return Gate(removing, alert=alert)


def waits_for_a_replacement(op: LeaveOp) -> bool:
    """A manager removal that a manager's join moves on."""
    return _waits_for(op, REPLACEMENT)


def waits_for_the_lock(op: LeaveOp) -> bool:
    """A manager removal that the manager-change lock's release moves on."""
    return _waits_for(op, ANOTHER_CHANGE)


def _waits_for(op: LeaveOp, what: str) -> bool:
    return op.stage is LeaveStage.REMOVING and not op.command_id and op.waiting_for.startswith(what)


def _coming(facts: LeaveFacts, view: ClusterView) -> tuple[str, ...]:
    """Launching manager instances the view does not list as managers yet, and what is still to launch."""
    listed = set(view.manager_instances.values())
    coming = tuple(iid for iid in facts.replacements.launching if iid not in listed)
    owed = facts.replacements.owed
    return (*coming, f"{owed} still to launch") if owed else coming
