"""Handler-level tests of the exit flow: terminate lifecycle actions, ungraceful loss, Spot
and rebalance notices, alarms and reconcile, through the real handlers with moto and wire-level fakes
behind them. Each test reads Given / When / Then."""

from __future__ import annotations

import pytest
from join_world import WORKERS, load_event


@pytest.fixture
def cluster(world):
    """Three joined managers and two joined workers; a reconcile pass has saved the swarm view."""
    managers = world.managers(3)
    workers = world.workers(2)
    nodes = {i: world.join(i) for i in managers + workers}
    world.settle()
    world.reconcile_pass()
    return managers, workers, nodes


SPOT = "ec2-spot-instance-interruption-warning"


def drain_done(world, node_id, remaining=0):
    world.clock.advance(1)
    (drain,) = world.commands_for("drain-node", node_id)[-1:]
    return world.finish(drain, stdout=f"node-id={node_id} tasks-remaining={remaining}\n")


def left(world, instance_id):
    (leave,) = [s for s in world.sent("leave-swarm") if s.instance_id == instance_id][-1:]
    return world.finish(leave, stdout="left=true\n")


def removed(world, node_id, status="Success"):
    remove = world.commands_for("remove-node", node_id)[-1]
    out = f"node-id={node_id} removed=true\n" if status == "Success" else ""
    return world.finish(remove, status=status, stdout=out, stderr="" if out else "remove-node: failed")


def test_worker_scale_in_drains_leaves_removes_then_continues(world, cluster):
    # Given a joined worker that Auto Scaling terminates
    managers, workers, nodes = cluster
    w = workers[0]

    # When its terminate lifecycle action arrives
    result = world.terminating(w)

    # Then drain-node runs on a manager (never on the worker itself), Node Draining is published
    assert result["outcome"] == "drain"
    (drain,) = world.commands_for("drain-node", nodes[w])
    assert drain.instance_id in managers
    assert int(drain.parameters["TimeoutSeconds"]) <= 600
    assert world.published("Node Draining")[-1]["instanceId"] == w
    assert world.terminate_results(w) == []

    # When the drain finishes, then leave-swarm runs on the worker
    drain_done(world, nodes[w])
    (_leave,) = [s for s in world.sent("leave-swarm") if s.instance_id == w]

    # When it left, then remove-node runs on a manager
    left(world, w)
    (remove,) = world.commands_for("remove-node", nodes[w])
    assert remove.instance_id in managers

    # When the node is removed, then the lifecycle action continues and Node Removed is published
    removed(world, nodes[w])
    assert world.terminate_results(w) == ["CONTINUE"]
    (event,) = world.published("Node Removed")
    assert event["instanceId"] == w and event["nodeId"] == nodes[w] and event["role"] == "worker"
    assert event["correlationId"] == world.published("Node Draining")[-1]["correlationId"]
    assert world.leave_op(w)["stage"] == "done"
    assert w not in world.nodes()


def test_manager_scale_in_is_demoted_before_it_leaves_and_only_then_continues(world, cluster):
    # Given a joined manager that Auto Scaling terminates
    managers, _workers, nodes = cluster
    m = managers[1]
    world.terminating(m)

    # When its drain finishes
    drain_done(world, nodes[m])

    # Then it waits for a swarm view taken after the drain (a describe-swarm on another manager)
    assert world.commands_for("remove-node", nodes[m]) == []
    describe = world.sent("describe-swarm")[-1]
    assert describe.instance_id != m
    world.answer_describe()
    world.deliver_steps()

    # Then remove-node (demote, then rm) runs on another manager; it does not leave first
    (remove,) = world.commands_for("remove-node", nodes[m])
    assert remove.instance_id in managers and remove.instance_id != m
    assert [s for s in world.sent("leave-swarm") if s.instance_id == m] == []
    assert world.terminate_results(m) == []

    # When the removal succeeded, then it is demoted, leaves, and only then the action continues
    removed(world, nodes[m])
    assert world.published("Manager Demoted")[-1]["nodeId"] == nodes[m]
    assert world.terminate_results(m) == []
    left(world, m)
    assert world.terminate_results(m) == ["CONTINUE"]
    assert world.published("Node Removed")[-1]["instanceId"] == m
    assert not any(i["pk"] == "lock#manager-change" for i in world.items())


