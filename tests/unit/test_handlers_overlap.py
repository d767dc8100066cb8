"""Handler-level tests of a leave that overlaps a join: the instance is terminated (by Auto Scaling, by
hand, by a Spot interruption) while, or right after, its node joins the swarm. Whatever the order of
the bootstrap-node result, the terminate action and the state changes, a node that joined is removed
(before CONTINUE, or at once when the result comes after the instance was let go), and the timeline
ends each Node Join Started in exactly one Node Joined, Node Join Failed or Node Join Cancelled.
Each test reads Given / When / Then."""

from __future__ import annotations

import itertools

import pytest
from join_world import TABLE, load_event
from test_handlers_exit import drain_done, left, removed

from swarmkeeper.adapters.state import StateTable

JOIN_ENDS = ("Node Joined", "Node Join Failed", "Node Join Cancelled")


def bootstrapping_worker(world):
    """A worker whose launch event has been handled: its bootstrap-node is running."""
    (w,) = world.workers(1)
    world.lifecycle(w)
    (boot,) = [s for s in world.sent("bootstrap-node") if s.instance_id == w]
    assert world.op(w)["stage"] == "bootstrapping"
    return w, boot


def verifying_worker(world):
    """A worker whose node joined: its verify-node is running."""
    w, boot = bootstrapping_worker(world)
    node_id = world.bootstrap_succeeds(boot)
    (verify,) = world.commands_for("verify-node", node_id)
    return w, node_id, verify


def timeline(world, instance_id):
    return [e["detail-type"] for e in world.published() if e["instanceId"] == instance_id]


def launch_results(world, instance_id):
    return [r for i, hook, r in world.fakes.hook_results if i == instance_id and hook == "swarmkeeper-launch"]


def assert_one_join_end(world, instance_id, end):
    events = timeline(world, instance_id)
    assert events.count("Node Join Started") == 1, events
    assert [e for e in events if e in JOIN_ENDS] == [end], events


def test_terminate_while_bootstrapping_waits_for_the_result_and_removes_the_node_before_continue(
    world, manager
):
    # Given a worker whose bootstrap-node is running
    w, boot = bootstrapping_worker(world)

    # When Auto Scaling terminates it
    result = world.terminating(w)

    # Then the leave waits for the bootstrap's result (the terminate action is held), the join is
    # cancelled on the timeline
    assert result["outcome"] == "wait"
    assert world.terminate_results(w) == []
    assert world.leave_op(w)["stage"] == "awaiting-bootstrap"
    assert timeline(world, w) == ["Node Join Started", "Node Join Cancelled"]

    # When the late result says the node joined
    node_id = world.bootstrap_succeeds(boot)

    # Then that node is drained at once, and nothing of the join goes on: no verify, tag or CONTINUE
    (drain,) = world.commands_for("drain-node", node_id)
    assert drain.instance_id == manager
    assert world.sent("verify-node")[-1].parameters["NodeId"] != node_id
    assert "swarmkeeper:node-id" not in world.tags(w)

    # When the drain, the leave and the removal finish, then and only then the action continues
    drain_done(world, node_id)
    left(world, w)
    assert world.terminate_results(w) == []
    removed(world, node_id)
    assert world.terminate_results(w) == ["CONTINUE"]
    assert launch_results(world, w) == []
    assert timeline(world, w) == ["Node Join Started", "Node Join Cancelled", "Node Draining", "Node Removed"]
    assert world.published("Node Removed")[-1]["nodeId"] == node_id
    assert w not in world.nodes()


@pytest.mark.parametrize("status", ["Failed", "TimedOut", "Cancelled"])
def test_a_late_result_without_a_node_continues_at_once_as_never_joined(world, manager, status):
    # Given a worker terminated while its bootstrap-node ran
    w, boot = bootstrapping_worker(world)
    world.terminating(w)

    # When the bootstrap ends without a node id
    world.finish(boot, status=status, stderr="bootstrap-node: docker swarm join failed")

    # Then nothing is drained or removed, the action continues, the join ended once (cancelled)
    assert world.sent("drain-node") == [] and world.sent("remove-node") == []
    assert world.terminate_results(w) == ["CONTINUE"]
    assert world.leave_op(w)["stage"] == "done"
    assert_one_join_end(world, w, "Node Join Cancelled")


