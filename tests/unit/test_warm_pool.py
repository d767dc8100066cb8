"""Auto Scaling warm pools, through the real handlers: a launch into the pool is continued without a
join, a launch out of it joins the instance, a node scaled in back into the pool leaves the swarm and
rejoins cleanly when it comes out, and an instance waiting in the pool (stopped, or just launched)
starts nothing. The events are the AWS-documented ones (tests/events/*warm-pool*.json; their Origin
and Destination say where the instance comes from and goes to). Given / When / Then."""

from __future__ import annotations

import uuid

import pytest
from join_world import REGION, WORKERS, load_event
from moto.core import DEFAULT_ACCOUNT_ID
from test_handlers_exit import drain_done, left, removed

INTO_POOL = "ec2-instance-launch-lifecycle-action-into-warm-pool"
OUT_OF_POOL = "ec2-instance-launch-lifecycle-action-from-warm-pool"
SCALE_IN_TO_POOL = "ec2-instance-terminate-lifecycle-action-into-warm-pool"


def where(world, instance_id: str, lifecycle_state: str) -> None:
    """Auto Scaling's lifecycle state of the instance (moto knows no warm pool: set it)."""
    from moto.autoscaling.models import autoscaling_backends

    group = autoscaling_backends[DEFAULT_ACCOUNT_ID][REGION].autoscaling_groups[WORKERS]
    (state,) = [s for s in group.instance_states if s.instance.id == instance_id]
    state.lifecycle_state = lifecycle_state


def action(world, fixture: str, instance_id: str, token: str, lifecycle_state: str, event_id=None):
    """Auto Scaling puts the instance in a wait state for the action of ``token``; its event arrives."""
    where(world, instance_id, lifecycle_state)
    world.fakes.pending_lifecycle.add(instance_id)
    world.fakes.pending_tokens[instance_id] = token
    event = load_event(fixture, event_id=event_id, EC2InstanceId=instance_id, LifecycleActionToken=token)
    return world.invoke("lifecycle_action", event)


def into_pool(world, instance_id: str, token: str | None = None, event_id=None):
    token = token or str(uuid.uuid4())
    return action(world, INTO_POOL, instance_id, token, "Warmed:Pending:Wait", event_id)


def out_of_pool(world, instance_id: str, token: str | None = None, event_id=None):
    token = token or str(uuid.uuid4())
    return action(world, OUT_OF_POOL, instance_id, token, "Pending:Wait", event_id)


def launch_results(world, instance_id: str) -> list[str]:
    return [r for i, hook, r in world.fakes.hook_results if i == instance_id and hook == "swarmkeeper-launch"]


def join_out_of_the_pool(world, instance_id: str) -> str:
    """The join a launch out of the pool started, driven to Ready; returns the node id."""
    world.settle()
    boot = [s for s in world.sent("bootstrap-node") if s.instance_id == instance_id][-1]
    node_id = world.bootstrap_succeeds(boot)
    world.settle()
    world.verify_succeeds(world.commands_for("verify-node", node_id)[-1])
    return node_id


@pytest.fixture
def pooled(world, manager):
    """A worker launched into the warm pool (its launch action continued), now stopped there."""
    (w,) = world.workers(1)
    world.fakes.pending_lifecycle.discard(w)
    assert into_pool(world, w)["outcome"] == "complete"
    world.ec2.stop_instances(InstanceIds=[w])
    where(world, w, "Warmed:Stopped")
    return w


def test_a_launch_into_the_warm_pool_is_continued_without_a_join(world, manager):
    # Given a worker Auto Scaling launches into the warm pool (Warmed:Pending:Wait)
    (w,) = world.workers(1)
    world.fakes.pending_lifecycle.discard(w)
    token = str(uuid.uuid4())

    # When its launch action (Origin EC2, Destination WarmPool) arrives
    result = into_pool(world, w, token)

    # Then that action, by its token, is continued, and nothing of a join is started
    assert result["outcome"] == "complete" and "warm pool" in result["reason"]
    assert launch_results(world, w) == ["CONTINUE"]
    (call,) = world.fakes.calls_to("CompleteLifecycleAction")[-1:]
    assert call["LifecycleActionToken"] == token and call["InstanceId"] == w
    assert world.op(w) is None and [s for s in world.sent() if s.instance_id == w] == []
    assert [e for e in world.published() if e["instanceId"] == w] == []