def test_manager_removal_waits_for_the_quorum_guard_and_heartbeats(world, cluster):
    # Given three managers of which one (not the leaving one) is unreachable
    managers, _workers, nodes = cluster
    leaving, dead = managers[0], managers[2]
    world.terminating(leaving)
    drain_done(world, nodes[leaving])

    # When the fresh view shows the other manager unreachable
    world.answer_describe(overrides={nodes[dead]: ("down", "unreachable")})
    world.deliver_steps()

    # Then nothing is removed: removing a reachable manager of 2-of-3 would lose quorum
    assert world.commands_for("remove-node", nodes[leaving]) == []
    (risk,) = [e for e in world.published("Quorum At Risk") if e["instanceId"] == leaving]
    assert "quorum" in risk["reason"] and risk["nodeId"] == nodes[leaving]
    assert leaving in world.fakes.heartbeats
    assert world.terminate_results(leaving) == []

    # When the next views still say so, it keeps waiting (one alert, not one per step)
    for _ in range(3):
        world.answer_describe(overrides={nodes[dead]: ("down", "unreachable")})
        world.deliver_steps()
    assert world.commands_for("remove-node", nodes[leaving]) == []
    assert len([e for e in world.published("Quorum At Risk") if e["instanceId"] == leaving]) == 1

    # When the unreachable manager is back, then the removal proceeds
    world.answer_describe()
    world.deliver_steps()
    assert len(world.commands_for("remove-node", nodes[leaving])) == 1


def test_manager_removal_never_allowed_completes_within_the_hook_budget(world, cluster):
    # Given a leaving manager whose removal the guard refuses for ever
    managers, _workers, nodes = cluster
    leaving, dead = managers[0], managers[2]
    started = world.clock.now
    world.terminating(leaving)
    drain_done(world, nodes[leaving])

    # When every view says the other manager is unreachable
    for _ in range(200):
        if world.terminate_results(leaving):
            break
        if world.sent("describe-swarm")[-1].command_id not in world.answered:
            world.answer_describe(overrides={nodes[dead]: ("down", "unreachable")})
        world.deliver_steps()

    # Then it was never removed, and the lifecycle action still completed within the budget
    assert world.commands_for("remove-node", nodes[leaving]) == []
    assert world.terminate_results(leaving) == ["CONTINUE"]
    budget = 600 + 600 + 1800  # drain timeout + removal + quorum wait (the hook is heartbeated meanwhile)
    assert world.clock.now - started <= budget + 60
    assert len(world.fakes.heartbeats) >= budget // 900
    assert world.leave_op(leaving)["stage"] == "done"


def test_drain_that_never_finishes_still_completes_within_the_budget(world, cluster):
    # Given a worker whose tasks never move
    _managers, workers, nodes = cluster
    w = workers[0]
    started = world.clock.now
    world.terminating(w)

    # When every drain poll says tasks remain
    for _ in range(50):
        if [s for s in world.sent("leave-swarm") if s.instance_id == w]:
            break
        world.clock.advance(120)  # each drain-node waits its TimeoutSeconds on the manager
        drain_done(world, nodes[w], remaining=3)
        world.deliver_steps()

    # Then the drain was re-polled by delayed steps (no Lambda waits), heartbeating the action
    polls = world.commands_for("drain-node", nodes[w])
    assert len(polls) > 1
    assert all(int(p.parameters["TimeoutSeconds"]) <= 120 for p in polls)
    assert w in world.fakes.heartbeats

    # And past the drain budget it went on: leave, remove, CONTINUE, well inside the hook's budget
    left(world, w)
    removed(world, nodes[w])
    assert world.terminate_results(w) == ["CONTINUE"]
    assert world.clock.now - started <= 600 + 200
    assert "tasks remaining" in world.leave_op(w)["reason"] or world.leave_op(w)["stage"] == "done"


@pytest.mark.parametrize("same_id", [True, False])
def test_duplicate_terminate_events_drain_once(world, cluster, same_id):
    # Given a worker whose terminate event is delivered twice
    _managers, workers, nodes = cluster
    w = workers[0]
    event_id = "bbbbbbbb-0000-4000-8000-000000000001" if same_id else None

    # When both deliveries arrive
    world.terminating(w, event_id=event_id)
    second = world.terminating(w, event_id=event_id)

    # Then one drain, one Node Draining
    assert len(world.commands_for("drain-node", nodes[w])) == 1
    assert len(world.published("Node Draining")) == 1
    assert second["outcome"] == "drain" if same_id else second["outcome"] == "ignore"


