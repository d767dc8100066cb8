"""The control plane's role as synthesized: what it may read, send, tag and touch, and what it never may."""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest
from infra_iam import Statement, allowed, arn, key_allows, key_policy, role_id_for, statements_of_role
from infra_synth import REPO

from infra.documents import ACTIONS

ADAPTERS = REPO / "layers" / "swarmkeeper" / "python" / "swarmkeeper" / "adapters"
# The boto3 client each adapter keeps, by attribute name, and its IAM service prefix.
CLIENT_SERVICES = {
    "_asg": "autoscaling",
    "_autoscaling": "autoscaling",
    "_ddb": "dynamodb",
    "_ec2": "ec2",
    "_elb": "elbv2",
    "_events": "events",
    "_s3": "s3",
    "_sqs": "sqs",
    "_ssm": "ssm",
}
# The calls whose IAM action is not named after the API operation.
IAM_ACTIONS = {"s3:list_object_versions": "s3:ListBucketVersions"}
IAM_PREFIX = {"elbv2": "elasticloadbalancing"}  # services whose IAM prefix is not the client's name
GROUP_TAG = "ssm:resourceTag/aws:autoscaling:groupName"
INSTANCE = arn("ec2", "instance/i-0123456789abcdef0")
# What AmazonSSMReadOnlyAccess (or ReadOnlyAccess) would add if someone attached it to the role.
BROAD_READ = Statement(effect="Allow", actions=("ssm:Get*", "ssm:Describe*", "ssm:List*"), resources=("*",))


@pytest.fixture(scope="module")
def control(demo):
    return statements_of_role(demo.resources, role_id_for(demo.resources, "ControlPlaneRole"))


def _param(name):
    return arn("ssm", f"parameter{name}")


def _bucket(synth):
    return f"arn:aws:test:::{synth.output_bucket_id}"


def test_control_plane_reads_only_the_cluster_id_parameter(control):
    # Given the control-plane role
    # Then of the cluster's parameters it may read the cluster id only
    assert allowed(control, "ssm:GetParameter", _param("/swarmkeeper/demo/cluster-id"))
    for name in ("manager-addresses", "join-token/worker", "join-token/manager"):
        assert allowed(control, "ssm:GetParameter", _param(f"/swarmkeeper/demo/{name}")) == []
    # and it writes none
    assert allowed(control, "ssm:PutParameter", _param("/swarmkeeper/demo/cluster-id")) == []


@pytest.mark.parametrize(
    ("action", "parameter"),
    [
        ("ssm:GetParameter", "/swarmkeeper/demo/join-token/worker"),
        ("ssm:GetParameter", "/swarmkeeper/demo/join-token/manager"),
        ("ssm:GetParameters", "/swarmkeeper/demo/join-token/manager"),
        ("ssm:GetParameterHistory", "/swarmkeeper/demo/join-token/worker"),
        ("ssm:GetParameterHistory", "/swarmkeeper/demo/join-token/manager"),
        # a path at or above the tokens returns them
        ("ssm:GetParametersByPath", "/swarmkeeper/demo/join-token"),
        ("ssm:GetParametersByPath", "/swarmkeeper/demo"),
        ("ssm:GetParametersByPath", "/swarmkeeper"),
        ("ssm:GetParametersByPath", ""),
    ],
)
def test_the_deny_keeps_join_tokens_unreadable_even_under_a_broad_read_grant(control, action, parameter):
    # Given the role plus a grant to read every parameter of the account
    widened = [*control, BROAD_READ]
    # When it asks for a join token, or its history, or a path holding it
    # Then the explicit Deny refuses it
    assert allowed(widened, action, _param(parameter)) == []


def test_the_deny_covers_only_the_tokens(control):
    # Given the same widened role, the Deny does not reach other parameters read one by one
    widened = [*control, BROAD_READ]
    assert allowed(widened, "ssm:GetParameter", _param("/swarmkeeper/demo/cluster-id"))
    assert allowed(widened, "ssm:GetParameter", _param("/swarmkeeper/demo/manager-addresses"))