@pytest.mark.parametrize("lifecycle_state", ["Warmed:Pending", "Warmed:Pending:Wait", "Warmed:Running"])
def test_the_running_event_of_an_instance_in_the_pool_does_not_join_it(world, manager, lifecycle_state):
    # Given a worker launched into the warm pool
    (w,) = world.workers(1)
    world.fakes.pending_lifecycle.discard(w)
    where(world, w, lifecycle_state)

    # When its running event arrives (the `running` fallback)
    result = world.running(w)

    # Then Auto Scaling's lifecycle state says where it is, and it is not joined
    assert result["outcome"] == "ignore" and "warm pool" in result["reason"]
    assert world.op(w) is None and [s for s in world.sent() if s.instance_id == w] == []


@pytest.mark.parametrize("state", ["stopping", "stopped"])
def test_an_instance_stopping_in_the_pool_changes_nothing(world, pooled, state):
    # Given a worker waiting in the warm pool, When its stopping / stopped state changes arrive
    before = len(world.fakes.calls)
    result = world.state_change(pooled, state)

    # Then they are ignored: no op, no command, nothing published, no AWS call but the idempotency record
    assert result["outcome"] == "ignore"
    assert (
        world.op(pooled) is None
        and world.sent("remove-node") == []
        and world.published("Dead Node Removed") == []
    )
    assert {op for _, op, _ in world.fakes.calls[before:]} <= {"PutItem", "UpdateItem", "GetItem"}


def test_a_launch_out_of_the_warm_pool_joins_the_instance(world, pooled):
    # Given a worker waiting in the warm pool; When a launch brings it out (Origin WarmPool)
    world.ec2.start_instances(InstanceIds=[pooled])
    result = out_of_pool(world, pooled)

    # Then it joins: bootstrap-node, verify-node, then CONTINUE, tagged with its node id
    assert result["outcome"] in ("start", "wait") or result["outcome"] == "bootstrap"
    node_id = join_out_of_the_pool(world, pooled)
    assert launch_results(world, pooled) == ["CONTINUE", "CONTINUE"]
    assert world.tags(pooled)["swarmkeeper:node-id"] == node_id
    assert world.published("Node Joined")[-1]["instanceId"] == pooled


def test_a_late_launch_into_the_pool_does_not_continue_the_launch_out_of_it(world, pooled):
    # Given a worker coming out of the pool, its join under way (the launch action of token B waits)
    world.ec2.start_instances(InstanceIds=[pooled])
    out_of_pool(world, pooled, token="bbbbbbbb-0000-4000-8000-000000000002")
    assert launch_results(world, pooled) == ["CONTINUE"]  # the launch into the pool, earlier

    # When a late duplicate of its launch into the pool (token A) arrives
    late = load_event(
        INTO_POOL, EC2InstanceId=pooled, LifecycleActionToken="aaaaaaaa-0000-4000-8000-000000000001"
    )
    result = world.invoke("lifecycle_action", late)

    # Then its CONTINUE names token A: the action of token B still waits for the join
    assert result["outcome"] == "complete"
    assert launch_results(world, pooled) == ["CONTINUE"]
    assert pooled in world.fakes.pending_lifecycle
    join_out_of_the_pool(world, pooled)
    assert launch_results(world, pooled) == ["CONTINUE", "CONTINUE"]


