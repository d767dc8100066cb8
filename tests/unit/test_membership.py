"""Membership comes from the stack's two Auto Scaling groups only: an instance is a manager of the
cluster because Auto Scaling put it in the manager group (its ``aws:autoscaling:groupName`` tag, which
no principal can set), never because someone tagged it ``swarmkeeper:cluster`` / ``swarmkeeper:role``.
Handler-level, Given / When / Then."""

from __future__ import annotations

import pytest
from join_world import CLUSTER, MANAGERS, WORKERS

from swarmkeeper.domain.models import ClusterIdentity, Role

IDENTITY = ClusterIdentity(CLUSTER, MANAGERS, WORKERS)


def outsider(world, **tags: str) -> str:
    """An instance outside both groups wearing the cluster's own tags (anyone with CreateTags can)."""
    all_tags = {"swarmkeeper:cluster": CLUSTER, "swarmkeeper:role": "manager", **tags}
    (raw,) = world.ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}
        ],
    )["Instances"]
    return raw["InstanceId"]


@pytest.mark.parametrize(
    ("tags", "role"),
    [
        ({"aws:autoscaling:groupName": MANAGERS}, Role.MANAGER),
        ({"aws:autoscaling:groupName": WORKERS}, Role.WORKER),
        ({"aws:autoscaling:groupName": WORKERS, "swarmkeeper:role": "manager"}, Role.WORKER),
        ({"swarmkeeper:cluster": CLUSTER, "swarmkeeper:role": "manager"}, None),
        ({"aws:autoscaling:groupName": f"{MANAGERS}-x", "swarmkeeper:cluster": CLUSTER}, None),
        ({"aws:autoscaling:groupName": MANAGERS.upper()}, None),
        ({}, None),
    ],
)
def test_role_is_the_group_the_instance_is_in(tags, role):
    # Given an instance's tags, When its role is asked, Then only the group tag (matched whole) counts
    assert IDENTITY.role_of(tags) is role


def test_running_fallback_does_not_join_an_instance_outside_the_groups(world):
    # Given an instance outside both groups tagged as a manager of this cluster
    intruder = outsider(world)

    # When its running event arrives
    result = world.running(intruder)

    # Then it is ignored: no join, no command, nothing published
    assert result["outcome"] == "ignore" and "not a member" in result["reason"]
    assert world.sent() == [] and world.published() == [] and world.op(intruder) is None


@pytest.mark.parametrize("state", ["shutting-down", "terminated"])
def test_an_instance_outside_the_groups_is_never_removed_as_a_dead_node(world, state):
    # Given a joined manager, and an outsider tagged with the cluster's tags and that manager's node id
    (m,) = world.managers(1)
    node_id = world.join(m)
    intruder = outsider(world, **{"swarmkeeper:node-id": node_id})

    # When the outsider's state change arrives
    result = world.state_change(intruder, state)

    # Then nothing is removed: no remove-node or drain, no leave op, no event
    assert result["outcome"] == "ignore" and "not a known member" in result["reason"]
    assert world.sent("remove-node") == [] and world.sent("drain-node") == []
    assert world.op(intruder) is None and world.published("Dead Node Removed") == []


def test_reconcile_sends_commands_only_to_group_instances(world):
    # Given a joined manager, and an outsider claiming that manager's node id (launched later, so a
    # cluster-tag read would prefer it)
    (m,) = world.managers(1)
    node_id = world.join(m)
    intruder = outsider(world, **{"swarmkeeper:node-id": node_id})

    # When a reconcile pass saves its view, and the next pass starts
    world.reconcile_pass()
    world.clock.advance(600)
    world.reconcile_pass()

    # Then the instances were read by the groups' tag, the view maps the node to the real manager, and
    # no command ever went to the outsider
    (read,) = [c for c in world.fakes.calls_to("DescribeInstances") if c.get("Filters")][-1:]
    group_filter = {"Name": "tag:aws:autoscaling:groupName", "Values": [MANAGERS, WORKERS]}
    assert group_filter in read["Filters"] and not any("swarmkeeper" in f["Name"] for f in read["Filters"])
    view = next(i for i in world.items() if i["pk"] == "view#cluster")
    assert view["manager_instances"] == {node_id: m}
    assert [s.instance_id for s in world.sent("describe-swarm")] == [m, m]
    assert all(s.instance_id != intruder for s in world.sent())
