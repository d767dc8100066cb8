"""The token rotation's and the reconcile pass's decisions (``domain.rotation.decide_rotation``,
``domain.reconcile_pass.decide_reconcile``), pure: no AWS, no clock. Given / When / Then."""

from __future__ import annotations

import pytest

from swarmkeeper.domain.kernel import Outcome, Publish
from swarmkeeper.domain.leave import DEAD_NODE_REMOVED, MANAGER_DEMOTED
from swarmkeeper.domain.leave_types import ScheduleLeaveStep
from swarmkeeper.domain.manager_removal import FRESH_VIEW
from swarmkeeper.domain.models import ClusterIdentity, LeaveOp, LeaveStage, ReconcilePass, Role, RotationOp
from swarmkeeper.domain.reconcile_pass import (
    AlarmChanged,
    DescribeFinished,
    DescribeNotDelivered,
    EndPass,
    ForgetNode,
    LogFailure,
    PassRequested,
    ReconcileFacts,
    ReconcilePolicy,
    RemovalFinished,
    SaveView,
    SendDescribe,
    StartPass,
    decide_reconcile,
    removal_comment,
)
from swarmkeeper.domain.rotation import (
    EndRotation,
    MarkHealthy,
    RotationFacts,
    RotationFinished,
    RotationNotDelivered,
    RotationPolicy,
    RotationRequested,
    SendRotate,
    StartRotation,
    decide_rotation,
)
from swarmkeeper.domain.rotation import (
    LogFailure as RotationLogFailure,
)
from swarmkeeper.domain.swarm import SwarmNode

NOW = 1_800_000_000.0
M1, M2, M3 = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2", "i-0ccccccccccccccc3"
ROTATION = RotationPolicy("demo")
IDENTITY = ClusterIdentity("demo", "swarmkeeper-demo-managers", "swarmkeeper-demo-workers")
RECONCILE = ReconcilePolicy(IDENTITY, join_budget_seconds=2400)
NODE = "n" * 25

# --- token rotation ------------------------------------------------------------------------------


def kinds(decision):
    return [type(a) for a in decision.actions]


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        (RotationFacts(cluster_exists=False, managers=(M1,)), "no swarm yet"),
        (RotationFacts(cluster_exists=True, managers=()), "no joined manager"),
    ],
)
def test_rotation_is_not_started_without_a_swarm_and_a_manager(facts, reason):
    # Given no swarm, or no joined manager / When a rotation is asked for
    decision = decide_rotation(RotationRequested("evt"), facts, NOW, ROTATION)

    # Then nothing is done
    assert decision.outcome is Outcome.IGNORE and reason in decision.reason and decision.actions == ()


def test_rotation_takes_the_rotation_item_then_sends_to_the_healthiest_manager():
    # Given a swarm with joined managers, healthiest first
    facts = RotationFacts(cluster_exists=True, managers=(M2, M1))

    # When a rotation is asked for
    decision = decide_rotation(RotationRequested("evt"), facts, NOW, ROTATION)

    # Then the one rotation in flight is taken first (expiring), and the command goes to M2
    assert decision.outcome is Outcome.ROTATE and kinds(decision) == [StartRotation, SendRotate]
    started, sent = decision.actions
    assert started.op.expires_at == NOW + ROTATION.ttl_seconds and started.op.correlation_id == "evt"
    assert sent.target == M2 and sent.op == started.op


def test_a_manager_that_refused_delivery_is_skipped_until_none_is_left():
    # Given a rotation whose command M2 refused
    pending = RotationOp("", "", "", "evt", NOW + 1200)
    facts = RotationFacts(cluster_exists=True, managers=(M2, M1))

    # When it is decided again / Then the next manager is tried, with what was tried carried along
    (sent,) = decide_rotation(RotationNotDelivered(pending, (M2,)), facts, NOW, ROTATION).actions
    assert sent == SendRotate(M1, pending, (M2,))

    # And when every manager refused, the rotation item is let go
    given_up = decide_rotation(RotationNotDelivered(pending, (M2, M1)), facts, NOW, ROTATION)
    assert given_up.outcome is Outcome.IGNORE and given_up.actions == (EndRotation(""),)


def finished(status="Success", command_id="cmd-1"):
    return RotationFinished(command_id, M1, status)


