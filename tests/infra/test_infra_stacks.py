"""The stacks bucket as synthesized, and who may read what of it and of the stacks' secrets: managers
read the Compose files and the secrets (and decrypt those, through Parameter Store only); workers
nothing; the control plane lists versions under `stacks/` and reads neither a file nor a secret."""

from __future__ import annotations

import copy
import json

import pytest
from infra_iam import Statement, allowed, arn, key_allows, key_policy, role_id_for, statements_of_role
from infra_synth import load_event
from moto.events.models import EventPattern
from test_infra_event_patterns import EVENT_KINDS

from swarmkeeper.domain.stacks import STACK_NAME_PATTERN

ROLES = {"manager": "ComputeManagerRole", "worker": "ComputeWorkerRole", "control": "ControlPlaneRole"}
SECRET = "/swarmkeeper/demo/secrets/db_password"
VIA_SSM = "ssm.us-east-1.amazonaws.com"
# What AmazonSSMReadOnlyAccess / AmazonS3ReadOnlyAccess would add if someone attached them.
BROAD_READ = Statement(effect="Allow", actions=("ssm:Get*", "s3:Get*", "s3:List*"), resources=("*",))


@pytest.fixture(scope="module")
def roles(demo):
    return {
        role: statements_of_role(demo.resources, role_id_for(demo.resources, p)) for role, p in ROLES.items()
    }


@pytest.fixture(scope="module")
def bucket(demo):
    return f"arn:aws:test:::{demo.stacks_bucket_id}"


def _role_arn(demo, role):
    return f"arn:aws:test:::{role_id_for(demo.resources, ROLES[role])}"


def test_the_stacks_bucket_is_versioned_encrypted_private_and_tells_eventbridge(demo):
    props = demo.resources[demo.stacks_bucket_id]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    # S3's own EventBridge switch: no notification custom resource (and its Lambda) in the stack
    assert props["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert not [r for r in demo.resources.values() if r["Type"] == "Custom::S3BucketNotifications"]
    # old versions expire after stackVersionDays (30)
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    # and plain HTTP is refused
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in demo.of_type("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": demo.stacks_bucket_id}
    ]
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for statements in policies
        for s in statements
    )


def test_only_managers_read_the_compose_files_and_only_under_stacks(roles, bucket):
    for action in ("s3:GetObject", "s3:GetObjectVersion"):
        assert allowed(roles["manager"], action, f"{bucket}/stacks/app.yml"), action
        assert allowed(roles["manager"], action, f"{bucket}/elsewhere/app.yml") == [], action
        for role in ("worker", "control"):
            assert allowed(roles[role], action, f"{bucket}/stacks/app.yml") == [], (role, action)
    # and nobody here writes or deletes them (that is the user's)
    for role in ROLES:
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
            assert allowed(roles[role], action, f"{bucket}/stacks/app.yml") == [], (role, action)


def test_the_control_plane_only_lists_the_versions_under_stacks(roles, bucket):
    for action in ("s3:ListBucket", "s3:ListBucketVersions"):
        assert allowed(roles["control"], action, bucket, {"s3:prefix": "stacks/app.yml"}), action
        assert allowed(roles["control"], action, bucket, {"s3:prefix": "stacks/"}), action
        assert allowed(roles["control"], action, bucket, {"s3:prefix": "other/"}) == [], action
        assert allowed(roles["control"], action, bucket) == [], action  # no prefix: the whole bucket
        assert allowed(roles["manager"], action, bucket, {"s3:prefix": "stacks/"}) == [], action
        assert allowed(roles["worker"], action, bucket, {"s3:prefix": "stacks/"}) == [], action


def test_only_managers_read_the_stack_secrets(roles):
    secret = arn("ssm", f"parameter{SECRET}")
    assert allowed(roles["manager"], "ssm:GetParameter", secret)
    assert (
        allowed(roles["manager"], "ssm:GetParameter", arn("ssm", "parameter/swarmkeeper/other/secrets/x"))
        == []
    )
    assert allowed(roles["manager"], "ssm:PutParameter", secret) == []
    assert allowed(roles["worker"], "ssm:GetParameter", secret) == []
    # and the control plane never, even when a broad read is attached to its role
    for action in ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory"):
        assert allowed([*roles["control"], BROAD_READ], action, secret) == [], action


