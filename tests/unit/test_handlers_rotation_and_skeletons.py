"""Token rotation end to end, and the exit-flow handlers on events they must ignore."""

from __future__ import annotations

import pytest
from join_world import load_event

from swarmkeeper.domain.errors import MalformedEvent


@pytest.fixture
def manager(world):
    (m,) = world.managers(1)
    node_id = world.join(m)
    return m, node_id


def test_scheduled_rotation_rotates_on_a_joined_manager_and_publishes(world, manager):
    # Given a cluster with a joined manager
    m, node_id = manager

    # When the schedule fires
    started = world.invoke("rotate_tokens", load_event("scheduled-event"))

    # Then rotate-tokens goes to that manager, with no token in its parameters
    assert started["outcome"] == "rotate"
    (rotate,) = world.sent("rotate-tokens")
    assert rotate.instance_id == m
    assert rotate.parameters == {"ParameterPrefix": "/swarmkeeper/demo", "KmsKeyId": "alias/swarmkeeper-demo",
                                 "Region": "us-east-1"}  # fmt: skip

    # When another request arrives while it runs, Then it is not started twice
    assert world.invoke("rotate_tokens", {"on": "demand"})["outcome"] == "ignore"

    # When the command succeeds, Then Join Tokens Rotated is published
    world.finish(rotate, stdout="rotated=worker,manager\n")
    (event,) = world.published("Join Tokens Rotated")
    assert event["instanceId"] == m and event["nodeId"] == node_id and event["role"] == "manager"

    # And a new rotation can start (on demand, any payload)
    assert world.invoke("rotate_tokens", {})["outcome"] == "rotate"


def test_failed_rotation_is_logged_and_not_published(world, manager):
    world.invoke("rotate_tokens", load_event("scheduled-event"))
    (rotate,) = world.sent("rotate-tokens")
    result = world.finish(rotate, status="Failed", stderr="rotate-tokens: put-parameter failed")
    assert result["outcome"] == "rotation-failed"
    assert world.published("Join Tokens Rotated") == []
    assert "token rotation failed" in world.output()


def test_rotation_without_a_cluster_does_nothing(world):
    assert world.invoke("rotate_tokens", load_event("scheduled-event"))["outcome"] == "ignore"
    assert world.sent() == []


def test_rotation_skips_a_manager_whose_agent_is_gone(world):
    managers = world.managers(2)
    for m in managers:
        world.join(m)
    world.fakes.unregistered_agents.add(managers[0])
    world.fakes.unregistered_agents.add(managers[1])
    assert world.invoke("rotate_tokens", {})["outcome"] == "ignore"
    world.fakes.unregistered_agents.discard(managers[1])
    assert world.invoke("rotate_tokens", {})["outcome"] == "rotate"
    assert world.sent("rotate-tokens")[-1].instance_id == managers[1]


@pytest.mark.parametrize(
    ("function", "fixture"),
    [
        ("interruption", "ec2-spot-instance-interruption-warning"),
        ("interruption", "ec2-instance-rebalance-recommendation"),
        ("reconcile", "scheduled-event"),
    ],
)
def test_exit_flow_handlers_without_a_cluster_parse_log_and_return(world, function, fixture):
    # Given no cluster at all (an unknown instance, no manager): the event is ignored, not retried
    handler = world._load(function)
    result = handler.lambda_handler(load_event(fixture), world.context)
    assert result["outcome"] == "ignore"
    assert world.sent() == [] and world.published() == []


@pytest.mark.parametrize("function", ["interruption", "alarm"])
def test_exit_flow_handlers_reject_malformed_events(world, function):
    handler = world._load(function)
    with pytest.raises(MalformedEvent):
        handler.lambda_handler({"id": "x", "detail-type": "Nope", "detail": {}}, world.context)
    assert "malformed event rejected" in world.output()


def test_exit_commands_not_sent_by_swarmkeeper_are_ignored(world, manager):
    event = load_event(
        "ec2-command-invocation-status-change-notification",
        **{"document-name": "swarmkeeper-demo-drain-node", "instance-id": manager[0]},
    )
    assert "exit flow" in world.invoke("command_status", event)["reason"]
    other = load_event(
        "ec2-command-invocation-status-change-notification", **{"document-name": "AWS-RunShellScript"}
    )
    assert "not one of cluster" in world.invoke("command_status", other)["reason"]
