"""Node labels at join: the instance's Availability Zone, instance type, Spot or on-demand and role,
read from EC2 and handed to verify-node, which a manager runs before the node is reported joined.
Given / When / Then."""

from __future__ import annotations

from dataclasses import replace

import pytest
from join_world import new_session
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from swarmkeeper.adapters.instances import Ec2Instances
from swarmkeeper.domain.labels import (
    AZ_PATTERN,
    INSTANCE_TYPE_PATTERN,
    NodeLabels,
    UnlabelledNode,
    node_labels,
)
from swarmkeeper.domain.models import InstanceFacts, Role

FACTS = InstanceFacts(
    "i-0aaaaaaaaaaaaaaa1", "running", availability_zone="eu-west-1b", instance_type="t4g.small"
)


# --- the labels, from the facts --------------------------------------------------------------------


@pytest.mark.parametrize(("spot", "lifecycle"), [(True, "spot"), (False, "on-demand")])
@pytest.mark.parametrize("role", list(Role))
def test_labels_say_where_what_which_market_and_role(spot, lifecycle, role):
    labels = node_labels(replace(FACTS, spot=spot), role)
    assert labels == NodeLabels("eu-west-1b", "t4g.small", lifecycle, role)
    assert labels.labels() == {
        "swarmkeeper.az": "eu-west-1b",
        "swarmkeeper.instance-type": "t4g.small",
        "swarmkeeper.lifecycle": lifecycle,
        "swarmkeeper.role": str(role),
    }
    assert labels.parameters() == {
        "AvailabilityZone": "eu-west-1b",
        "InstanceType": "t4g.small",
        "Lifecycle": lifecycle,
        "Role": str(role),
    }


@pytest.mark.parametrize(
    ("facts", "why"),
    [
        (None, "does not describe"),
        (replace(FACTS, availability_zone=None), "no Availability Zone"),
        (replace(FACTS, instance_type=None), "no instance type"),
        # what a value may never be: it is set by a shell on a manager
        (replace(FACTS, availability_zone="eu-west-1a; docker swarm leave --force"), "no Availability Zone"),
        (replace(FACTS, availability_zone="eu-west-1a'$(reboot)'"), "no Availability Zone"),
        (replace(FACTS, availability_zone="eu-west-1"), "no Availability Zone"),  # a region
        (replace(FACTS, instance_type="t4g.small`reboot`"), "no instance type"),
        (replace(FACTS, instance_type="t4g.small swarmkeeper.role=manager"), "no instance type"),
        (replace(FACTS, instance_type="$(id).large"), "no instance type"),
        (replace(FACTS, instance_type="t4g.small\nreboot"), "no instance type"),
        (replace(FACTS, instance_type="t4g"), "no instance type"),
    ],
)
def test_no_labels_from_a_zone_or_a_type_that_is_not_one(facts, why):
    with pytest.raises(UnlabelledNode, match=why):
        node_labels(facts, Role.WORKER)


@pytest.mark.parametrize(
    ("zone", "instance_type"),
    [
        ("us-west-2-lax-1a", "m7i-flex.large"),
        ("us-gov-west-1b", "u-6tb1.metal"),
        ("ap-southeast-4c", "t3.nano"),
    ],
)
def test_labels_from_every_kind_of_zone_and_type(zone, instance_type):
    labels = node_labels(replace(FACTS, availability_zone=zone, instance_type=instance_type), Role.MANAGER)
    assert (labels.availability_zone, labels.instance_type) == (zone, instance_type)


def test_the_document_allows_exactly_the_domains_patterns():
    # verify-node's allowedPattern is the second check of the same values: the same patterns
    from infra.documents import PARAMETERS

    patterns = {p.name: p.allowed_pattern for p in PARAMETERS["verify-node"]}
    assert patterns["AvailabilityZone"] == f"^{AZ_PATTERN}$"
    assert patterns["InstanceType"] == f"^{INSTANCE_TYPE_PATTERN}$"


# --- EC2 ---------------------------------------------------------------------------------------------


def test_describe_reads_zone_type_and_spot():
    with mock_aws():
        ec2 = new_session().client("ec2")
        launched = {}
        for market in ("spot", "on-demand"):
            extra = {"InstanceMarketOptions": {"MarketType": "spot"}} if market == "spot" else {}
            (raw,) = ec2.run_instances(
                ImageId="ami-12c6146b",
                MinCount=1,
                MaxCount=1,
                InstanceType="m7i-flex.large",
                Placement={"AvailabilityZone": f"{ec2.meta.region_name}b"},
                **extra,
            )["Instances"]
            launched[market] = raw["InstanceId"]
        instances = Ec2Instances(ec2)

        spot, on_demand = instances.describe(launched["spot"]), instances.describe(launched["on-demand"])

        assert spot.spot is True and on_demand.spot is False
        for facts in (spot, on_demand):
            assert facts.availability_zone == f"{ec2.meta.region_name}b"
            assert facts.instance_type == "m7i-flex.large"


# --- the join flow -------------------------------------------------------------------------------------


@pytest.fixture
def manager(world):
    """A manager that joined: it verifies the workers."""
    instance_id = world.managers(1)[0]
    world.join(instance_id)
    return instance_id


def _instance(world, instance_id: str) -> dict:
    return world.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def _bootstrapped_worker(world) -> tuple[str, str]:
    (worker,) = world.workers(1)
    world.lifecycle(worker)
    world.settle()
    boot = [s for s in world.sent("bootstrap-node") if s.instance_id == worker][-1]
    return worker, world.bootstrap_succeeds(boot)