def _decrypt_context(caller, parameter, via=VIA_SSM):
    context = {
        "aws:PrincipalArn": caller,
        "kms:EncryptionContext:PARAMETER_ARN": arn("ssm", f"parameter{parameter}"),
    }
    return {**context, "kms:ViaService": via} if via else context


def _may_decrypt(demo, roles, role, parameter, via=VIA_SSM):
    (key_id,) = demo.of_type("AWS::KMS::Key")
    key = key_policy(demo.resources, key_id)
    context = _decrypt_context(_role_arn(demo, role), parameter, via)
    in_iam = allowed(roles[role], "kms:Decrypt", f"arn:aws:test:::{key_id}", context)
    return bool(key_allows(key, "kms:Decrypt", context)) and bool(in_iam)


def test_only_managers_decrypt_the_stack_secrets_and_only_through_parameter_store(demo, roles):
    assert _may_decrypt(demo, roles, "manager", SECRET)
    assert not _may_decrypt(demo, roles, "manager", SECRET, via=None)
    assert not _may_decrypt(demo, roles, "manager", SECRET, via="s3.us-east-1.amazonaws.com")
    assert not _may_decrypt(demo, roles, "manager", "/swarmkeeper/other/secrets/db_password")
    assert not _may_decrypt(demo, roles, "manager", "/prod/database/password")
    for role in ("worker", "control"):
        assert not _may_decrypt(demo, roles, role, SECRET), role


def test_the_role_and_the_key_policy_each_hold_the_secrets_context(demo, roles):
    # Each alone refuses what is not a stack secret of this cluster (both must allow, each says it)
    (key_id,) = demo.of_type("AWS::KMS::Key")
    key = key_policy(demo.resources, key_id)
    caller = _role_arn(demo, "manager")
    for parameter in ("/swarmkeeper/other/secrets/db_password", "/prod/database/password"):
        context = _decrypt_context(caller, parameter)
        assert allowed(roles["manager"], "kms:Decrypt", f"arn:aws:test:::{key_id}", context) == [], parameter
        assert key_allows(key, "kms:Decrypt", context) == [], parameter
    assert key_allows(key, "kms:Decrypt", _decrypt_context(caller, SECRET))


def test_the_stack_name_the_document_accepts_is_the_one_the_control_plane_decides_on():
    from infra.documents import STACK_NAME_PATTERN as DOCUMENT_PATTERN

    assert DOCUMENT_PATTERN == STACK_NAME_PATTERN


def _stack_rule_matches(demo, event):
    pattern = demo.rule("swarmkeeper-demo-stack-object")["Properties"]["EventPattern"]
    # the bucket's name is a Ref: the fixtures' bucket stands for it
    pattern["detail"]["bucket"]["name"] = ["swarmkeeper-demo-stacks"]
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


@pytest.mark.parametrize(
    ("kind", "key", "bucket", "expected"),
    [
        ("s3-object-created", "stacks/app.yml", "swarmkeeper-demo-stacks", True),
        ("s3-object-deleted", "stacks/app.yml", "swarmkeeper-demo-stacks", True),
        ("s3-object-created", "stacks/app.yaml", "swarmkeeper-demo-stacks", False),
        ("s3-object-created", "other/app.yml", "swarmkeeper-demo-stacks", False),
        ("s3-object-created", "stacks/app.yml", "someone-elses-bucket", False),
    ],
)
def test_the_stack_object_rule_takes_the_stacks_files_of_the_stacks_bucket(demo, kind, key, bucket, expected):
    event = copy.deepcopy(load_event(kind))
    event["detail"]["object"]["key"] = key
    event["detail"]["bucket"]["name"] = bucket
    assert _stack_rule_matches(demo, event) is expected


def test_the_stack_object_rule_takes_no_other_event(demo):
    others = [k for k in EVENT_KINDS if not k.startswith("s3-")]
    assert [k for k in others if _stack_rule_matches(demo, copy.deepcopy(load_event(k)))] == []
