"""EC2: what an instance is (state, tags, address, placement, type, Spot or not) and the node-id tag."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from swarmkeeper.domain.models import GROUP_TAG, NODE_ID_TAG, InstanceFacts

PAGE_SIZE = 1000  # DescribeInstances' largest page


class Ec2Instances:
    def __init__(self, ec2: Any):
        self._ec2 = ec2

    def describe(self, instance_id: str) -> InstanceFacts | None:
        """None when EC2 does not know the instance (gone, or never ours)."""
        try:
            reservations = self._ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except ClientError as err:
            if err.response["Error"]["Code"] in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            raise
        for reservation in reservations:
            for raw in reservation["Instances"]:
                return _facts(raw)
        return None

    def joined_managers(self, manager_group: str) -> list[InstanceFacts]:
        """Running instances of the manager group that carry a node-id tag (they have joined; a
        cleared tag, on an instance back from the warm pool, does not count)."""
        paginator = self._ec2.get_paginator("describe_instances")
        pages = paginator.paginate(
            Filters=[
                {"Name": f"tag:{GROUP_TAG}", "Values": [manager_group]},
                {"Name": "tag-key", "Values": [NODE_ID_TAG]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )
        facts = [_facts(raw) for page in pages for r in page["Reservations"] for raw in r["Instances"]]
        return [f for f in facts if f.node_id]

    def group_instances(self, groups: tuple[str, ...]) -> list[InstanceFacts]:
        """Every instance of the Auto Scaling ``groups`` (by their ``aws:autoscaling:groupName`` tag),
        whatever its state (terminated ones stay visible for about an hour): one paginated read, a
        page per 1,000 instances."""
        paginator = self._ec2.get_paginator("describe_instances")
        pages = paginator.paginate(
            Filters=[{"Name": f"tag:{GROUP_TAG}", "Values": list(groups)}],
            PaginationConfig={"PageSize": PAGE_SIZE},
        )
        return [_facts(raw) for page in pages for r in page["Reservations"] for raw in r["Instances"]]

    def tag_node_id(self, instance_id: str, node_id: str) -> None:
        self._ec2.create_tags(Resources=[instance_id], Tags=[{"Key": NODE_ID_TAG, "Value": node_id}])

    def clear_node_id(self, instance_id: str) -> None:
        """The instance is no node any more: its node-id tag is set empty (the control plane may
        write that one tag, and delete none)."""
        self.tag_node_id(instance_id, "")


def _facts(raw: dict[str, Any]) -> InstanceFacts:
    return InstanceFacts(
        instance_id=raw["InstanceId"],
        state=raw.get("State", {}).get("Name", "unknown"),
        tags={t["Key"]: t["Value"] for t in raw.get("Tags", [])},
        private_ip=raw.get("PrivateIpAddress") or None,
        launched_at=raw.get("LaunchTime"),
        availability_zone=raw.get("Placement", {}).get("AvailabilityZone") or None,
        instance_type=raw.get("InstanceType") or None,
        spot=raw.get("InstanceLifecycle") == "spot",
    )
