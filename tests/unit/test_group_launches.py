"""What a group is bringing into service, from DescribeAutoScalingGroups (botocore's Stubber: moto
puts every instance InService at once)."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber
from join_world import new_session

from swarmkeeper.adapters.lifecycle import LifecycleActions
from swarmkeeper.domain.models import GroupLaunches


def _group(desired: int, *states: str) -> dict:
    instances = [
        {
            "InstanceId": f"i-{n:017x}",
            "AvailabilityZone": "us-east-1a",
            "LifecycleState": state,
            "HealthStatus": "Healthy",
            "ProtectedFromScaleIn": False,
        }
        for n, state in enumerate(states, 1)
    ]
    return {
        "AutoScalingGroups": [
            {
                "AutoScalingGroupName": "swarmkeeper-demo-managers",
                "MinSize": 3,
                "MaxSize": 4,
                "DesiredCapacity": desired,
                "DefaultCooldown": 300,
                "AvailabilityZones": ["us-east-1a"],
                "HealthCheckType": "EC2",
                "CreatedTime": "2026-01-01T00:00:00Z",
                "Instances": instances,
            }
        ]
    }


@pytest.mark.parametrize(
    ("desired", "states", "expected"),
    [
        # two terminated without decrementing: both replacements launching, nothing owed
        (
            3,
            ("Terminating:Wait", "Terminating:Wait", "InService", "Pending:Wait", "Pending"),
            GroupLaunches(("i-00000000000000004", "i-00000000000000005"), 0),
        ),
        # a replacement abandoned, the next not launched yet: one owed
        (3, ("Terminating:Wait", "InService", "InService", "Terminating"), GroupLaunches((), 1)),
        # a scale-in (desired decremented) and a warm-pool instance: nothing coming
        (2, ("Terminating:Wait", "InService", "InService", "Warmed:Pending:Wait"), GroupLaunches((), 0)),
        (3, ("InService", "InService", "Pending:Proceed"), GroupLaunches(("i-00000000000000003",), 0)),
    ],
)
def test_launches_are_instances_on_their_way_in_and_capacity_still_to_launch(desired, states, expected):
    client = new_session().client("autoscaling", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response(
            "describe_auto_scaling_groups",
            _group(desired, *states),
            {"AutoScalingGroupNames": ["swarmkeeper-demo-managers"]},
        )
        got = LifecycleActions(client).launches("swarmkeeper-demo-managers")
    assert got == expected and bool(got) == bool(expected.launching or expected.owed)