def test_a_lost_status_event_is_found_by_the_leave_s_poll(world, manager):
    # Given a worker terminated while its bootstrap-node ran
    w, boot = bootstrapping_worker(world)
    world.terminating(w)

    # When the command succeeds on the instance but its status event never arrives
    command = next(c for c in world._backend()._commands if c.command_id == boot.command_id)
    node_id = "n" * 25
    command.invocations[0].update(
        Status="Success", StandardOutputContent=f"node-id={node_id} role=worker cluster-id=x\n"
    )
    world.deliver_steps()

    # Then the leave's next step reads the command and drains the node
    assert len(world.commands_for("drain-node", node_id)) == 1
    assert world.clock.now - float(world.leave_op(w)["started_at"]) <= 15


def test_no_result_within_the_drain_budget_continues_and_a_later_node_is_removed_at_once(world, manager):
    # Given a worker terminated while its bootstrap-node ran
    w, boot = bootstrapping_worker(world)
    started = world.clock.now
    world.terminating(w)

    # When no result comes within the drain budget
    world.settle()

    # Then the leave polled and heartbeated meanwhile, and let the instance go at the budget
    assert world.terminate_results(w) == ["CONTINUE"]
    assert w in world.fakes.heartbeats
    assert 600 <= world.clock.now - started <= 600 + 15
    assert world.leave_op(w)["stage"] == "done" and world.leave_op(w)["awaiting_bootstrap"]

    # When the result comes after all, with a node id
    world.terminate(w)
    node_id = world.bootstrap_succeeds(boot)

    # Then that node is removed right away (no drain: the instance is gone), as a dead node
    (remove,) = world.commands_for("remove-node", node_id)
    assert remove.instance_id == manager
    assert world.sent("drain-node") == []
    removed(world, node_id)
    assert world.published("Dead Node Removed")[-1]["nodeId"] == node_id
    assert world.terminate_results(w) == ["CONTINUE"]
    assert_one_join_end(world, w, "Node Join Cancelled")


@pytest.mark.parametrize("states", [("terminated",), ("shutting-down", "terminated")])
def test_ungraceful_loss_while_bootstrapping_removes_the_late_node_at_once(world, manager, states):
    # Given a worker whose bootstrap-node is running
    w, boot = bootstrapping_worker(world)

    # When the instance dies without a terminate action (its state changes arrive)
    world.ec2.terminate_instances(InstanceIds=[w])
    world.fakes.pending_lifecycle.discard(w)
    outcomes = [world.state_change(w, state)["outcome"] for state in states]

    # Then the join is cancelled and the leave waits for the result
    assert outcomes[0] == "wait"
    assert set(outcomes[1:]) <= {"ignore"}
    assert timeline(world, w) == ["Node Join Started", "Node Join Cancelled"]

    # When the late result says the node joined, then it is removed at once from a manager
    node_id = world.bootstrap_succeeds(boot)
    (remove,) = world.commands_for("remove-node", node_id)
    assert remove.instance_id == manager
    removed(world, node_id)
    assert timeline(world, w)[-1] == "Dead Node Removed"
    assert_one_join_end(world, w, "Node Join Cancelled")
    assert "swarmkeeper:node-id" not in world.tags(w) and launch_results(world, w) == []


def test_spot_warning_while_bootstrapping_drains_within_the_warning(world, manager):
    # Given a Spot worker whose bootstrap-node is running
    w, boot = bootstrapping_worker(world)

    # When its interruption warning arrives, then the join is cancelled and the leave waits
    warning = load_event("ec2-spot-instance-interruption-warning", **{"instance-id": w})
    assert world.invoke("interruption", warning)["outcome"] == "wait"

    # When the node joins meanwhile, then it is drained within what is left of the two minutes
    world.clock.advance(10)
    node_id = world.bootstrap_succeeds(boot)
    (drain,) = world.commands_for("drain-node", node_id)
    assert int(drain.parameters["TimeoutSeconds"]) <= 80

    # When the terminate action arrives meanwhile, it waits for that leave; then one removal
    assert world.terminating(w)["outcome"] == "wait"
    drain_done(world, node_id)
    left(world, w)
    removed(world, node_id)
    assert world.terminate_results(w) == ["CONTINUE"]
    assert len(world.commands_for("remove-node", node_id)) == 1
    assert_one_join_end(world, w, "Node Join Cancelled")