def test_control_plane_cannot_use_the_cluster_key_even_if_iam_allowed_it(demo, control):
    # Given the role has no KMS permission of its own
    assert not any(a.lower().startswith("kms:") for s in control for a in s.actions)
    # When some IAM policy granted it kms:* anyway, the key policy still allows it nothing but nothing
    (key_id,) = demo.of_type("AWS::KMS::Key")
    key = key_policy(demo.resources, key_id)
    role_arn = f"arn:aws:test:::{role_id_for(demo.resources, 'ControlPlaneRole')}"
    for token in ("worker", "manager"):
        context = {
            "aws:PrincipalArn": role_arn,
            "kms:ViaService": "ssm.us-east-1.amazonaws.com",
            "kms:EncryptionContext:PARAMETER_ARN": _param(f"/swarmkeeper/demo/join-token/{token}"),
        }
        for action in ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom"):
            assert key_allows(key, action, context) == []


def test_send_command_documents_are_this_stacks_but_never_the_association_only_ones(control):
    # Given the documents SendCommand may name
    send = [s for s in control if s.effect == "Allow" and "ssm:SendCommand" in s.actions]
    documents = {r for s in send for r in s.resources if ":document/" in r}
    # Then they are exactly this stack's documents without those State Manager alone runs
    only_associations = ("agent-ready", "refresh-registry-auth")
    assert documents == {
        arn("ssm", f"document/swarmkeeper-demo-{a}") for a in ACTIONS if a not in only_associations
    }
    for action in only_associations:
        assert allowed(control, "ssm:SendCommand", arn("ssm", f"document/swarmkeeper-demo-{action}")) == []
    # and AWS's or another cluster's documents are refused
    assert allowed(control, "ssm:SendCommand", arn("ssm", "document/AWS-RunShellScript")) == []
    assert allowed(control, "ssm:SendCommand", arn("ssm", "document/swarmkeeper-other-bootstrap-node")) == []
    # and no statement grants SendCommand on "*"
    assert all("*" not in s.resources for s in send)


@pytest.mark.parametrize("synth_name", ["demo", "variant"])
def test_send_command_reaches_only_instances_of_the_stacks_two_groups(request, synth_name):
    synth = request.getfixturevalue(synth_name)
    cluster = "demo" if synth_name == "demo" else "blue"
    control = statements_of_role(synth.resources, role_id_for(synth.resources, "ControlPlaneRole"))
    # Given instances launched by the manager and by the worker group (Auto Scaling tagged them)
    for group in (f"swarmkeeper-{cluster}-managers", f"swarmkeeper-{cluster}-workers"):
        # Then SendCommand may reach them
        assert allowed(control, "ssm:SendCommand", INSTANCE, {GROUP_TAG: group})
    # Given an instance outside both groups that carries the cluster and role tags (anyone who may
    # CreateTags can set those) / Then SendCommand is refused
    spoofed = {"ssm:resourceTag/swarmkeeper:cluster": cluster, "ssm:resourceTag/swarmkeeper:role": "manager"}
    assert allowed(control, "ssm:SendCommand", INSTANCE, spoofed) == []
    # and so it is for another stack's group and for an untagged instance
    assert allowed(control, "ssm:SendCommand", INSTANCE, {GROUP_TAG: f"swarmkeeper-{cluster}x-workers"}) == []
    assert allowed(control, "ssm:SendCommand", INSTANCE) == []


def test_create_tags_only_the_node_id_and_only_on_the_groups_instances(control):
    worker = {"aws:ResourceTag/aws:autoscaling:groupName": "swarmkeeper-demo-workers"}
    # Given an instance of the worker group / When the node-id tag is set / Then it is allowed
    assert allowed(control, "ec2:CreateTags", INSTANCE, {**worker, "aws:TagKeys": ["swarmkeeper:node-id"]})
    # When the request also (or only) sets another key, such as the cluster tag / Then it is refused
    for keys in (["swarmkeeper:node-id", "swarmkeeper:cluster"], ["swarmkeeper:role"]):
        assert allowed(control, "ec2:CreateTags", INSTANCE, {**worker, "aws:TagKeys": keys}) == []
    # Given an instance outside the groups, even with the cluster tag / Then nothing may be tagged
    outside = {"aws:ResourceTag/swarmkeeper:cluster": "demo", "aws:TagKeys": ["swarmkeeper:node-id"]}
    assert allowed(control, "ec2:CreateTags", INSTANCE, outside) == []


