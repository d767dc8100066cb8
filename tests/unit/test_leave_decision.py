"""The exit flow's decision (``domain.leave.decide_leave``), pure: every stage and the quorum guard
over every manager count 1-7 and every mix of manager states. Given / When / Then."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from swarmkeeper.domain.kernel import Publish
from swarmkeeper.domain.leave import DRAIN, LEAVE, REMOVE, decide_leave
from swarmkeeper.domain.leave_types import (
    CompleteTerminate,
    CreateLeave,
    Heartbeat,
    LeaveCommandFinished,
    LeaveFacts,
    LeaveNotDelivered,
    LeavePolicy,
    LeaveRequested,
    LeaveStepDue,
    RequestView,
    SaveLeave,
    ScheduleLeaveStep,
    SendCommand,
)
from swarmkeeper.domain.models import ClusterIdentity, InstanceFacts, JoinOp, LeaveOp, LeaveStage, Role, Stage
from swarmkeeper.domain.quorum import majority
from swarmkeeper.domain.swarm import SwarmNode
from swarmkeeper.domain.view import ClusterView

NOW = 1_800_000_000.0
IDENTITY = ClusterIdentity("demo", "swarmkeeper-demo-managers", "swarmkeeper-demo-workers")
POLICY = LeavePolicy(
    IDENTITY, drain_timeout_seconds=300, parameter_prefix="/swarmkeeper/demo", region="us-east-1"
)
LEAVING = "i-0000000000000000a"
NODE = "a" * 25
MANAGERS = ("i-00000000000000001", "i-00000000000000002")


def instance(role: Role = Role.WORKER, state: str = "running", node_id: str = NODE) -> InstanceFacts:
    group = IDENTITY.manager_group if role is Role.MANAGER else IDENTITY.worker_group
    tags = {"aws:autoscaling:groupName": group, "swarmkeeper:node-id": node_id}
    return InstanceFacts(LEAVING, state, tags, "10.0.0.9")


def facts(role: Role = Role.WORKER, **changes) -> LeaveFacts:
    base = LeaveFacts(instance(role), role, NODE, managers=MANAGERS)
    return replace(base, **changes)


def op(role: Role = Role.WORKER, stage: LeaveStage = LeaveStage.DRAINING, **changes) -> LeaveOp:
    base = LeaveOp(
        LEAVING,
        role,
        NODE,
        stage,
        3,
        NOW - 10,
        NOW + 290,
        NOW + 3000,
        "corr",
        "lifecycle",
        group=IDENTITY.worker_group,
    )
    return replace(base, **changes)


def sent(decision) -> list[SendCommand]:
    return [a for a in decision.actions if isinstance(a, SendCommand)]


def test_terminate_starts_a_drain_on_a_manager_with_a_bounded_timeout():
    d = decide_leave(
        LeaveRequested(LEAVING, "lifecycle", "c", IDENTITY.worker_group), facts(), None, NOW, POLICY
    )
    assert d.outcome == "drain"
    create, publish, send = d.actions
    assert isinstance(create, CreateLeave) and create.replacing is None
    assert isinstance(publish, Publish) and publish.event.detail_type == "Node Draining"
    assert send.action == DRAIN and send.target == MANAGERS[0] and send.then.version == create.op.version + 1
    assert dict(send.parameters) == {"NodeId": NODE, "TimeoutSeconds": "120"}


def test_spot_drain_fits_in_the_two_minute_warning():
    d = decide_leave(LeaveRequested(LEAVING, "spot", "c"), facts(), None, NOW, POLICY)
    (send,) = sent(d)
    assert int(dict(send.parameters)["TimeoutSeconds"]) <= 90
    assert send.then.drain_deadline <= NOW + 90


def test_terminate_replaces_a_join_in_flight_on_its_version():
    join = JoinOp(LEAVING, Role.WORKER, IDENTITY.worker_group, Stage.WAITING, 4, NOW, NOW, "j", "lifecycle")
    d = decide_leave(
        LeaveRequested(LEAVING, "lifecycle", "c", IDENTITY.worker_group),
        facts(node_id="", join=join),
        None,
        NOW,
        POLICY,
    )
    create, cancelled, complete = d.actions
    assert create.replacing == 4 and create.op.version == 5 and create.op.stage is LeaveStage.DONE
    assert cancelled.event.detail_type == "Node Join Cancelled"
    assert complete == CompleteTerminate(LEAVING, IDENTITY.worker_group)


@pytest.mark.parametrize(
    ("stimulus", "f"),
    [
        (LeaveRequested(LEAVING, "lifecycle", "c", "another-group"), facts()),
        (LeaveRequested(LEAVING, "state", "c"), facts(role=None)),
        (LeaveRequested(LEAVING, "rebalance", "c"), facts(Role.MANAGER)),
    ],
)
def test_requests_that_are_not_ours_to_act_on_are_ignored(stimulus, f):
    assert decide_leave(stimulus, f, None, NOW, POLICY).outcome == "ignore"


def test_rebalance_follows_the_setting():
    off = replace(POLICY, rebalance_drain_workers=False)
    assert (
        decide_leave(LeaveRequested(LEAVING, "rebalance", "c"), facts(), None, NOW, off).outcome == "ignore"
    )
    assert (
        decide_leave(LeaveRequested(LEAVING, "rebalance", "c"), facts(), None, NOW, POLICY).outcome == "drain"
    )


def test_a_gone_worker_is_removed_at_once():
    gone = facts(instance=instance(state="terminated"))
    d = decide_leave(LeaveRequested(LEAVING, "state", "c"), gone, None, NOW, POLICY)
    (send,) = sent(d)
    assert d.outcome == "remove" and send.action == REMOVE and send.then.via == "state"


def test_tasks_remaining_waits_with_a_heartbeat_then_proceeds_past_the_budget():
    draining = op(command_id="cmd", target=MANAGERS[0])
    finished = LeaveCommandFinished(LEAVING, "cmd", DRAIN, "Success", tasks_remaining=2)
    d = decide_leave(finished, facts(), draining, NOW, POLICY)
    assert d.outcome == "wait"
    assert any(isinstance(a, Heartbeat) for a in d.actions)
    assert any(isinstance(a, ScheduleLeaveStep) for a in d.actions)
    late = decide_leave(finished, facts(), draining, NOW + 300, POLICY)
    (send,) = sent(late)
    assert send.action == LEAVE and send.target == LEAVING


def test_failed_drain_moves_to_another_manager():
    draining = op(command_id="cmd", target=MANAGERS[0])
    d = decide_leave(LeaveCommandFinished(LEAVING, "cmd", DRAIN, "Failed"), facts(), draining, NOW, POLICY)
    (send,) = sent(d)
    assert send.target == MANAGERS[1] and MANAGERS[0] in send.then.excluded


def test_stale_and_non_terminal_results_are_ignored():
    draining = op(command_id="cmd")
    assert (
        decide_leave(
            LeaveCommandFinished(LEAVING, "old", DRAIN, "Success", 0), facts(), draining, NOW, POLICY
        ).outcome
        == "ignore"
    )
    assert (
        decide_leave(
            LeaveCommandFinished(LEAVING, "cmd", DRAIN, "InProgress"), facts(), draining, NOW, POLICY
        ).outcome
        == "ignore"
    )
    assert decide_leave(LeaveStepDue(LEAVING, 2), facts(), draining, NOW, POLICY).outcome == "ignore"


def test_leave_swarm_not_deliverable_is_skipped():
    leaving = op(stage=LeaveStage.DRAINING)
    d = decide_leave(LeaveNotDelivered(LEAVING, 3, LEAVE, LEAVING), facts(), leaving, NOW, POLICY)
    (send,) = sent(d)
    assert send.action == REMOVE


def test_worker_removed_completes_and_publishes():
    removing = op(stage=LeaveStage.REMOVING, command_id="cmd", target=MANAGERS[0])
    d = decide_leave(
        LeaveCommandFinished(LEAVING, "cmd", REMOVE, "Success", removed=True), facts(), removing, NOW, POLICY
    )
    assert d.outcome == "removed"
    kinds = [a.event.detail_type for a in d.actions if isinstance(a, Publish)]
    assert kinds == ["Node Removed"]
    assert CompleteTerminate(LEAVING, IDENTITY.worker_group) in d.actions
    assert d.actions[-1].op.stage is LeaveStage.DONE


def test_past_the_deadline_the_action_completes_anyway():
    waiting = op(stage=LeaveStage.REMOVING, waiting_for="x")
    d = decide_leave(LeaveStepDue(LEAVING, 3), facts(), waiting, NOW + 3000, POLICY)
    assert d.outcome == "gave-up" and CompleteTerminate(LEAVING, IDENTITY.worker_group) in d.actions


# --- the quorum guard, exhaustively -----------------------------------------------------------

KINDS = {  # (node state, manager status)
    "ready": ("ready", "reachable"),
    "down": ("down", "unreachable"),
    "unreachable": ("ready", "unreachable"),
    "disconnected": ("down", "reachable"),
}


def view_of(kinds: tuple[str, ...]) -> tuple[ClusterView, list[str]]:
    nodes, ids, leader = [], [], False
    for i, kind in enumerate(kinds):
        state, status = KINDS[kind]
        if status == "reachable" and not leader:
            status, leader = "leader", True
        node_id = f"{i:025d}"
        ids.append(node_id)
        nodes.append(SwarmNode(node_id, Role.MANAGER, state, "active", status, f"10.0.1.{i + 1}", f"m{i}"))
    mapping = {n.node_id: f"i-{i:017x}" for i, n in enumerate(nodes)}
    return ClusterView(NOW, tuple(nodes), mapping), ids


def mixes():
    for n in range(1, 8):
        for kinds in itertools.combinations_with_replacement(KINDS, n):
            for target in sorted(set(range(n)), key=lambda i: kinds[i]):
                yield kinds, target


@pytest.mark.parametrize("via", ["lifecycle", "state"])
def test_no_manager_removal_ever_breaks_a_majority(via):
    checked = removals = 0
    for kinds, target in mixes():
        view, ids = view_of(kinds)
        node_id = ids[target]
        leaving_instance = view.manager_instances[node_id]
        reachable = [k for k in kinds if KINDS[k][1] == "reachable"]
        waiting = op(
            Role.MANAGER,
            LeaveStage.REMOVING,
            instance_id=leaving_instance,
            node_id=node_id,
            via=via,
            view_wanted_at=NOW - 1,
            waiting_for="x",
        )
        f = LeaveFacts(
            InstanceFacts(leaving_instance, "terminated" if via == "state" else "running", {}, None),
            Role.MANAGER,
            node_id,
            view=view,
            managers=view.command_managers(exclude_instances=(leaving_instance,)),
        )
        d = decide_leave(LeaveStepDue(leaving_instance, waiting.version), f, waiting, NOW, POLICY)
        removal = [s for s in sent(d) if s.action == REMOVE]
        checked += 1
        if not removal:
            continue
        removals += 1
        (send,) = removal
        n, r = len(kinds), len(reachable)
        after = r - (KINDS[kinds[target]][1] == "reachable")
        assert r >= majority(n), (kinds, target)  # quorum held before
        assert n > 1, (kinds, target)  # never the last manager
        assert after >= majority(n - 1), (kinds, target)  # and holds after
        assert send.target != leaving_instance and send.lock_until is not None
        assert send.target in view.command_managers()  # a Reachable, Ready manager of the latest view
    assert checked > 1000 and removals > 100


def test_manager_removal_waits_for_a_view_taken_after_it_asked():
    view, ids = view_of(("ready", "ready", "ready"))
    leaving_instance = view.manager_instances[ids[1]]
    waiting = op(
        Role.MANAGER,
        LeaveStage.REMOVING,
        instance_id=leaving_instance,
        node_id=ids[1],
        view_wanted_at=NOW + 5,
        waiting_for="x",
    )
    f = LeaveFacts(None, Role.MANAGER, ids[1], view=view, managers=view.command_managers())
    d = decide_leave(LeaveStepDue(leaving_instance, 3), f, waiting, NOW + 10, POLICY)
    assert d.outcome == "wait" and any(isinstance(a, RequestView) for a in d.actions)
    assert sent(d) == []


def test_another_manager_change_holding_the_lock_makes_it_wait():
    view, ids = view_of(("ready", "ready", "ready", "ready", "ready"))
    leaving_instance = view.manager_instances[ids[1]]
    waiting = op(
        Role.MANAGER,
        LeaveStage.REMOVING,
        instance_id=leaving_instance,
        node_id=ids[1],
        view_wanted_at=NOW - 1,
        waiting_for="x",
    )
    f = LeaveFacts(
        None,
        Role.MANAGER,
        ids[1],
        view=view,
        managers=view.command_managers(),
        lock_holder="i-0ffffffffffffffff",
    )
    d = decide_leave(LeaveStepDue(leaving_instance, 3), f, waiting, NOW, POLICY)
    assert d.outcome == "wait" and sent(d) == []
    assert isinstance(d.actions[0], SaveLeave)


def test_a_result_that_beats_the_recording_of_its_command_id_is_still_its_stages():
    # Given the op saved with its stage and target before SendCommand, the id not recorded yet
    sending = op(command_id="", target=MANAGERS[0])
    early = LeaveCommandFinished(LEAVING, "cmd", DRAIN, "Success", tasks_remaining=0, ran_on=MANAGERS[0])

    # When the drain's result arrives first, then it counts; from another instance, it does not
    assert decide_leave(early, facts(), sending, NOW, POLICY).outcome == "leave"
    elsewhere = replace(early, ran_on=MANAGERS[1])
    assert decide_leave(elsewhere, facts(), sending, NOW, POLICY).outcome == "ignore"
    waiting = replace(sending, waiting_for="2 tasks to move")
    assert decide_leave(early, facts(), waiting, NOW, POLICY).outcome == "ignore"
