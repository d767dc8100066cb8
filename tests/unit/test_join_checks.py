"""What a join takes as proof, through the real handlers: verify-node must see the node Ready in the
role the instance's group gives it, and bootstrap-node must report that role; anything else fails the
join (ABANDON, Node Join Failed) and nothing marks the instance joined. Given / When / Then."""

from __future__ import annotations

import pytest


def joining(world, role: str) -> str:
    (instance_id,) = world.workers(1) if role == "worker" else world.managers(1)
    world.lifecycle(instance_id)
    world.settle()
    return instance_id


def assert_failed_not_joined(world, instance_id: str, reason: str) -> None:
    assert world.fakes.lifecycle_results[instance_id] == ["ABANDON"]
    failed = world.published("Node Join Failed")[-1]
    assert failed["instanceId"] == instance_id and reason in failed["reason"]
    assert "swarmkeeper:node-id" not in world.tags(instance_id)
    assert instance_id not in world.nodes() and world.op(instance_id)["stage"] == "failed"
    assert [e for e in world.published("Node Joined") if e["instanceId"] == instance_id] == []


OTHER_NODE = "zzzzzzzzzzzzzzzzzzzzzzzz9"


@pytest.mark.parametrize("role", ["worker", "manager"])
@pytest.mark.parametrize(
    "answer",
    [
        "node-id={node} state=ready role={other}",  # Ready, but in the other role
        "node-id={node} state=down role={role}",
        "node-id={node} state=unknown role={role}",
        f"node-id={OTHER_NODE} state=ready role={{role}}",  # another node
        "node-id={node} state=ready",  # no role said
        "",
    ],
)
def test_verify_node_accepts_only_a_ready_node_in_the_expected_role(world, manager, role, answer):
    # Given an instance bootstrapped into the swarm, verify-node sent for its node
    instance_id = joining(world, role)
    boot = [s for s in world.sent("bootstrap-node") if s.instance_id == instance_id][-1]
    node_id = world.bootstrap_succeeds(boot)
    (verify,) = world.commands_for("verify-node", node_id)
    assert verify.parameters["Role"] == role

    # When verify-node answers with anything but "this node, ready, in this role"
    other = "manager" if role == "worker" else "worker"
    world.finish(verify, stdout=answer.format(node=node_id, role=role, other=other) + "\n")

    # Then the join fails and the instance is not marked joined
    assert_failed_not_joined(world, instance_id, "verify-node saw")


@pytest.mark.parametrize("role", ["worker", "manager"])
def test_verify_node_seeing_the_node_ready_in_its_role_joins_it(world, manager, role):
    # Given an instance bootstrapped into the swarm
    instance_id = joining(world, role)
    boot = [s for s in world.sent("bootstrap-node") if s.instance_id == instance_id][-1]
    node_id = world.bootstrap_succeeds(boot)
    (verify,) = world.commands_for("verify-node", node_id)

    # When verify-node sees it ready in the expected role
    world.finish(verify, stdout=f"node-id={node_id} state=ready role={role}\n")

    # Then it joined: tagged, recorded, CONTINUE
    assert world.fakes.lifecycle_results[instance_id] == ["CONTINUE"]
    assert world.tags(instance_id)["swarmkeeper:node-id"] == node_id
    assert world.nodes()[instance_id]["role"] == role


@pytest.mark.parametrize(("role", "reported"), [("worker", "manager"), ("manager", "worker")])
def test_a_bootstrap_that_reports_the_wrong_role_fails_the_join(world, manager, role, reported):
    # Given an instance whose group makes it a {role}, being bootstrapped
    instance_id = joining(world, role)
    boot = [s for s in world.sent("bootstrap-node") if s.instance_id == instance_id][-1]
    assert boot.parameters["Role"] == role
    node_id = "abcdefghijklmnopqrstuvwx2"

    # When bootstrap-node succeeds but says the node joined in the other role
    world.finish(boot, stdout=f"node-id={node_id} role={reported} cluster-id=swarm00000000000000000001\n")

    # Then the join fails, no verify-node is sent for it, and it is not marked joined
    assert_failed_not_joined(world, instance_id, f"joined as {reported}, expected {role}")
    assert world.commands_for("verify-node", node_id) == []
