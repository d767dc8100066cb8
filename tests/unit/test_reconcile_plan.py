"""The reconcile planner: examples, properties over random clusters, and a 1,000-node cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarmkeeper.domain.models import Role
from swarmkeeper.domain.quorum import RaftCounts
from swarmkeeper.domain.reconcile import (
    AlertType,
    InstanceState,
    InstanceView,
    OpKind,
    OpView,
    ReconcileSettings,
    StuckAction,
    plan_reconcile,
)
from swarmkeeper.domain.swarm import Availability, ManagerStatus, NodeState, SwarmNode

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=1)
GRACE = timedelta(minutes=10)
SETTINGS = ReconcileSettings(down_grace=GRACE)

READY, DOWN, UNKNOWN, DISCONNECTED = (
    NodeState.READY,
    NodeState.DOWN,
    NodeState.UNKNOWN,
    NodeState.DISCONNECTED,
)
LEADER, REACHABLE, UNREACHABLE = ManagerStatus.LEADER, ManagerStatus.REACHABLE, ManagerStatus.UNREACHABLE
RUNNING, TERMINATED = InstanceState.RUNNING, InstanceState.TERMINATED


def node_id(n: int) -> str:
    return f"n{n:024d}"


def ip(n: int) -> str:
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


def manager(
    n: int, status: ManagerStatus = REACHABLE, state: NodeState = READY, address: str = ""
) -> SwarmNode:
    return SwarmNode(node_id(n), Role.MANAGER, state, Availability.ACTIVE, status, address or ip(n), f"h{n}")


def worker(n: int, state: NodeState = READY, address: str = "") -> SwarmNode:
    return SwarmNode(node_id(n), Role.WORKER, state, Availability.ACTIVE, None, address or ip(n), f"h{n}")


def instance(
    n: int,
    state: InstanceState = RUNNING,
    role: Role = Role.WORKER,
    tagged: bool = True,
    launched_at: datetime = LONG_AGO,
    private_ip: str | None = None,
) -> InstanceView:
    return InstanceView(
        f"i-{n:08x}", state, private_ip or ip(n), role, node_id(n) if tagged else None, launched_at
    )


def op(n: int, kind: OpKind = OpKind.JOIN, stuck: bool = False, stage: str = "bootstrapping") -> OpView:
    deadline = NOW - timedelta(minutes=1) if stuck else NOW + timedelta(minutes=5)
    return OpView(f"i-{n:08x}", kind, stage, NOW - timedelta(minutes=20), deadline)


def healthy_managers() -> tuple[list[SwarmNode], list[InstanceView]]:
    nodes = [manager(1, LEADER), manager(2), manager(3)]
    return nodes, [instance(n, role=Role.MANAGER) for n in (1, 2, 3)]


def plan(nodes, instances, in_flight=(), down_since=None):
    return plan_reconcile(nodes, instances, list(in_flight), NOW, SETTINGS, down_since=down_since)


# --- examples --------------------------------------------------------------------------------


def test_a_healthy_cluster_needs_nothing():
    # Given three healthy managers and two healthy workers
    managers, manager_instances = healthy_managers()
    nodes = [*managers, worker(10), worker(11)]
    instances = [*manager_instances, instance(10), instance(11)]

    # When a pass is planned
    result = plan(nodes, instances)

    # Then nothing is done, the metrics say so, and the address list has the leader first
    assert not result.destructive
    assert result.stuck_operations == () and result.deferred == () and result.alerts == ()
    assert result.metrics.as_dict() == {
        "NodesReady": 5,
        "NodesDown": 0,
        "ManagersReachable": 3,
        "QuorumMargin": 1,
    }
    assert result.manager_addresses == ("10.0.0.1:2377", "10.0.0.2:2377", "10.0.0.3:2377")
    assert result.command_manager == managers[1]
    assert result.down_since == {}


def test_dead_workers_without_a_live_instance_are_removed_down_first():
    # Given workers whose instance terminated, vanished, or never carried a tag, in several states
    managers, manager_instances = healthy_managers()
    nodes = [*managers, worker(10, DOWN), worker(11, UNKNOWN), worker(12, DISCONNECTED), worker(13, DOWN)]
    instances = [
        *manager_instances,
        instance(10, TERMINATED),
        instance(11, InstanceState.SHUTTING_DOWN),
        instance(12, TERMINATED, tagged=False),
    ]  # worker 13 has no instance at all

    # When a pass is planned
    result = plan(nodes, instances)

    # Then all four are removed, down and disconnected ones before the one in state unknown
    assert [r.node_id for r in result.removals] == [node_id(10), node_id(12), node_id(13), node_id(11)]
    assert result.removals[0].instance_id == "i-0000000a" and result.removals[2].instance_id is None
    assert "no instance" in result.removals[2].reason
    assert result.demotions == ()


def test_a_ready_node_without_an_instance_is_left_alone():
    # Given a ready worker that no instance matches (a stale instance list, or a hand-joined machine)
    managers, manager_instances = healthy_managers()
    result = plan([*managers, worker(10)], manager_instances)

    # Then it is not removed, and the plan says why
    assert result.removals == ()
    assert [d.subject for d in result.deferred] == [node_id(10)]
    assert "ready" in result.deferred[0].reason


def test_nodes_match_instances_by_tag_first_then_by_address():
    # Given: worker 10 joined but was never tagged (matched by address, alive);
    # worker 11's tagged instance terminated and its address now belongs to a new, untagged instance
    managers, manager_instances = healthy_managers()
    nodes = [*managers, worker(10), worker(11, DOWN)]
    instances = [
        *manager_instances,
        instance(10, tagged=False),
        instance(11, TERMINATED),
        instance(99, private_ip=ip(11), tagged=False, launched_at=NOW - timedelta(minutes=2)),
    ]

    # When a pass is planned, with worker 11 down for an hour
    result = plan(nodes, instances, down_since={node_id(11): NOW - timedelta(hours=1)})

    # Then worker 10 is kept, worker 11 goes (its tag names the dead instance),
    # and the new instance at the same address is not marked Unhealthy
    assert [r.node_id for r in result.removals] == [node_id(11)]
    assert result.removals[0].instance_id == "i-0000000b"
    assert result.mark_unhealthy == ()


def test_a_down_node_whose_instance_rejoined_under_a_new_id_is_removed():
    # Given instance 10, tagged with its first node id (now down), rejoined as node 20 (ready)
    managers, manager_instances = healthy_managers()
    rejoined = SwarmNode(node_id(20), Role.WORKER, READY, Availability.ACTIVE, None, ip(10), "h10")
    nodes = [*managers, worker(10, DOWN), rejoined]

    # When a pass is planned long after the old node went down
    result = plan(
        nodes, [*manager_instances, instance(10)], down_since={node_id(10): NOW - timedelta(hours=1)}
    )

    # Then the stale node is removed and the instance that runs the new one is left alone
    assert [r.node_id for r in result.removals] == [node_id(10)]
    assert "superseded" in result.removals[0].reason
    assert result.mark_unhealthy == ()


def test_a_node_down_past_the_grace_period_gets_its_running_instance_marked_unhealthy():
    # Given worker 10 down, with its instance still running
    managers, manager_instances = healthy_managers()
    nodes = [*managers, worker(10, DOWN)]
    instances = [*manager_instances, instance(10)]

    # When the first pass sees it down
    first = plan(nodes, instances)

    # Then it only starts the clock
    assert first.mark_unhealthy == () and first.removals == ()
    assert first.down_since == {node_id(10): NOW}
    assert first.metrics.nodes_down == 1

    # When a pass runs just before, then just after, the grace period
    almost = plan_reconcile(
        nodes, instances, [], NOW + GRACE - timedelta(seconds=1), SETTINGS, first.down_since
    )
    after = plan_reconcile(nodes, instances, [], NOW + GRACE, SETTINGS, almost.down_since)

    # Then only the second marks the instance, and the clock kept its start
    assert almost.mark_unhealthy == ()
    assert [m.instance_id for m in after.mark_unhealthy] == ["i-0000000a"]
    assert after.mark_unhealthy[0].down_since == NOW
    assert after.down_since == {node_id(10): NOW}


def test_the_down_clock_resets_when_the_node_comes_back():
    managers, manager_instances = healthy_managers()
    result = plan(
        [*managers, worker(10)], [*manager_instances, instance(10)], down_since={node_id(10): LONG_AGO}
    )
    assert result.down_since == {}
    assert result.mark_unhealthy == ()


def test_an_instance_launched_after_its_node_went_down_is_not_marked():
    # Given a down node whose address matches an instance launched after the node was first seen down
    managers, manager_instances = healthy_managers()
    since = NOW - timedelta(hours=1)
    instances = [*manager_instances, instance(10, tagged=False, launched_at=since + timedelta(minutes=5))]

    # When a pass is planned / Then the new instance is not blamed for the old node
    result = plan([*managers, worker(10, DOWN)], instances, down_since={node_id(10): since})
    assert result.mark_unhealthy == ()


def test_a_dead_manager_is_demoted_then_removed_and_leaves_the_address_list():
    # Given 3 managers, manager 3 down with its instance terminated
    nodes = [manager(1, LEADER), manager(2), manager(3, UNREACHABLE, DOWN), worker(10)]
    instances = [instance(1, role=Role.MANAGER), instance(2, role=Role.MANAGER), instance(10)]
    instances.append(instance(3, TERMINATED, role=Role.MANAGER))

    # When a pass is planned
    result = plan(nodes, instances)

    # Then it is demoted and removed, and the margin alert is raised for this pass
    assert [d.node_id for d in result.demotions] == [node_id(3)]
    assert [r.node_id for r in result.removals] == [node_id(3)]
    assert result.manager_changes == 1
    assert result.manager_addresses == ("10.0.0.1:2377", "10.0.0.2:2377")
    assert result.command_manager.node_id == node_id(2)
    assert [a.detail_type for a in result.alerts] == [AlertType.QUORUM_AT_RISK]
    assert result.metrics.quorum_margin == 0


def test_two_dead_managers_leave_one_per_pass():
    # Given 5 managers, 2 dead
    nodes = [
        manager(1, LEADER),
        manager(2),
        manager(3),
        manager(4, UNREACHABLE, DOWN),
        manager(5, UNREACHABLE, DOWN),
    ]
    instances = [instance(n, role=Role.MANAGER) for n in (1, 2, 3)]

    # When a pass is planned
    result = plan(nodes, instances)

    # Then one goes now and the other waits for the next pass
    assert [d.node_id for d in result.demotions] == [node_id(4)]
    assert [d.subject for d in result.deferred] == [node_id(5)]
    assert "at most 1 per reconcile pass" in result.deferred[0].reason


def test_a_down_manager_with_a_running_instance_is_replaced_one_per_pass():
    # Given 5 managers, 2 down for an hour while their instances keep running
    nodes = [
        manager(1, LEADER),
        manager(2),
        manager(3),
        manager(4, UNREACHABLE, DOWN),
        manager(5, UNREACHABLE, DOWN),
    ]
    instances = [instance(n, role=Role.MANAGER) for n in range(1, 6)]
    down_since = {node_id(4): NOW - timedelta(hours=1), node_id(5): NOW - timedelta(hours=1)}

    # When a pass is planned
    result = plan(nodes, instances, down_since=down_since)

    # Then only one instance is marked Unhealthy
    assert [m.node_id for m in result.mark_unhealthy] == [node_id(4)]
    assert result.manager_changes == 1


def test_a_manager_still_reachable_in_raft_is_not_marked_unhealthy():
    nodes = [manager(1, LEADER), manager(2), manager(3, REACHABLE, DOWN)]
    instances = [instance(n, role=Role.MANAGER) for n in (1, 2, 3)]
    result = plan(nodes, instances, down_since={node_id(3): NOW - timedelta(hours=1)})
    assert result.mark_unhealthy == ()
    assert "still reachable in raft" in result.deferred[0].reason


def test_no_manager_change_while_a_manager_joins():
    # Given a dead manager and another manager instance mid-join (not stuck)
    nodes = [manager(1, LEADER), manager(2), manager(3, UNREACHABLE, DOWN)]
    instances = [
        instance(1, role=Role.MANAGER),
        instance(2, role=Role.MANAGER),
        instance(4, role=Role.MANAGER),
    ]

    # When a pass is planned
    result = plan(nodes, instances, in_flight=[op(4)])

    # Then the dead manager waits for the join to finish
    assert result.demotions == () and result.removals == ()
    assert "in flight" in result.deferred[0].reason


def test_an_instance_with_an_operation_in_flight_belongs_to_it():
    # Given a down worker whose instance is mid-leave, and a down one mid-join, both long down
    managers, manager_instances = healthy_managers()
    nodes = [*managers, worker(10, DOWN), worker(11, DOWN)]
    instances = [*manager_instances, instance(10, TERMINATED), instance(11)]
    in_flight = [op(10, OpKind.LEAVE), op(11, OpKind.JOIN)]

    # When a pass is planned
    result = plan(nodes, instances, in_flight, down_since={node_id(11): LONG_AGO})

    # Then neither is touched
    assert not result.destructive
    assert {d.subject for d in result.deferred} == {node_id(10), node_id(11)}


def test_stuck_joins_finish_when_the_node_is_ready_and_roll_back_otherwise():
    # Given three joins past their deadline: node ready, never joined, instance gone
    managers, manager_instances = healthy_managers()
    nodes = [*managers, worker(10)]
    instances = [
        *manager_instances,
        instance(10),
        instance(11, tagged=False),
        instance(12, TERMINATED, tagged=False),
    ]
    in_flight = [op(10, stuck=True), op(11, stuck=True, stage="verifying"), op(12, stuck=True)]

    # When a pass is planned
    result = plan(nodes, instances, in_flight)

    # Then the first is finished, the second rolled back (its instance abandoned), the third just closed
    actions = {s.instance_id: (s.action, s.destructive) for s in result.stuck_operations}
    assert actions == {
        "i-0000000a": (StuckAction.FINISH, False),
        "i-0000000b": (StuckAction.ROLL_BACK, True),
        "i-0000000c": (StuckAction.ROLL_BACK, False),
    }
    assert result.stuck_operations[1].stage == "verifying"
    assert result.stuck_operations[0].node_id == node_id(10)


def test_stuck_leaves_finish_unless_the_node_is_still_a_reachable_manager():
    # Given stuck leaves: a worker still running, a worker already gone, and a manager raft still reaches
    nodes = [manager(1, LEADER), manager(2), manager(3), manager(4), worker(10)]
    instances = [
        *(instance(n, role=Role.MANAGER) for n in (1, 2, 3, 4)),
        instance(10),
        instance(11, TERMINATED),
    ]
    in_flight = [
        op(10, OpKind.LEAVE, stuck=True),
        op(11, OpKind.LEAVE, stuck=True),
        op(4, OpKind.LEAVE, stuck=True),
    ]

    # When a pass is planned
    result = plan(nodes, instances, in_flight)

    # Then the workers' leaves finish and the manager's waits for its demotion
    actions = {s.instance_id: (s.action, s.destructive) for s in result.stuck_operations}
    assert actions == {"i-0000000a": (StuckAction.FINISH, True), "i-0000000b": (StuckAction.FINISH, False)}
    assert [d.subject for d in result.deferred] == ["i-00000004"]
    assert "demote it first" in result.deferred[0].reason


def test_rolling_back_a_stuck_manager_join_uses_the_passs_manager_change():
    # Given 5 managers: manager 4 joined but never became ready and its join is stuck;
    # manager 5 is dead with its instance terminated
    nodes = [
        manager(1, LEADER),
        manager(2),
        manager(3),
        manager(4, UNREACHABLE, DOWN),
        manager(5, UNREACHABLE, DOWN),
    ]
    instances = [
        *(instance(n, role=Role.MANAGER) for n in (1, 2, 3, 4)),
        instance(5, TERMINATED, Role.MANAGER),
    ]

    # When a pass is planned
    result = plan(nodes, instances, in_flight=[op(4, stuck=True)])

    # Then the rollback is this pass's one manager change, and the dead manager waits
    (rollback,) = result.stuck_operations
    assert (rollback.action, rollback.manager_change, rollback.destructive) == (
        StuckAction.ROLL_BACK,
        True,
        True,
    )
    assert result.demotions == ()
    assert result.manager_changes == 1
    held_back = {d.subject: d.reason for d in result.deferred}
    assert "at most 1 per reconcile pass" in held_back[node_id(5)]


def test_without_quorum_nothing_destructive_is_planned_and_the_runbook_is_raised():
    # Given 3 managers, 2 of them dead; a dead worker; a worker down for long; stuck operations
    nodes = [
        manager(1, LEADER),
        manager(2, UNREACHABLE, DOWN),
        manager(3, UNREACHABLE, DOWN),
        worker(10, DOWN),
        worker(11, DOWN),
        worker(12),
    ]
    instances = [instance(1, role=Role.MANAGER), instance(11), instance(12), instance(13, tagged=False)]
    in_flight = [op(12, stuck=True), op(13, stuck=True), op(11, OpKind.LEAVE, stuck=True)]

    # When a pass is planned
    result = plan(nodes, instances, in_flight, down_since={node_id(11): LONG_AGO})

    # Then nothing destructive happens: only the join that already succeeded is closed
    assert not result.destructive
    assert result.removals == () and result.demotions == () and result.mark_unhealthy == ()
    assert [(s.instance_id, s.action) for s in result.stuck_operations] == [
        ("i-0000000c", StuckAction.FINISH)
    ]
    held_back = {d.subject: d.reason for d in result.deferred}
    for subject in (node_id(2), node_id(3), node_id(10), "i-0000000d", "i-0000000b"):
        assert "quorum lost" in held_back[subject]

    # And the operators get the Quorum Lost alert, with the manual runbook
    (alert,) = result.alerts
    assert alert.detail_type is AlertType.QUORUM_LOST
    assert (alert.managers, alert.managers_reachable, alert.majority) == (3, 1, 2)
    assert "docker swarm init --force-new-cluster" in alert.runbook
    assert "never automatic" in alert.runbook
    assert result.metrics.as_dict() == {
        "NodesReady": 2,
        "NodesDown": 4,
        "ManagersReachable": 1,
        "QuorumMargin": -1,
    }


def test_ipv6_manager_addresses_are_bracketed():
    node = SwarmNode(node_id(1), Role.MANAGER, READY, Availability.ACTIVE, LEADER, "fd00::1", "h1")
    assert plan([node], []).manager_addresses == ("[fd00::1]:2377",)


def test_plain_strings_from_an_adapter_are_accepted():
    view = InstanceView("i-1", "running", "10.0.0.1", "worker", None, LONG_AGO)
    operation = OpView("i-1", "leave", "draining", LONG_AGO, NOW)
    assert view.state is RUNNING and view.role is Role.WORKER and operation.kind is OpKind.LEAVE


def test_bad_inputs_fail_loudly():
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_reconcile([], [], [], datetime(2025, 1, 1), SETTINGS)
    with pytest.raises(ValueError, match="down_grace"):
        ReconcileSettings(down_grace=timedelta(0))
    with pytest.raises(ValueError):
        InstanceView("i-1", "rebooting", None, Role.WORKER, None, LONG_AGO)


# --- 1,000 nodes -----------------------------------------------------------------------------


def test_a_thousand_node_cluster_is_planned_right():
    # Given 5 managers (one dead, instance terminated) and 995 workers:
    #   900 healthy (a hundred never tagged, matched by address), 30 down with a terminated instance,
    #   20 down with no instance at all, 15 down for an hour with a running instance, 10 down for a minute,
    #   10 ready with a terminated instance (not yet down), 10 down mid-leave;
    # and 20 instances still joining, with no node yet: 1,000 instances in all.
    nodes = [manager(1, LEADER), manager(2), manager(3), manager(4), manager(5, UNREACHABLE, DOWN)]
    instances = [
        *(instance(n, role=Role.MANAGER) for n in range(1, 5)),
        instance(5, TERMINATED, Role.MANAGER),
    ]
    in_flight: list[OpView] = []
    down_since: dict[str, datetime] = {}
    expected_removed = {node_id(5)}
    expected_unhealthy: set[str] = set()
    groups = [(900, "healthy"), (30, "terminated"), (20, "missing"), (15, "down-long"), (10, "down-short")]
    groups += [(10, "ready-terminated"), (10, "leaving"), (20, "joining")]
    n = 100
    for size, kind in groups:
        for _ in range(size):
            n += 1
            if kind == "healthy":
                nodes.append(worker(n))
                instances.append(instance(n, tagged=n % 9 != 0))
            elif kind == "terminated":
                nodes.append(worker(n, DOWN))
                instances.append(instance(n, TERMINATED))
                expected_removed.add(node_id(n))
            elif kind == "missing":
                nodes.append(worker(n, DOWN))
                expected_removed.add(node_id(n))
            elif kind in ("down-long", "down-short"):
                nodes.append(worker(n, DOWN))
                instances.append(instance(n))
                long = kind == "down-long"
                down_since[node_id(n)] = NOW - (timedelta(hours=1) if long else timedelta(minutes=1))
                if long:
                    expected_unhealthy.add(f"i-{n:08x}")
            elif kind == "ready-terminated":
                nodes.append(worker(n))
                instances.append(instance(n, TERMINATED))
            elif kind == "leaving":
                nodes.append(worker(n, DOWN))
                instances.append(instance(n, InstanceState.SHUTTING_DOWN))
                in_flight.append(op(n, OpKind.LEAVE))
            else:  # launched, no node yet
                instances.append(instance(n, InstanceState.PENDING, tagged=False, launched_at=NOW))
                in_flight.append(op(n, OpKind.JOIN))
    assert len(nodes) == 1000 and len(instances) == 1000

    # When a pass is planned
    result = plan(nodes, instances, in_flight, down_since=down_since)

    # Then exactly the dead nodes go (the dead manager through one demotion), exactly the long-down
    # instances are marked, and the rest is counted right
    assert {r.node_id for r in result.removals} == expected_removed
    assert [d.node_id for d in result.demotions] == [node_id(5)]
    assert {m.instance_id for m in result.mark_unhealthy} == expected_unhealthy
    assert result.metrics.as_dict() == {
        "NodesReady": 4 + 900 + 10,
        "NodesDown": 1 + 30 + 20 + 15 + 10 + 10,
        "ManagersReachable": 4,
        "QuorumMargin": 1,
    }
    assert len(result.manager_addresses) == 4
    assert len(result.down_since) == 86
    assert len(result.deferred) == 20  # 10 ready without a live instance, 10 mid-leave


# --- properties over random clusters ----------------------------------------------------------

INSTANCE_FATES = ["none", *InstanceState]


@st.composite
def clusters(draw):
    """Up to 7 managers and 50 nodes, every state, instances that match by tag, by address, or not at all."""
    manager_count = draw(st.integers(0, 7))
    total = draw(st.integers(manager_count, 50))
    leader = draw(st.one_of(st.none(), st.integers(1, max(manager_count, 1))))
    nodes, instances, in_flight, down_since = [], [], [], {}
    for n in range(1, total + 1):
        is_manager = n <= manager_count
        state = draw(st.sampled_from(NodeState))
        # Now and then a node sits at an earlier node's address: the same instance, rejoined.
        address = ip(n) if draw(st.integers(0, 9)) else ip(draw(st.integers(1, n)))
        if is_manager:
            status = LEADER if n == leader else draw(st.sampled_from([REACHABLE, UNREACHABLE]))
            node = manager(n, status, state, address)
        else:
            node = worker(n, state, address)
        nodes.append(node)
        if node.is_down and draw(st.booleans()):
            down_since[node.node_id] = NOW - draw(st.timedeltas(timedelta(0), timedelta(hours=2)))
        fate = draw(st.sampled_from(INSTANCE_FATES))
        if fate != "none":
            role = Role.MANAGER if is_manager else Role.WORKER
            launched = NOW - draw(st.timedeltas(timedelta(0), timedelta(days=2)))
            private_ip = ip(n) if draw(st.booleans()) else ip(1000 + n)
            view = instance(n, InstanceState(fate), role, draw(st.booleans()), launched, private_ip)
            instances.append(view)
            if draw(st.integers(0, 4)) == 0:
                in_flight.append(op(n, draw(st.sampled_from(OpKind)), stuck=draw(st.booleans())))
    # A few instances that no node claims yet (launching), some sharing a node's address.
    for extra in range(draw(st.integers(0, 3))):
        n = 500 + extra
        address = ip(draw(st.integers(1, max(total, 1))))
        instances.append(instance(n, RUNNING, tagged=False, launched_at=NOW, private_ip=address))
        if draw(st.booleans()):
            in_flight.append(op(n))
    return nodes, instances, in_flight, down_since


def reference_instance(node, instances):
    """Tag first, then address; a live instance wins over a dead one."""
    for key in (lambda i: i.node_id == node.node_id, lambda i: i.private_ip == node.address):
        matches = [i for i in instances if key(i)]
        if matches:
            return max(
                matches,
                key=lambda i: (i.state not in (TERMINATED, InstanceState.SHUTTING_DOWN), i.launched_at),
            )
    return None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_planner_properties_hold_on_random_clusters(cluster):
    # Given a random cluster
    nodes, instances, in_flight, down_since = cluster
    by_id = {n.node_id: n for n in nodes}
    counts = RaftCounts.of(nodes)
    busy = {o.instance_id for o in in_flight}
    managers_in_flight = any(
        not o.is_stuck(NOW) and i.instance_id == o.instance_id and i.role is Role.MANAGER
        for o in in_flight
        for i in instances
    )

    # When a pass is planned
    result = plan(nodes, instances, in_flight, down_since)

    # Then every removal targets a node that is not ready and is down or has no live instance,
    # and no instance with an operation in flight
    removed = [r.node_id for r in result.removals]
    assert len(removed) == len(set(removed))
    for removal in result.removals:
        node = by_id[removal.node_id]
        matched = reference_instance(node, instances)
        live = matched is not None and matched.state not in (TERMINATED, InstanceState.SHUTTING_DOWN)
        assert not node.is_ready
        assert node.is_down or not live
        assert removal.instance_id not in busy
    downs = [r.state in (DOWN, DISCONNECTED) for r in result.removals]
    assert downs == sorted(downs, reverse=True)

    # And at most one manager changes, none while a manager operation is in flight,
    # every manager removal is demoted first and keeps a majority
    assert result.manager_changes <= 1
    if managers_in_flight:
        assert result.manager_changes == 0
    assert {r.node_id for r in result.removals if r.role is Role.MANAGER} == {
        d.node_id for d in result.demotions
    }
    for demotion in result.demotions:
        demoted = by_id[demotion.node_id]
        reachable_after = counts.reachable - demoted.is_reachable_manager
        assert counts.managers - 1 >= 1 and 2 * reachable_after > counts.managers - 1

    # And only running instances of nodes long down are marked Unhealthy
    for mark in result.mark_unhealthy:
        node = by_id[mark.node_id]
        assert node.is_down and mark.instance_id not in busy
        assert next(i for i in instances if i.instance_id == mark.instance_id).state is RUNNING
        assert mark.node_id in down_since and NOW - down_since[mark.node_id] >= GRACE
        assert not (node.is_manager and node.is_reachable_manager)

    # And without quorum nothing destructive is planned
    if not counts.has_quorum:
        assert not result.destructive
        assert [a.detail_type for a in result.alerts] == [AlertType.QUORUM_LOST]
    elif counts.margin == 0:
        assert [a.detail_type for a in result.alerts] == [AlertType.QUORUM_AT_RISK]
    else:
        assert result.alerts == ()

    # And stuck operations are exactly the ones past their deadline (acted on, or deferred with a reason)
    stuck_ids = {o.instance_id for o in in_flight if o.is_stuck(NOW)}
    assert {s.instance_id for s in result.stuck_operations} <= stuck_ids

    # And the metrics, addresses and down clock describe the view
    assert result.metrics.nodes_ready == sum(n.state is READY for n in nodes)
    assert result.metrics.nodes_down == sum(n.state in (DOWN, DISCONNECTED) for n in nodes)
    assert result.metrics.managers_reachable == counts.reachable
    assert result.metrics.quorum_margin == counts.margin
    demoted_ids = {d.node_id for d in result.demotions}
    reachable_addresses = {
        f"{n.address}:2377" for n in nodes if n.is_reachable_manager and n.node_id not in demoted_ids
    }
    assert set(result.manager_addresses) == reachable_addresses
    assert set(result.down_since) == {n.node_id for n in nodes if n.is_down}
    assert all(result.down_since[k] == down_since.get(k, NOW) for k in result.down_since)
    if result.command_manager is not None:
        assert result.command_manager.is_reachable_manager and result.command_manager.is_ready
        assert result.command_manager.node_id not in demoted_ids