IN_FLIGHT = RotationOp("cmd-1", M1, NODE, "evt", NOW + 1200)


def test_both_tokens_rotated_is_published_and_the_manager_counts_as_healthy():
    # Given the rotation's command finished saying both roles were rotated
    facts = RotationFacts(op=IN_FLIGHT, rotated=("worker", "manager"))

    # When it is decided
    decision = decide_rotation(finished(), facts, NOW, ROTATION)

    # Then the item is released, the manager marked healthy, and Join Tokens Rotated published
    assert decision.outcome is Outcome.ROTATED and kinds(decision) == [EndRotation, MarkHealthy, Publish]
    event = decision.actions[2].event
    assert (event.detail_type, event.node_id, event.correlation_id) == ("Join Tokens Rotated", NODE, "evt")


@pytest.mark.parametrize(
    ("status", "rotated"),
    [("Success", ("worker",)), ("Success", ()), ("Failed", ("worker", "manager")), ("TimedOut", ())],
)
def test_a_rotation_short_of_both_tokens_fails_loudly(status, rotated):
    # Given a command that failed, or did not rotate both tokens
    facts = RotationFacts(op=IN_FLIGHT, rotated=rotated, detail="boom")

    # When it is decided / Then the item is released and the failure logged, nothing published
    decision = decide_rotation(finished(status), facts, NOW, ROTATION)
    assert decision.outcome is Outcome.ROTATION_FAILED and kinds(decision) == [
        EndRotation,
        RotationLogFailure,
    ]


@pytest.mark.parametrize(
    ("stimulus", "op"),
    [(finished("InProgress"), IN_FLIGHT), (finished(command_id="cmd-old"), IN_FLIGHT), (finished(), None)],
    ids=["not-terminal", "stale", "none-in-flight"],
)
def test_a_status_that_is_not_the_rotations_final_one_is_ignored(stimulus, op):
    decision = decide_rotation(stimulus, RotationFacts(op=op), NOW, ROTATION)
    assert decision.outcome is Outcome.IGNORE and decision.actions == ()


# --- reconcile pass ------------------------------------------------------------------------------


def pass_in_flight(excluded=()):
    return ReconcilePass("cmd-1", M1, "evt", "schedule", excluded, NOW - 5, NOW + 235)


def test_a_pass_takes_the_pass_item_then_sends_describe_swarm_to_the_best_candidate():
    decision = decide_reconcile(PassRequested("evt"), ReconcileFacts(candidates=(M2, M1)), NOW, RECONCILE)
    assert decision.outcome is Outcome.RECONCILE and kinds(decision) == [StartPass, SendDescribe]
    assert decision.actions[1].target == M2

    nobody = decide_reconcile(PassRequested("evt"), ReconcileFacts(), NOW, RECONCILE)
    assert nobody.outcome is Outcome.IGNORE and nobody.actions == ()


def test_describe_swarm_refused_everywhere_lets_the_pass_item_go():
    pending = pass_in_flight()
    facts = ReconcileFacts(op=pending, candidates=(M2, M1))
    (sent,) = decide_reconcile(DescribeNotDelivered(pending, (M2,)), facts, NOW, RECONCILE).actions
    assert sent.target == M1 and sent.tried == (M2,)
    given_up = decide_reconcile(DescribeNotDelivered(pending, (M2, M1)), facts, NOW, RECONCILE)
    assert given_up.outcome is Outcome.IGNORE and given_up.actions == (EndPass(""),)


def test_a_failed_describe_swarm_is_retried_on_another_manager_up_to_the_attempts():
    # Given a pass whose describe-swarm failed on M1 (its first attempt)
    facts = ReconcileFacts(op=pass_in_flight(), candidates=(M2,))

    # When it is decided / Then the pass ends, the failure is logged and a retry goes to M2
    retry = decide_reconcile(DescribeFinished("cmd-1", M1, "Failed"), facts, NOW, RECONCILE)
    assert retry.outcome is Outcome.RECONCILE and kinds(retry) == [
        EndPass,
        LogFailure,
        StartPass,
        SendDescribe,
    ]
    assert retry.actions[2].op.excluded == (M1,) and retry.reason.startswith("describe-swarm Failed on")

    # And once the pass tried as many managers as it may, it gives up until the next pass
    last = ReconcileFacts(op=pass_in_flight(excluded=(M2, M3)), candidates=(M2,))
    failed = decide_reconcile(DescribeFinished("cmd-1", M1, "Failed"), last, NOW, RECONCILE)
    assert failed.outcome is Outcome.RECONCILE_FAILED and kinds(failed) == [EndPass, LogFailure]