def test_a_node_scaled_in_to_the_pool_leaves_the_swarm_and_rejoins_cleanly(world, manager):
    # Given a joined worker
    (w,) = world.workers(1)
    old_node = world.join(w)
    world.settle()

    # When scale-in returns it to the warm pool (terminate action, Destination WarmPool)
    world.fakes.pending_lifecycle.add(w)
    scale_in = load_event(SCALE_IN_TO_POOL, EC2InstanceId=w, AutoScalingGroupName=WORKERS)
    where(world, w, "Warmed:Pending:Wait")
    assert world.invoke("lifecycle_action", scale_in)["outcome"] == "drain"

    # Then it leaves the swarm as on any scale-in (drain, leave, remove, then CONTINUE), and is then
    # no node any more: no node-id tag, no node record
    drain_done(world, old_node)
    left(world, w)
    removed(world, old_node)
    assert world.terminate_results(w) == ["CONTINUE"]
    assert world.published("Node Removed")[-1]["nodeId"] == old_node
    assert not world.tags(w).get("swarmkeeper:node-id") and w not in world.nodes()

    # When it is stopped in the pool, then nothing happens (it is no node to remove)
    world.ec2.stop_instances(InstanceIds=[w])
    where(world, w, "Warmed:Stopped")
    for state in ("stopping", "stopped"):
        assert world.state_change(w, state)["outcome"] == "ignore"
    assert world.published("Dead Node Removed") == []

    # When a launch brings it out of the pool, then it joins again, as a new node
    world.ec2.start_instances(InstanceIds=[w])
    started = out_of_pool(world, w)
    assert started["outcome"] != "ignore", started
    new_node = join_out_of_the_pool(world, w)
    assert new_node != old_node and world.tags(w)["swarmkeeper:node-id"] == new_node
    assert launch_results(world, w)[-1] == "CONTINUE" and world.nodes()[w]["node_id"] == new_node
    joined = [e for e in world.published("Node Joined") if e["instanceId"] == w]
    assert [e["nodeId"] for e in joined] == [old_node, new_node]

    # And a late duplicate of the scale-in that sent it into the pool drains nothing
    late = dict(scale_in, id=str(uuid.uuid4()))
    assert world.invoke("lifecycle_action", late)["outcome"] == "ignore"
    assert world.commands_for("drain-node", new_node) == []


def test_a_duplicate_launch_out_of_the_pool_is_ignored_after_its_join(world, pooled):
    # Given a worker that came out of the pool and joined
    world.ec2.start_instances(InstanceIds=[pooled])
    token = str(uuid.uuid4())
    out_of_pool(world, pooled, token)
    join_out_of_the_pool(world, pooled)
    boots = len(world.sent("bootstrap-node"))

    # When the same launch action's event comes again (a new event id, the same token)
    event = load_event(OUT_OF_POOL, EC2InstanceId=pooled, LifecycleActionToken=token)
    result = world.invoke("lifecycle_action", event)

    # Then it is recognised: no second join
    assert result["outcome"] == "ignore" and len(world.sent("bootstrap-node")) == boots


@pytest.mark.parametrize("state", ["shutting-down", "terminated"])
def test_a_former_node_terminated_from_the_pool_is_no_dead_node(world, manager, state):
    # Given a worker that was a node, scaled in to the warm pool (removed from the swarm there)
    (w,) = world.workers(1)
    node_id = world.join(w)
    world.settle()
    world.fakes.pending_lifecycle.add(w)
    world.invoke("lifecycle_action", load_event(SCALE_IN_TO_POOL, EC2InstanceId=w))
    drain_done(world, node_id)
    left(world, w)
    removed(world, node_id)
    removals = len(world.sent("remove-node"))

    # When the pool lets it go (shutting-down / terminated)
    world.state_change(w, state)

    # Then no removal is attempted and no Dead Node Removed is told
    assert len(world.sent("remove-node")) == removals and world.published("Dead Node Removed") == []


def test_a_node_back_from_the_pool_without_its_leave_joins_again(world, manager):
    # Given a joined worker that went through the pool while its scale-in event was lost: its node-id
    # tag and its closed join are still there
    (w,) = world.workers(1)
    node_id = world.join(w)
    world.settle()
    world.ec2.stop_instances(InstanceIds=[w])
    world.ec2.start_instances(InstanceIds=[w])

    # When a launch brings it out of the pool
    result = out_of_pool(world, w)

    # Then the join runs again (bootstrap-node finds the node a member, verify-node proves it Ready)
    # rather than the launch waiting out its hook as "already joined"
    assert result["outcome"] != "ignore", result
    assert join_out_of_the_pool(world, w) and launch_results(world, w)[-1] == "CONTINUE"
    assert len([s for s in world.sent("bootstrap-node") if s.instance_id == w]) == 2
    assert world.tags(w)["swarmkeeper:node-id"] != node_id  # the fake bootstrap reports a new id
