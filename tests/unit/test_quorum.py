"""Quorum rules: examples, then every mix of manager health for 1 to 7 managers."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from enum import Enum

import pytest

from swarmkeeper.domain.models import Role
from swarmkeeper.domain.quorum import (
    MAX_MANAGER_CHANGES_PER_PASS,
    ManagerChangeGate,
    RaftCounts,
    can_remove_manager,
    choose_command_manager,
    has_quorum,
    majority,
    quorum_margin,
    select_manager_change,
)
from swarmkeeper.domain.reconcile import (
    AlertType,
    InstanceState,
    InstanceView,
    ReconcileSettings,
    plan_reconcile,
)
from swarmkeeper.domain.swarm import Availability, ManagerStatus, NodeState, SwarmNode

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


class Health(Enum):
    """The manager health mixes of the exhaustive tests."""

    LEADER = (NodeState.READY, ManagerStatus.LEADER)
    READY_REACHABLE = (NodeState.READY, ManagerStatus.REACHABLE)
    DOWN = (NodeState.DOWN, ManagerStatus.UNREACHABLE)
    UNREACHABLE = (NodeState.UNKNOWN, ManagerStatus.UNREACHABLE)  # partitioned, heartbeat not yet missed


def node_id(n: int) -> str:
    return f"n{n:024d}"


def manager(n: int, health: Health | tuple[NodeState, ManagerStatus]) -> SwarmNode:
    state, status = health.value if isinstance(health, Health) else health
    return SwarmNode(node_id(n), Role.MANAGER, state, Availability.ACTIVE, status, f"10.0.0.{n}", f"m{n}")


def worker(n: int, state: NodeState = NodeState.READY) -> SwarmNode:
    return SwarmNode(node_id(n), Role.WORKER, state, Availability.ACTIVE, None, f"10.0.1.{n}", f"w{n}")


def cluster(*healths: Health | tuple[NodeState, ManagerStatus]) -> list[SwarmNode]:
    return [manager(i, h) for i, h in enumerate(healths, start=1)]


# A stale view the planner must survive too: raft still calls the manager reachable, the dispatcher
# already saw it go down. Used in the planner's exhaustive test only (up to 6 managers, for time).
STALE_REACHABLE = (NodeState.DOWN, ManagerStatus.REACHABLE)
REACHABLE_STATUSES = (ManagerStatus.LEADER, ManagerStatus.REACHABLE)


def mixes(max_managers: int = 7, healths=tuple(Health)):
    """Every sequence of manager healths for 1..max_managers managers, with at most one leader."""
    for count in range(1, max_managers + 1):
        for mix in itertools.product(healths, repeat=count):
            if mix.count(Health.LEADER) <= 1:
                yield mix


def keeps_majority(reachable: int, voters: int) -> bool:
    # Written independently of the module under test: strictly more than half.
    return voters >= 1 and 2 * reachable > voters


# --- examples --------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "needed"), [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4)])
def test_majority_is_more_than_half(n, needed):
    # Given n voters / When the majority is asked / Then it is more than half
    assert majority(n) == needed


def test_majority_of_a_negative_count_is_an_error():
    with pytest.raises(ValueError):
        majority(-1)


def test_margin_counts_reachable_managers_against_all_managers():
    # Given 5 managers, 3 reachable (leader included), 2 unreachable, plus workers that do not vote
    nodes = [
        *cluster(
            Health.LEADER, Health.READY_REACHABLE, Health.READY_REACHABLE, Health.DOWN, Health.UNREACHABLE
        ),
        worker(10),
        worker(11, NodeState.DOWN),
    ]

    # When the margin is computed
    # Then it is 3 reachable - majority(5) = 0: still quorum, none to spare
    assert RaftCounts.of(nodes) == RaftCounts(managers=5, reachable=3)
    assert quorum_margin(nodes) == 0
    assert has_quorum(nodes)


def test_removing_the_down_manager_of_three_restores_margin():
    # Given 3 managers, one of them down
    nodes = cluster(Health.LEADER, Health.READY_REACHABLE, Health.DOWN)

    # When removing the down one is asked
    decision = can_remove_manager(nodes, node_id(3))

    # Then it is allowed: 2 of 2 reachable afterwards
    assert decision.allowed
    assert "restores margin" in decision.reason
    assert "2 of 2 managers reachable" in decision.reason


def test_removing_a_reachable_manager_when_two_of_three_are_reachable_is_refused():
    # Given 3 managers, one down
    nodes = cluster(Health.LEADER, Health.READY_REACHABLE, Health.DOWN)

    # When removing a reachable one is asked
    decision = can_remove_manager(nodes, node_id(2))

    # Then it is refused: 1 of 2 reachable is no majority
    assert not decision.allowed
    assert "would lose quorum" in decision.reason


def test_the_last_manager_is_never_removed():
    # Given a single, healthy manager
    nodes = [*cluster(Health.LEADER), worker(5)]

    # When its removal is asked / Then it is refused
    decision = can_remove_manager(nodes, node_id(1))
    assert not decision.allowed
    assert "last manager" in decision.reason


def test_nothing_is_removed_once_quorum_is_lost():
    # Given 3 managers, 2 of them down: quorum lost
    nodes = cluster(Health.LEADER, Health.DOWN, Health.DOWN)

    # When removing a down one is asked (it would even "restore" 1 of 2... no: quorum is gone)
    decision = can_remove_manager(nodes, node_id(2))

    # Then it is refused: an operator decides what happens to a swarm without quorum
    assert not decision.allowed
    assert "quorum already lost" in decision.reason


def test_workers_do_not_touch_the_raft_configuration_and_unknown_nodes_are_refused():
    nodes = [*cluster(Health.LEADER), worker(5)]
    assert can_remove_manager(nodes, node_id(5)).allowed
    assert not can_remove_manager(nodes, node_id(99)).allowed


def test_only_one_manager_change_per_pass():
    # Given 5 managers with two down (each removal alone is fine)
    nodes = cluster(Health.LEADER, Health.READY_REACHABLE, Health.READY_REACHABLE, Health.DOWN, Health.DOWN)
    gate = ManagerChangeGate(nodes)

    # When both are taken through the gate in one pass
    first, second = gate.take(node_id(4)), gate.take(node_id(5))

    # Then only the first goes ahead, and workers still pass
    assert MAX_MANAGER_CHANGES_PER_PASS == 1
    assert first.allowed and not second.allowed
    assert "at most 1 per reconcile pass" in second.reason
    assert gate.remaining == 0


def test_a_manager_change_in_flight_uses_the_budget():
    nodes = [*cluster(Health.LEADER, Health.READY_REACHABLE, Health.DOWN), worker(9, NodeState.DOWN)]
    gate = ManagerChangeGate(nodes, changes_in_flight=1)
    assert not gate.check(node_id(3)).allowed
    assert "in flight" in gate.check(node_id(3)).reason
    assert gate.take(node_id(9)).allowed


def test_select_prefers_the_unreachable_manager():
    # Given one reachable and one down manager both wanting to leave
    nodes = cluster(
        Health.LEADER, Health.READY_REACHABLE, Health.READY_REACHABLE, Health.DOWN, Health.READY_REACHABLE
    )

    # When one is selected
    chosen, decisions = select_manager_change(nodes, [node_id(2), node_id(4)])

    # Then the down one goes first and the other waits for a later pass
    assert chosen == node_id(4)
    assert decisions[node_id(4)].allowed
    assert not decisions[node_id(2)].allowed


def test_command_manager_prefers_a_ready_follower_and_honours_exclusions():
    nodes = cluster(Health.LEADER, Health.READY_REACHABLE, Health.DOWN, Health.READY_REACHABLE)
    assert choose_command_manager(nodes).node_id == node_id(2)
    assert choose_command_manager(nodes, exclude={node_id(2)}).node_id == node_id(4)
    assert choose_command_manager(nodes, exclude={node_id(2), node_id(4)}).node_id == node_id(1)
    assert choose_command_manager(nodes, exclude={node_id(1), node_id(2), node_id(4)}) is None
    assert choose_command_manager([worker(1)]) is None


# --- exhaustive: every mix of 1..7 managers --------------------------------------------------


def test_every_decision_keeps_a_majority_and_every_refusal_is_justified():
    checked = 0
    for healths in mixes():
        # Given a cluster with this mix of manager health, plus two workers
        nodes = [*cluster(*healths), worker(50), worker(51, NodeState.DOWN)]
        voters = len(healths)
        reachable = sum(h in (Health.LEADER, Health.READY_REACHABLE) for h in healths)
        quorum_now = keeps_majority(reachable, voters)
        assert has_quorum(nodes) == quorum_now
        assert quorum_margin(nodes) == reachable - (voters // 2 + 1)

        for position, health in enumerate(healths, start=1):
            # When the removal of each manager is asked
            decision = can_remove_manager(nodes, node_id(position))

            # Then it is allowed exactly when quorum holds now, a manager remains, and the reachable
            # managers left are a majority of the configuration after the change
            reachable_after = reachable - (health in (Health.LEADER, Health.READY_REACHABLE))
            expected = quorum_now and voters > 1 and keeps_majority(reachable_after, voters - 1)
            assert decision.allowed == expected, (healths, position, decision)
            if decision.allowed:
                after = [n for n in nodes if n.node_id != node_id(position)]
                assert has_quorum(after)
                assert any(n.is_manager for n in after)
            checked += 1
    assert checked == sum(
        count * sum(1 for h in itertools.product(Health, repeat=count) if h.count(Health.LEADER) <= 1)
        for count in range(1, 8)
    )


def test_removing_an_unreachable_manager_never_lowers_the_margin():
    for healths in mixes():
        nodes = cluster(*healths)
        for position, health in enumerate(healths, start=1):
            if (
                health in (Health.DOWN, Health.UNREACHABLE)
                and can_remove_manager(nodes, node_id(position)).allowed
            ):
                after = [n for n in nodes if n.node_id != node_id(position)]
                assert quorum_margin(after) >= quorum_margin(nodes)


def test_selection_makes_at_most_one_change_and_always_one_when_one_is_safe():
    for healths in mixes():
        # Given every manager of the mix asking to leave at once
        nodes = cluster(*healths)
        candidates = [node_id(i) for i in range(1, len(healths) + 1)]

        # When one pass selects
        chosen, decisions = select_manager_change(nodes, candidates)

        # Then at most one is chosen, it is allowed on its own, and if any was safe one was chosen
        allowed = [c for c, d in decisions.items() if d.allowed]
        assert allowed == ([chosen] if chosen else [])
        safe_alone = [c for c in candidates if can_remove_manager(nodes, c).allowed]
        assert (chosen is not None) == bool(safe_alone)
        if chosen is not None:
            assert chosen in safe_alone
            unreachable_safe = [c for c in safe_alone if not nodes[int(c[1:]) - 1].is_reachable_manager]
            if unreachable_safe:
                assert chosen in unreachable_safe

        # And with a change already in flight, nothing is chosen
        assert select_manager_change(nodes, candidates, changes_in_flight=1)[0] is None


def test_command_manager_is_always_a_ready_reachable_manager_not_excluded():
    for healths in mixes():
        nodes = cluster(*healths)
        for excluded in ((), (node_id(1),), (node_id(1), node_id(2))):
            chosen = choose_command_manager(nodes, exclude=excluded)
            eligible = [
                n for n in nodes if n.is_reachable_manager and n.is_ready and n.node_id not in excluded
            ]
            if not eligible:
                assert chosen is None
                continue
            assert chosen in eligible
            if any(not n.is_leader for n in eligible):
                assert not chosen.is_leader


def test_no_plan_breaks_quorum_removes_the_last_manager_or_acts_without_quorum():
    settings = ReconcileSettings(down_grace=timedelta(minutes=10))
    for healths in mixes(6, (*Health, STALE_REACHABLE)):
        # Given this mix where every manager that is not ready has lost its instance, the ready ones
        # keep theirs, and one down worker has lost its instance too
        nodes = [*cluster(*healths), worker(50), worker(51, NodeState.DOWN)]
        instances = [
            InstanceView(
                f"i-{n.node_id[-6:]}",
                InstanceState.RUNNING if n.is_ready else InstanceState.TERMINATED,
                n.address,
                n.role,
                n.node_id,
                NOW - timedelta(days=1),
            )
            for n in nodes
        ]
        counts = RaftCounts.of(nodes)

        # When a reconcile pass is planned
        plan = plan_reconcile(nodes, instances, [], NOW, settings)

        # Then at most one manager changes, every demotion keeps a majority and leaves a manager,
        # every manager removed is demoted first, and without quorum nothing destructive is planned
        assert plan.manager_changes <= 1
        for demotion in plan.demotions:
            demoted = next(n for n in nodes if n.node_id == demotion.node_id)
            assert keeps_majority(counts.reachable - demoted.is_reachable_manager, counts.managers - 1)
        assert {r.node_id for r in plan.removals if r.role is Role.MANAGER} == {
            d.node_id for d in plan.demotions
        }
        kinds = {alert.detail_type for alert in plan.alerts}
        if not counts.has_quorum:
            assert not plan.destructive
            assert kinds == {AlertType.QUORUM_LOST}
            assert "--force-new-cluster" in plan.alerts[0].runbook
            assert "never automatic" in plan.alerts[0].runbook
        else:
            # the down worker goes; an unreachable lost manager goes when there is more than one;
            # a manager raft still reaches goes only when a majority stays reachable without it
            assert node_id(51) in {r.node_id for r in plan.removals}
            lost = [n for n in nodes if n.is_manager and not n.is_ready]
            safe = [
                n
                for n in lost
                if counts.managers > 1
                and keeps_majority(counts.reachable - n.is_reachable_manager, counts.managers - 1)
            ]
            assert len(plan.demotions) == (1 if safe else 0)
            if any(not n.is_reachable_manager for n in safe):
                assert not next(
                    n for n in nodes if n.node_id == plan.demotions[0].node_id
                ).is_reachable_manager
            assert kinds == ({AlertType.QUORUM_AT_RISK} if counts.margin == 0 else set())