def test_rebalance_recommendation_leaves_a_join_in_flight_alone(world, manager):
    # Given a worker whose bootstrap-node is running
    w, boot = bootstrapping_worker(world)

    # When a rebalance recommendation arrives for it
    event = load_event("ec2-instance-rebalance-recommendation", **{"instance-id": w})
    result = world.invoke("interruption", event)

    # Then it is ignored, and the join completes as usual
    assert result["outcome"] == "ignore"
    node_id = world.bootstrap_succeeds(boot)
    world.verify_succeeds(world.sent("verify-node")[-1])
    assert world.tags(w)["swarmkeeper:node-id"] == node_id
    assert_one_join_end(world, w, "Node Joined")


def test_duplicate_late_results_drain_once(world, manager):
    # Given a worker terminated while its bootstrap-node ran
    w, boot = bootstrapping_worker(world)
    world.terminating(w)

    # When the result's status event is delivered twice (two ids)
    stdout = f"node-id={'d' * 25} role=worker cluster-id=x\n"
    first = world.finish(boot, stdout=stdout)
    second = world.finish(boot, stdout=stdout)

    # Then one drain; the duplicate is ignored
    assert first["outcome"] == "drain" and second["outcome"] == "ignore"
    assert len(world.commands_for("drain-node", "d" * 25)) == 1


def test_verify_result_after_the_leave_began_is_not_announced(world, manager):
    # Given a worker whose node joined and is being verified
    w, node_id, verify = verifying_worker(world)

    # When it is terminated, then its join is cancelled (with its node id) and the node drained
    world.terminating(w)
    cancelled = world.published("Node Join Cancelled")[-1]
    assert cancelled["instanceId"] == w and cancelled["nodeId"] == node_id
    assert len(world.commands_for("drain-node", node_id)) == 1

    # When the verify's Success arrives, then no tag, no CONTINUE, no Node Joined
    assert world.verify_succeeds(verify)["outcome"] == "leave-begun"
    assert "swarmkeeper:node-id" not in world.tags(w) and launch_results(world, w) == []
    assert_one_join_end(world, w, "Node Join Cancelled")


def is_join(stage):
    return lambda item: item.get("kind", {}).get("S") == "join" and item.get("stage", {}).get("S") == stage


def test_a_leave_between_the_join_s_read_and_its_admission_wins(world, manager):
    # Given a worker being verified
    w, node_id, verify = verifying_worker(world)

    # When its terminate action is handled after the join read its op, before the join's admission
    world.fakes.before_put.append((is_join("admitting"), lambda: world.terminating(w)))
    world.verify_succeeds(verify)

    # Then the join announces nothing (no tag, no CONTINUE, no Node Joined); the leave drains the node
    assert "swarmkeeper:node-id" not in world.tags(w) and launch_results(world, w) == []
    assert w not in world.nodes()
    assert_one_join_end(world, w, "Node Join Cancelled")
    assert len(world.commands_for("drain-node", node_id)) == 1


def test_a_leave_between_the_join_s_read_and_its_failure_wins(world, manager):
    # Given a worker being verified
    w, _, verify = verifying_worker(world)

    # When its terminate action is handled after the join read its op, before the join closed it failed
    world.fakes.before_put.append((is_join("failed"), lambda: world.terminating(w)))
    world.finish(verify, status="Failed", stderr="verify-node: not ready")

    # Then the join is announced once, as cancelled, and nothing is abandoned
    assert_one_join_end(world, w, "Node Join Cancelled")
    assert launch_results(world, w) == []