def test_lifecycle_actions_only_on_the_two_groups(control):
    group = "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:{}:autoScalingGroupName/{}"
    for action in (
        "autoscaling:CompleteLifecycleAction",
        "autoscaling:RecordLifecycleActionHeartbeat",
        "autoscaling:SetInstanceHealth",
    ):
        (statement,) = [s for s in control if s.effect == "Allow" and action in s.actions]
        assert set(statement.resources) == {
            group.format("*", "swarmkeeper-demo-managers"),
            group.format("*", "swarmkeeper-demo-workers"),
        }
        assert allowed(control, action, group.format("0b1c", "swarmkeeper-demo-workers"))
        assert allowed(control, action, group.format("0b1c", "someone-elses-group")) == []


def test_control_plane_data_access_is_limited_to_its_own_resources(demo, control):
    ids = {
        r["Properties"].get("TableName") or r["Properties"].get("QueueName"): k
        for k, r in demo.resources.items()
    }
    (bus_id,) = demo.of_type("AWS::Events::EventBus")
    bucket = _bucket(demo)
    assert allowed(control, "dynamodb:PutItem", f"arn:aws:test:::{ids['swarmkeeper-demo-state']}")
    assert allowed(control, "sqs:SendMessage", f"arn:aws:test:::{ids['swarmkeeper-demo-steps']}")
    assert allowed(control, "events:PutEvents", f"arn:aws:test:::{bus_id}")
    assert allowed(control, "events:PutEvents", arn("events", "event-bus/default")) == []
    # Command output: read only, and only under the prefix describe-swarm sends it to
    key = "describe-swarm/0b1c-command/i-0123/awsrunShellScript/0.awsrunShellScript/stdout"
    assert allowed(control, "s3:GetObject", f"{bucket}/{key}")
    assert allowed(control, "s3:GetObject", f"{bucket}/elsewhere/stdout") == []
    assert allowed(control, "s3:PutObject", f"{bucket}/{key}") == []


def test_only_calls_without_resource_level_permissions_are_allowed_on_every_resource(control):
    # Given the Allow statements on "*"
    everywhere = {a for s in control if s.effect == "Allow" and "*" in s.resources for a in s.actions}
    # Then they hold only describe/read calls IAM cannot scope, and X-Ray's (active tracing)
    assert everywhere == {
        "ec2:DescribeInstances",
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeAutoScalingInstances",  # the running fallback's warm-pool check
        "ssm:GetCommandInvocation",
        # the listeners flow reads the load balancer and its groups (none of these takes a resource)
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
        "elasticloadbalancing:DescribeTags",
        "ec2:DescribeSecurityGroups",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }


def _adapter_calls(path: Path) -> set[str]:
    text = path.read_text()
    calls = set()
    for attribute, method in re.findall(r"self\.(_[a-z0-9]+)\.([a-z_]+)\(", text):
        if attribute in CLIENT_SERVICES and method != "get_paginator":
            calls.add(f"{CLIENT_SERVICES[attribute]}:{method}")
    for attribute, method in re.findall(r"self\.(_[a-z0-9]+)\.get_paginator\(\"([a-z_]+)\"\)", text):
        calls.add(f"{CLIENT_SERVICES[attribute]}:{method}")
    return calls


def test_every_aws_call_the_adapters_make_is_allowed(control):
    # Given every client an adapter keeps is one this test knows the service of
    services = set(boto3.session.Session().get_available_services())
    for path in ADAPTERS.glob("*.py"):
        for attribute, parameter in re.findall(r"self\.(_[a-z0-9]+) = ([a-z0-9]+)\n", path.read_text()):
            if parameter in services:
                assert CLIENT_SERVICES.get(attribute) == parameter, f"{path.name}: self.{attribute}"
    # and every boto3 call of the control plane's adapters (client attribute -> service)
    calls = set().union(*(_adapter_calls(p) for p in ADAPTERS.glob("*.py")))
    assert {"ssm:send_command", "ec2:create_tags", "autoscaling:complete_lifecycle_action"} <= calls
    for call in sorted(calls):
        service, method = call.split(":")
        operation = "".join(part.capitalize() for part in method.split("_"))
        action = IAM_ACTIONS.get(call, f"{IAM_PREFIX.get(service, service)}:{operation}")
        # Then some Allow statement grants the action (on which resource is the other tests' business)
        grants = [s for s in control if s.effect == "Allow" and any(s.covers(action, r) for r in s.resources)]
        assert grants, f"{action} (called by an adapter) is allowed by no statement of the control-plane role"