@pytest.mark.parametrize("spot", [True, False])
def test_a_joining_worker_is_labelled_by_the_manager_that_verifies_it(world, manager, spot):
    # Given a worker instance, Spot or not, that bootstrap-node joined to the swarm
    (worker,) = world.workers(1)
    if spot:
        ec2_backends[DEFAULT_ACCOUNT_ID][world.ec2.meta.region_name].get_instance(worker).lifecycle = "spot"
    world.lifecycle(worker)
    world.settle()
    boot = [s for s in world.sent("bootstrap-node") if s.instance_id == worker][-1]
    node_id = world.bootstrap_succeeds(boot)

    # Then verify-node goes to the manager with the worker's labels, before anything says it joined
    (verify,) = world.commands_for("verify-node", node_id)
    raw = _instance(world, worker)
    assert verify.instance_id == manager
    assert verify.parameters == {
        "NodeId": node_id,
        "Role": "worker",
        "AvailabilityZone": raw["Placement"]["AvailabilityZone"],
        "InstanceType": raw["InstanceType"],
        "Lifecycle": "spot" if spot else "on-demand",
        "TimeoutSeconds": "60",
    }
    assert [e for e in world.published("Node Joined") if e["instanceId"] == worker] == []

    # When verify-node (labels set, node ready) succeeds, then the worker joined
    world.verify_succeeds(verify)
    assert world.fakes.lifecycle_results[worker] == ["CONTINUE"]
    assert [e["instanceId"] for e in world.published("Node Joined")][-1] == worker


def test_a_verify_that_fails_to_label_fails_the_join_with_its_reason(world, manager):
    # Given a bootstrapped worker whose verify-node was sent
    worker, node_id = _bootstrapped_worker(world)
    (verify,) = world.commands_for("verify-node", node_id)

    # When verify-node fails because the labels could not be set
    world.finish(verify, status="Failed", stderr="verify-node: cannot label node x: rpc error\n")

    # Then the join fails with that reason, and nothing says it joined
    assert world.fakes.lifecycle_results[worker] == ["ABANDON"]
    failed = world.published("Node Join Failed")[-1]
    assert failed["instanceId"] == worker and "cannot label node" in failed["reason"]
    assert [e for e in world.published("Node Joined") if e["instanceId"] == worker] == []


@pytest.mark.parametrize(
    ("zone", "instance_type", "why"),
    [
        (None, "t4g.small", "no Availability Zone"),
        ("eu-west-1a; docker swarm leave --force", "t4g.small", "no Availability Zone"),
        ("eu-west-1a", "t4g.small$(reboot)", "no instance type"),
    ],
    ids=["no zone", "shell in the zone", "shell in the type"],
)
def test_a_node_ec2_gives_no_label_values_for_is_never_verified_and_its_join_fails(
    world, manager, monkeypatch, zone, instance_type, why
):
    # Given EC2 describing the joining worker without a zone, or with shell in its zone or type
    describe = Ec2Instances.describe

    def described(self, instance_id):
        facts = describe(self, instance_id)
        if facts is None or facts.instance_id == manager:
            return facts
        return replace(facts, availability_zone=zone, instance_type=instance_type)

    monkeypatch.setattr(Ec2Instances, "describe", described)

    # When its bootstrap succeeds
    worker, node_id = _bootstrapped_worker(world)

    # Then no verify-node is sent (no value reaches the manager's shell), the join fails saying why,
    # the instance is abandoned, and nothing says it joined
    assert world.commands_for("verify-node", node_id) == []
    failed = world.published("Node Join Failed")[-1]
    assert failed["instanceId"] == worker
    assert f"cannot label node {node_id}" in failed["reason"] and why in failed["reason"]
    assert world.fakes.lifecycle_results[worker] == ["ABANDON"]
    assert [e for e in world.published("Node Joined") if e["instanceId"] == worker] == []
    assert world.op(worker)["stage"] == "failed"


# --- what bootstrap-node is told about logs and images ---------------------------------------------------

REGISTRY = f"{DEFAULT_ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com"


@pytest.fixture
def stack_env(world, monkeypatch):
    """The two variables as the stack sets them with containerLogs on, in the settings the launch
    handler read at its cold start."""
    fn = world.handlers["lifecycle_action"].fn
    with_logs = replace(
        fn.settings, container_log_group="/swarmkeeper/demo/containers", ecr_registry=REGISTRY
    )
    monkeypatch.setattr(fn, "settings", with_logs)


def test_bootstrap_is_told_the_log_group_and_the_registry(world, stack_env):
    # Given the stack's log group and registry / When a manager's launch action arrives
    (m,) = world.managers(1)
    world.lifecycle(m)
    # Then bootstrap-node gets both
    (boot,) = world.sent("bootstrap-node")
    assert boot.parameters["ContainerLogGroup"] == "/swarmkeeper/demo/containers"
    assert boot.parameters["EcrRegistry"] == REGISTRY


def test_without_them_bootstrap_keeps_the_documents_defaults(world):
    # Given containerLogs off (no log group) / When a manager's launch action arrives
    (m,) = world.managers(1)
    world.lifecycle(m)
    # Then neither parameter is sent: the document's empty defaults (json-file, no helper) apply
    (boot,) = world.sent("bootstrap-node")
    assert "ContainerLogGroup" not in boot.parameters and "EcrRegistry" not in boot.parameters