def test_a_result_whose_join_write_loses_to_a_leave_goes_to_that_leave(world, manager):
    # Given a worker whose bootstrap-node is running
    w, boot = bootstrapping_worker(world)

    # When its terminate action is handled after the join read its op, before the join saved the
    # verify stage the result leads to
    world.fakes.before_put.append((is_join("verifying"), lambda: world.terminating(w)))
    node_id = world.bootstrap_succeeds(boot)

    # Then the result reaches the leave in the same invocation: the node is drained at once
    assert len(world.commands_for("drain-node", node_id)) == 1
    assert world.commands_for("verify-node", node_id) == []
    assert_one_join_end(world, w, "Node Join Cancelled")


def test_a_leave_after_the_join_s_admission_drains_once_node_joined_is_out(world, manager):
    # Given a worker whose join was verified and committed (admitting), its announcement under way
    w, node_id, verify = verifying_worker(world)
    world.fakes.before_put.append((is_join("joined"), lambda: world.terminating(w)))

    # When the terminate action is handled while the join announces
    world.verify_succeeds(verify)

    # Then the join is announced as joined (no cancel); the drain waits a moment, then follows it
    assert world.commands_for("drain-node", node_id) == []
    world.deliver_steps()
    assert len(world.commands_for("drain-node", node_id)) == 1
    assert_one_join_end(world, w, "Node Joined")
    events = timeline(world, w)
    assert events.index("Node Joined") < events.index("Node Draining")


def test_a_crash_mid_admission_is_finished_by_the_retry(world, manager):
    # Given a worker being verified, and tagging that fails once (the function dies mid-admission)
    w, node_id, verify = verifying_worker(world)
    world.fakes.crashes["ec2.CreateTags"] = 1

    # When verify's Success arrives, the admission dies after its write; Lambda retries the event
    event_id = "cccccccc-0000-4000-8000-000000000001"
    stdout = f"node-id={node_id} state=ready role=worker\n"
    with pytest.raises(RuntimeError):
        world.finish(verify, stdout=stdout, event_id=event_id)
    assert world.op(w)["stage"] == "admitting"
    world.finish(verify, stdout=stdout, event_id=event_id)

    # Then the join completes once: tag, record, CONTINUE, one Node Joined
    assert world.tags(w)["swarmkeeper:node-id"] == node_id
    assert launch_results(world, w) == ["CONTINUE"]
    assert_one_join_end(world, w, "Node Joined")
    assert world.op(w)["stage"] == "joined"


def test_join_steps_and_requests_after_the_leave_began_send_nothing(world, manager):
    # Given a worker waiting for its SSM agent, terminated meanwhile
    (w,) = world.workers(1)
    world.fakes.unregistered_agents.add(w)
    world.lifecycle(w)
    assert world.terminating(w)["outcome"] == "removed"  # never joined: nothing in flight
    world.fakes.unregistered_agents.discard(w)
    before = len(world.sent())

    # When its pending poll step, the agent-ready event and a running event arrive
    results = [*world.deliver_steps(), world.agent_ready(w), world.running(w)]

    # Then nothing is sent; the join ended once, cancelled
    assert len(world.sent()) == before
    assert results[-2]["outcome"] == results[-1]["outcome"] == "leave-begun"
    assert_one_join_end(world, w, "Node Join Cancelled")


def test_a_join_write_never_lands_on_a_leave_op(world):
    # Given a leave op stored over a join at a version a stale join write would expect
    from swarmkeeper.domain.models import JoinOp, LeaveOp, LeaveStage, Role, Stage

    table = StateTable(world.ddb, TABLE)
    join = JoinOp("i-0000000000000000a", Role.WORKER, None, Stage.VERIFYING, 4, 0.0, 0.0, "c", "lifecycle")
    assert table.create_op(join)
    leave = LeaveOp(join.instance_id, Role.WORKER, "n", LeaveStage.DRAINING, 5, 0.0, 0.0, 0.0, "c", "state")
    assert table.create_leave(leave, replacing=4)
    assert table.save_leave(LeaveOp(**{**leave.__dict__, "version": 6}))

    # When a join write conditional on version 6 comes
    late = JoinOp(**{**join.__dict__, "stage": Stage.ADMITTING, "version": 7})

    # Then it does not land
    assert not table.save_op(late)
    assert table.get_ops(join.instance_id)[1] is not None