@pytest.mark.parametrize("states", [("terminated",), ("shutting-down", "terminated")])
def test_terminated_before_the_drain_finished_removes_once(world, cluster, states):
    # Given a worker being drained
    _managers, workers, nodes = cluster
    w = workers[0]
    world.terminating(w)
    (_drain,) = world.commands_for("drain-node", nodes[w])

    # When the instance goes away anyway (hook timed out, or someone terminated it), twice over
    world.ec2.terminate_instances(InstanceIds=[w])
    for state in states:
        world.state_change(w, state)
    world.state_change(w, "terminated")

    # Then it is removed right away, once, without waiting for the drain or a leave
    (_remove,) = world.commands_for("remove-node", nodes[w])
    assert [s for s in world.sent("leave-swarm") if s.instance_id == w] == []

    # When the drain's late status arrives, then it is stale and ignored
    assert drain_done(world, nodes[w])["outcome"] == "ignore"
    removed(world, nodes[w])
    assert len(world.commands_for("remove-node", nodes[w])) == 1
    assert len(world.published("Node Removed")) == 1
    assert world.leave_op(w)["stage"] == "done"
    assert w not in world.nodes()


def test_terminate_after_bootstrap_but_before_verify_drains_the_known_node(world, cluster):
    # Given a worker that joined the swarm but is not verified yet
    _managers, _workers, _nodes = cluster
    (w,) = world.workers(1)
    world.lifecycle(w)
    node_id = world.bootstrap_succeeds(next(s for s in world.sent("bootstrap-node") if s.instance_id == w))

    # When it is terminated
    world.terminating(w)

    # Then its node is drained and removed (no ghost), and the late verify result changes nothing
    verify = next(s for s in world.sent("verify-node") if s.parameters["NodeId"] == node_id)
    assert world.verify_succeeds(verify)["outcome"] == "leave-begun"
    drain_done(world, node_id)
    left(world, w)
    removed(world, node_id)
    assert world.terminate_results(w) == ["CONTINUE"]
    assert world.published("Node Removed")[-1]["nodeId"] == node_id


@pytest.mark.parametrize("failure", ["Failed", "Undeliverable", "not-registered"])
def test_manager_that_dies_mid_removal_is_not_used_again(world, cluster, failure):
    # Given a worker whose removal was sent to a manager
    managers, workers, nodes = cluster
    w = workers[0]
    world.terminating(w)
    drain_done(world, nodes[w])
    left(world, w)
    (first,) = world.commands_for("remove-node", nodes[w])

    # When that manager dies mid-operation
    if failure == "not-registered":
        # ... before the command reached it: the retry's SendCommand says InvalidInstanceId
        world.fakes.unregistered_agents.add(first.instance_id)
        world.finish(first, status="Failed", stderr="remove-node: docker node rm failed")
        world.fakes.unregistered_agents.discard(first.instance_id)
    else:
        world.finish(first, status=failure, stderr="remove-node: connection lost")

    # Then the next attempt runs on another manager, and succeeds there
    second = world.commands_for("remove-node", nodes[w])[-1]
    assert second.instance_id != first.instance_id and second.instance_id in managers
    removed(world, nodes[w])
    assert world.terminate_results(w) == ["CONTINUE"]
    assert len(world.published("Node Removed")) == 1


def test_dead_worker_is_removed_right_away(world, cluster):
    # Given a joined worker that crashes (no lifecycle action: terminated by hand or by EC2)
    managers, workers, nodes = cluster
    w = workers[1]

    # When its terminated state change arrives
    result = world.dies(w)

    # Then remove-node runs at once from a manager; on success, Dead Node Removed
    assert result["outcome"] == "remove"
    (remove,) = world.commands_for("remove-node", nodes[w])
    assert remove.instance_id in managers
    assert world.sent("drain-node") == [] and world.sent("leave-swarm") == []
    removed(world, nodes[w])
    (event,) = world.published("Dead Node Removed")
    assert event["instanceId"] == w and event["nodeId"] == nodes[w]
    assert world.published("Node Removed") == []

    # And a late duplicate changes nothing
    assert world.dies(w)["outcome"] == "ignore"
    assert len(world.commands_for("remove-node", nodes[w])) == 1


def test_dead_manager_is_demoted_and_removed_when_quorum_allows(world, cluster):
    # Given a joined manager whose instance is terminated by hand
    managers, _workers, nodes = cluster
    m = managers[2]
    world.dies(m)

    # Then it waits for a fresh view before touching the raft configuration
    assert world.commands_for("remove-node", nodes[m]) == []
    assert world.sent("describe-swarm")[-1].instance_id != m

    # When the view shows it down and unreachable (2 of 3 left: removing it keeps a majority)
    world.answer_describe(overrides={nodes[m]: ("down", "unreachable")})
    world.deliver_steps()

    # Then remove-node (demote first) runs on a surviving manager
    (remove,) = world.commands_for("remove-node", nodes[m])
    assert remove.instance_id in managers and remove.instance_id != m
    removed(world, nodes[m])
    assert world.published("Manager Demoted")[-1]["nodeId"] == nodes[m]
    assert world.published("Dead Node Removed")[-1]["nodeId"] == nodes[m]


