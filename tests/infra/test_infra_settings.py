"""ClusterSettings: cdk.json context (and `-c` strings) parsed into one frozen, validated object."""

from __future__ import annotations

import dataclasses

import pytest
from aws_cdk import App

import app as cdk_app
from infra.settings import ClusterSettings, SettingsError

GOOD_VPC = {"vpcId": "vpc-0a1b2c3d4e5f60718", "subnetIds": ["subnet-0aaaaaaaaaaaaaaa1"]}


def test_cdk_json_context_holds_the_documented_defaults():
    # Given the context shipped in cdk.json
    context = cdk_app.cdk_json_context()
    # When it is parsed
    settings = ClusterSettings.from_mapping(context)
    # Then it equals the dataclass defaults (cdk.json and code cannot drift) for cluster "demo"
    assert settings == ClusterSettings()
    assert settings.cluster_name == "demo"
    assert settings.manager_count == 3
    assert settings.lambda_architecture == "arm64"
    assert settings.rebalance_drain_workers is True
    assert settings.container_logs is True
    assert settings.uses_existing_vpc is False


def test_settings_are_frozen():
    # Given parsed settings / When one is reassigned / Then it refuses
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClusterSettings().manager_count = 5  # type: ignore[misc]


def test_command_line_strings_are_parsed_like_json_values():
    # Given context values as `cdk -c key=value` delivers them (always strings)
    app = App(
        context={
            "clusterName": "prod-eu",
            "managerCount": "5",
            "workerSpot": "true",
            "workerMaxSize": "20",
            "vpcId": "vpc-0a1b2c3d4e5f60718",
            "subnetIds": "subnet-0aaaaaaaaaaaaaaa1, subnet-0bbbbbbbbbbbbbbb2",
            "loadBalancerSubnetIds": "subnet-0ddddddddddddddd4",
            "rebalanceDrainWorkers": "False",
            "containerLogs": "false",
            "loadBalancerDeregistrationSeconds": "45",
        }
    )
    # When read from the construct tree
    settings = ClusterSettings.from_context(app.node)
    # Then the types are right
    assert settings.cluster_name == "prod-eu"
    assert settings.manager_count == 5
    assert settings.worker_spot is True
    assert settings.worker_max_size == 20
    assert settings.subnet_ids == ("subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2")
    assert settings.rebalance_drain_workers is False
    assert settings.container_logs is False
    assert settings.load_balancer_subnet_ids == ("subnet-0ddddddddddddddd4",)
    assert settings.load_balancer_deregistration_seconds == 45


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"clusterName": "Demo"}, ["'clusterName' = 'Demo'", "lowercase"]),
        ({"clusterName": "1demo"}, ["'clusterName' = '1demo'", "a letter"]),
        ({"clusterName": "a" * 32}, ["'clusterName'", "up to 30"]),
        ({"clusterName": "demo_1"}, ["'clusterName' = 'demo_1'"]),
        ({"managerCount": 4}, ["'managerCount' = 4", "quorum", "3 of 4", "tolerate 1 failure,"]),
        ({"managerCount": "2"}, ["'managerCount' = '2'", "quorum", "no more than 1 managers"]),
        ({"managerCount": 9}, ["'managerCount' = 9", "1, 3, 5, 7"]),
        ({"managerCount": 0}, ["'managerCount' = 0", "1, 3, 5, 7"]),
        ({"managerCount": "three"}, ["'managerCount' = 'three'", "whole number"]),
        ({"managerCount": True}, ["'managerCount' = True", "boolean"]),
        ({"managerCount": 3.5}, ["'managerCount' = 3.5", "whole number"]),
        ({"workerMinSize": 3, "workerDesiredCapacity": 2}, ["workerMinSize <= workerDesiredCapacity"]),
        (
            {"workerDesiredCapacity": 11, "workerMaxSize": 10},
            ["'workerDesiredCapacity' = 11", "<= workerMaxSize"],
        ),
        ({"workerMinSize": -1}, ["'workerMinSize' = -1", "between 0 and 500"]),
        ({"workerSpot": "yes"}, ["'workerSpot' = 'yes'", "true or false"]),
        ({"workerSpot": 1}, ["'workerSpot' = 1", "true or false"]),
        ({"vpcId": "vpc-0a1b2c3d4e5f60718"}, ["'vpcId'", "'subnetIds'", "both"]),
        ({"subnetIds": ["subnet-0aaaaaaaaaaaaaaa1"]}, ["'vpcId' = None", "both"]),
        ({**GOOD_VPC, "vpcId": "vpc-xyz"}, ["'vpcId' = 'vpc-xyz'", "VPC id"]),
        ({**GOOD_VPC, "subnetIds": ["sub-1"]}, ["'subnetIds'", "'sub-1' is not a subnet id"]),
        ({**GOOD_VPC, "subnetIds": []}, ["'subnetIds'"]),
        ({"amiId": "ami-nope"}, ["'amiId' = 'ami-nope'", "AMI id"]),
        (
            {"amiId": "ami-0123456789abcdef0", "workerInstanceType": "m7i.large"},
            ["'amiId'", "different CPU architectures"],
        ),
        ({"managerInstanceType": "t4g"}, ["'managerInstanceType' = 't4g'", "instance type"]),
        ({"lambdaArchitecture": "arm"}, ["'lambdaArchitecture' = 'arm'", "arm64, x86_64"]),
        ({"logRetentionDays": 10}, ["'logRetentionDays' = 10", "one of 1, 3, 5"]),
        ({"logLevel": "LOUD"}, ["'logLevel' = 'LOUD'", "DEBUG, INFO"]),
        ({"tokenRotationDays": 0}, ["'tokenRotationDays' = 0", "between 1 and 365"]),
        ({"reconcileMinutes": "5m"}, ["'reconcileMinutes' = '5m'", "whole number"]),
        ({"agentWaitSeconds": 5}, ["'agentWaitSeconds' = 5", "between 30 and 3600"]),
        ({"drainTimeoutSeconds": 7200}, ["'drainTimeoutSeconds' = 7200", "between 0 and 3600"]),
        ({"natGateways": 0}, ["'natGateways' = 0", "between 1 and 3"]),
        ({"dockerVersion": "latest"}, ["'dockerVersion' = 'latest'", "Docker version"]),
        ({"rebalanceDrainWorkers": "maybe"}, ["'rebalanceDrainWorkers' = 'maybe'", "true or false"]),
        ({"stackVersionDays": 0}, ["'stackVersionDays' = 0", "between 1 and 3650"]),
        ({"containerLogs": "off"}, ["'containerLogs' = 'off'", "true or false"]),
        ({"containerLogs": 1}, ["'containerLogs' = 1", "true or false"]),
    ],
)
def test_bad_values_are_rejected_with_the_key_and_the_value(context, expected):
    # Given a context with one bad value
    # When it is parsed
    with pytest.raises(SettingsError) as raised:
        ClusterSettings.from_mapping(context)
    # Then the message names the key, the value and what is wrong
    for fragment in expected:
        assert fragment in str(raised.value)


def test_every_bad_value_is_reported_at_once():
    # Given two bad values / When parsed / Then both are in the one error
    with pytest.raises(SettingsError) as raised:
        ClusterSettings.from_mapping({"managerCount": 4, "clusterName": "X"})
    assert "'managerCount'" in str(raised.value)
    assert "'clusterName'" in str(raised.value)


def test_hook_timeouts_cover_agent_wait_and_drain():
    # Given long waits / When settings derive the hook heartbeats / Then they exceed the waits
    settings = ClusterSettings.from_mapping({"agentWaitSeconds": 1200, "drainTimeoutSeconds": 1800})
    assert settings.launch_heartbeat_seconds == 1200 + 1080 + 900 + 120
    assert settings.terminate_heartbeat_seconds == 2100
    # and the defaults: a join may wait out a crashed init-lock holder; a drain has 15 minutes
    assert ClusterSettings().launch_heartbeat_seconds == 2400
    assert ClusterSettings().terminate_heartbeat_seconds == 900