# The orders the issue names: the bootstrap result (with a node id or none), the terminate action, the
# instance's shutting-down/terminated state changes, in every order.
ORDERS = list(itertools.permutations(("result", "terminate", "gone")))


@pytest.mark.parametrize("with_node", [True, False], ids=["joined", "no-node"])
@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_every_order_of_result_terminate_and_state_changes(world, manager, order, with_node):
    # Given a worker whose bootstrap-node is running
    w, boot = bootstrapping_worker(world)
    node_id = "e" * 25
    stdout = f"node-id={node_id} role=worker cluster-id=x\n" if with_node else ""
    terminated = False

    # When the three arrive in this order (the flows' own commands answered as they come)
    for stimulus in order:
        if stimulus == "result":
            world.finish(boot, status="Success" if with_node else "Failed", stdout=stdout)
        elif stimulus == "terminate":
            if not terminated:
                world.terminating(w)
        else:
            world.ec2.terminate_instances(InstanceIds=[w])
            world.fakes.pending_lifecycle.discard(w)
            terminated = True
            world.state_change(w, "shutting-down")
            world.state_change(w, "terminated")
        answer_leave_commands(world, w, node_id)

    # Then a node that joined is removed, before any CONTINUE of the terminate action that waited
    removals = world.commands_for("remove-node", node_id)
    if with_node:
        assert removals, order
        assert world.published("Node Removed") or world.published("Dead Node Removed")
        removed_at = next(
            i for i, (_, op, p) in enumerate(world.fakes.calls) if op == "PutEvents" and "Removed" in str(p)
        )
        for i, (_, op, params) in enumerate(world.fakes.calls):
            if op == "CompleteLifecycleAction" and params["LifecycleHookName"] == "swarmkeeper-terminate":
                assert i > removed_at, order
    else:
        assert removals == [] and world.sent("drain-node") == []
    # And the join ended exactly once, never joined (failed when it failed before the instance left,
    # cancelled otherwise): no tag, no launch CONTINUE
    failed_first = order[0] == "result" and not with_node
    assert_one_join_end(world, w, "Node Join Failed" if failed_first else "Node Join Cancelled")
    assert launch_results(world, w) in ([], ["ABANDON"])
    assert "swarmkeeper:node-id" not in world.tags(w)


def answer_leave_commands(world, instance_id, node_id):
    """Answer every drain / leave / remove command of the leave as its manager (or the node) would."""
    for _ in range(10):
        pending = [
            s
            for s in world.sent()
            if s.action in ("drain-node", "leave-swarm", "remove-node")
            and s.command_id not in world.answered
            and (s.parameters.get("NodeId") == node_id or s.instance_id == instance_id)
        ]
        if not pending:
            world.deliver_steps()
            return
        for sent in pending:
            world.answered.add(sent.command_id)
            world.clock.advance(1)
            stdout = {
                "drain-node": f"node-id={node_id} tasks-remaining=0\n",
                "leave-swarm": "left=true\n",
                "remove-node": f"node-id={node_id} removed=true\n",
            }[sent.action]
            world.finish(sent, stdout=stdout)


@pytest.mark.parametrize("ready", [True, False], ids=["finished", "rolled-back"])
def test_a_join_reconcile_ends_past_its_deadline_is_announced_once(world, manager, ready):
    # Given a worker whose node joined but whose verify result never came, past the join's budget
    (w,) = world.workers(1)
    world.lifecycle(w)
    node_id = world.bootstrap_succeeds(next(s for s in world.sent("bootstrap-node") if s.instance_id == w))
    world.clock.advance(300 + 2100 + 60)

    # When a reconcile pass sees the node ready (or not there at all)
    extra = (f"{node_id} worker ready active - {world.private_ip(w)} host-{w}",) if ready else ()
    world.reconcile_pass(extra=extra)

    # Then the join is closed and its end is on the timeline, once: joined (tagged, continued) or failed
    assert world.op(w)["stage"] == ("joined" if ready else "failed")
    assert_one_join_end(world, w, "Node Joined" if ready else "Node Join Failed")
    if ready:
        assert world.tags(w)["swarmkeeper:node-id"] == node_id
        assert launch_results(world, w) == ["CONTINUE"]