@pytest.mark.parametrize("who", ["unknown", "other-cluster"])
def test_instance_of_another_cluster_or_unknown_is_ignored_without_retries(world, cluster, who):
    # Given an instance that is not this cluster's (or that nobody knows)
    if who == "unknown":
        instance = "i-0eeeeeeeeeeeeeee0"
        group = WORKERS
    else:
        (instance,) = world.launch("other-cluster-workers")
        group = "other-cluster-workers"
    before = len(world.sent())

    # When every exit event about it arrives
    world.fakes.pending_lifecycle.add(instance)
    event = load_event(
        "ec2-instance-terminate-lifecycle-action", EC2InstanceId=instance, AutoScalingGroupName=group
    )
    results = [
        world.invoke("lifecycle_action", event),
        world.state_change(instance, "shutting-down"),
        world.state_change(instance, "terminated"),
        world.invoke(
            "interruption", load_event("ec2-spot-instance-interruption-warning", **{"instance-id": instance})
        ),
    ]

    # Then each is ignored (returns normally: no retry loop), nothing is sent or published
    assert [r["outcome"] for r in results] == ["ignore"] * 4
    assert len(world.sent()) == before
    assert world.published("Node Draining") == [] and world.leave_op(instance) is None


def test_spot_warning_drains_at_once_and_the_termination_finds_it(world, cluster):
    # Given a Spot worker that gets an interruption warning
    _managers, workers, nodes = cluster
    w = workers[0]

    # When the warning arrives
    result = world.invoke(
        "interruption", load_event("ec2-spot-instance-interruption-warning", **{"instance-id": w})
    )

    # Then the drain starts at once, within the two minutes
    assert result["outcome"] == "drain"
    (drain,) = world.commands_for("drain-node", nodes[w])
    assert int(drain.parameters["TimeoutSeconds"]) <= 90

    # When Auto Scaling's terminate action arrives meanwhile, it waits for the leave in flight
    assert world.terminating(w)["outcome"] == "wait"
    drain_done(world, nodes[w])
    left(world, w)
    removed(world, nodes[w])

    # Then one removal, and the action continues once
    assert world.terminate_results(w) == ["CONTINUE"]
    world.ec2.terminate_instances(InstanceIds=[w])
    assert world.state_change(w, "terminated")["outcome"] == "ignore"
    assert len(world.commands_for("remove-node", nodes[w])) == 1
    assert len(world.published("Node Removed")) == 1


def test_rebalance_recommendation_drains_workers_not_managers(world, cluster):
    managers, workers, nodes = cluster
    rebalance = "ec2-instance-rebalance-recommendation"

    # When a worker and a manager get a rebalance recommendation
    on_worker = world.invoke("interruption", load_event(rebalance, **{"instance-id": workers[0]}))
    on_manager = world.invoke("interruption", load_event(rebalance, **{"instance-id": managers[0]}))

    # Then the worker is drained, the manager is not
    assert on_worker["outcome"] == "drain" and on_manager["outcome"] == "ignore"
    assert len(world.commands_for("drain-node", nodes[workers[0]])) == 1
    assert world.commands_for("drain-node", nodes[managers[0]]) == []


def test_api_calls_per_removal(world, cluster):
    # Given a joined worker and a second one
    _managers, workers, nodes = cluster
    graceful, dead = workers

    # When one is scaled in (drain, leave, remove, CONTINUE) and the other dies
    before = len(world.fakes.calls)
    world.terminating(graceful)
    drain_done(world, nodes[graceful])
    left(world, graceful)
    removed(world, nodes[graceful])
    middle = len(world.fakes.calls)
    world.dies(dead)
    removed(world, nodes[dead])

    # Then each costs a small, fixed number of calls (the report counts them)
    def ops(calls):
        # Minus the test's own TerminateInstances.
        return [op for _, op, _ in calls if op not in ("TerminateInstances",)]

    scale_in, died = ops(world.fakes.calls[before:middle]), ops(world.fakes.calls[middle:])
    assert scale_in.count("SendCommand") == 3 and scale_in.count("CompleteLifecycleAction") == 1
    assert died.count("SendCommand") == 1
    assert len(scale_in) <= 45 and len(died) <= 20, (scale_in, died)
    print(f"calls per graceful worker removal: {len(scale_in)}; per dead worker removal: {len(died)}")