def test_a_stale_describe_swarm_is_ignored():
    decision = decide_reconcile(
        DescribeFinished("cmd-0", M1, "Success"), ReconcileFacts(op=pass_in_flight()), NOW, RECONCILE
    )
    assert decision.outcome is Outcome.IGNORE and decision.actions == ()


def removal(view_wanted_at):
    return LeaveOp(
        M3, Role.MANAGER, NODE, LeaveStage.REMOVING, 4, NOW - 60, NOW, NOW + 900, "evt", "lifecycle",
        waiting_for=FRESH_VIEW, view_wanted_at=view_wanted_at,
    )  # fmt: skip


def test_the_view_wakes_only_removals_that_asked_for_a_view_before_it_was_taken():
    # Given a pass sent at NOW - 5, and two manager removals that want a view from before / after it
    before, after = removal(NOW - 10), removal(NOW - 1)
    nodes = (SwarmNode(NODE, Role.MANAGER, "ready", "active", "leader", "10.0.0.1", "m1"),)
    facts = ReconcileFacts(op=pass_in_flight(), nodes=nodes, removals_waiting=(before, after))

    # When the pass's node list is in
    decision = decide_reconcile(DescribeFinished("cmd-1", M1, "Success"), facts, NOW, RECONCILE)

    # Then the view is saved and only the removal whose wish it satisfies is woken, after the save
    assert decision.outcome is Outcome.RECONCILED
    woken = [a for a in decision.actions if isinstance(a, ScheduleLeaveStep)]
    assert [w.step.version for w in woken] == [before.version] and len(woken) == 1
    assert kinds(decision).index(SaveView) < kinds(decision).index(ScheduleLeaveStep)


@pytest.mark.parametrize(
    ("name", "state", "outcome"),
    [
        ("swarmkeeper-demo-nodes-down", "ALARM", Outcome.ALARM),
        ("swarmkeeper-demo-nodes-down", "OK", Outcome.IGNORE),
        ("swarmkeeper-other-nodes-down", "ALARM", Outcome.IGNORE),
    ],
)
def test_only_this_stacks_alarms_in_alarm_are_raised(name, state, outcome):
    decision = decide_reconcile(AlarmChanged(name, state, "evt"), ReconcileFacts(), NOW, RECONCILE)
    assert decision.outcome is outcome and len(decision.actions) == (outcome is Outcome.ALARM)


def test_a_dead_managers_removal_is_published_and_its_node_record_forgotten():
    comment = removal_comment(NODE, M3, Role.MANAGER)
    done = RemovalFinished("Success", comment, f"node-id={NODE} removed=true", "", "evt")
    decision = decide_reconcile(done, ReconcileFacts(), NOW, RECONCILE)
    assert decision.outcome is Outcome.REMOVED
    published = [a.event.detail_type for a in decision.actions if isinstance(a, Publish)]
    assert published == [MANAGER_DEMOTED, DEAD_NODE_REMOVED] and decision.actions[-1] == ForgetNode(M3)


@pytest.mark.parametrize(
    ("status", "stdout"), [("Failed", ""), ("Success", f"node-id={NODE} removed=false"), ("Success", "")]
)
def test_a_removal_that_did_not_remove_is_left_to_the_next_pass(status, stdout):
    done = RemovalFinished(status, removal_comment(NODE, M3, Role.WORKER), stdout, "err", "evt")
    decision = decide_reconcile(done, ReconcileFacts(), NOW, RECONCILE)
    assert decision.outcome is Outcome.REMOVE_FAILED and kinds(decision) == [LogFailure]


def test_a_removal_this_flow_did_not_send_is_ignored():
    done = RemovalFinished("Success", "swarmkeeper leave i-1", "", "", "evt")
    assert decide_reconcile(done, ReconcileFacts(), NOW, RECONCILE).outcome is Outcome.IGNORE
