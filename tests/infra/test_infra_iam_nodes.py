"""The instance roles and the cluster key's policy as synthesized: what a manager and a worker may read,
write and decrypt, what the SSM agent gets, and that the documents' shell needs nothing more."""

from __future__ import annotations

import re

import pytest
from infra_iam import ACCOUNT_ROOT, allowed, arn, key_allows, key_policy, role_id_for, statements_of_role

from infra.documents import DOCUMENTS_DIR
from infra.names import COMMAND_OUTPUT_PREFIX
from swarmkeeper.flows import reconcile

ROLES = {"manager": "ComputeManagerRole", "worker": "ComputeWorkerRole"}
PARAMETER_READS = (
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "ssm:GetParameterHistory",
)
OWN = ("join-token/worker", "join-token/manager", "manager-addresses", "cluster-id")
# Parameters no instance role may read: another cluster's, another application's, AWS's public ones.
FOREIGN = (
    "/swarmkeeper/other/join-token/manager",
    "/swarmkeeper/other/cluster-id",
    "/prod/database/password",
    "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
)
# Who may use the cluster key for which token: {(role, action): tokens}.
KEY_USE = {
    ("manager", "kms:Encrypt"): {"worker", "manager"},
    ("manager", "kms:GenerateDataKey"): {"worker", "manager"},
    ("manager", "kms:Decrypt"): {"manager"},
    ("worker", "kms:Decrypt"): {"worker"},
}
CRYPTO = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:CreateGrant",
)
SSM_AGENT = (
    "ssm:UpdateInstanceInformation",
    "ssm:ListInstanceAssociations",
    "ssm:UpdateInstanceAssociationStatus",
    "ssm:PutComplianceItems",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
    "ec2messages:AcknowledgeMessage",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:OpenDataChannel",
)
# The rest of AmazonSSMManagedInstanceCore: Inventory, Patch Manager, Distributor, and reading every
# parameter of the account.
NOT_FOR_THE_AGENT = (
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:PutInventory",
    "ssm:GetManifest",
    "ssm:GetDeployablePatchSnapshotForInstance",
    "ssm:PutConfigurePackageResult",
)
# Every AWS CLI call the documents' shell makes, and the IAM action it needs.
CLI_ACTIONS = {
    ("ssm", "get-parameter"): "ssm:GetParameter",
    ("ssm", "put-parameter"): "ssm:PutParameter",
    ("s3api", "get-object"): "s3:GetObjectVersion",  # deploy-stack: one version of a Compose file
}
# What each role's documents call (read from infra/documents/*.sh): (action, parameter, kms action).
# Workers run bootstrap-node (Role=worker) and leave-swarm; managers run every document.
SCRIPT_CALLS = {
    "worker": (
        ("ssm:GetParameter", "join-token/worker", "kms:Decrypt"),  # bootstrap-node join_swarm
        ("ssm:GetParameter", "manager-addresses", None),  # bootstrap-node join_swarm
    ),
    "manager": (
        ("ssm:GetParameter", "join-token/manager", "kms:Decrypt"),  # bootstrap-node join_swarm
        ("ssm:GetParameter", "manager-addresses", None),  # join_swarm, put_string
        ("ssm:GetParameter", "cluster-id", None),  # put_string (bootstrap-node init)
        ("ssm:PutParameter", "manager-addresses", None),  # bootstrap-node, describe-swarm, remove-node
        ("ssm:PutParameter", "cluster-id", None),  # bootstrap-node init
        ("ssm:PutParameter", "join-token/worker", "kms:Encrypt"),  # put_secure: init, rotate-tokens
        ("ssm:PutParameter", "join-token/manager", "kms:Encrypt"),  # put_secure: init, rotate-tokens
        ("ssm:GetParameter", "secrets/db_password", "kms:Decrypt"),  # deploy-stack: a stack's secret
    ),
}
# The objects the documents read (s3api get-object): only deploy-stack, on a manager.
SCRIPT_OBJECT_READS = {"manager": ("s3:GetObjectVersion",), "worker": ()}
SCRIPT_PARAMETERS = {"join-token/worker", "join-token/manager", "manager-addresses", "cluster-id"}
SCRIPT_PARAMETER_VARIABLES = {
    "join-token/$SK_ROLE",  # role manager | worker
    "join-token/$role",
    "secrets/$name",  # deploy-stack: the name of an external secret of the stack
}


@pytest.fixture(scope="module")
def roles(demo):
    return {
        role: statements_of_role(demo.resources, role_id_for(demo.resources, p)) for role, p in ROLES.items()
    }


@pytest.fixture(scope="module")
def key(demo):
    (key_id,) = demo.of_type("AWS::KMS::Key")
    return key_policy(demo.resources, key_id)


def _param(name):
    return arn("ssm", f"parameter{name}")


def _own(name):
    return _param(f"/swarmkeeper/demo/{name}")


def _role_arn(demo, role):
    return f"arn:aws:test:::{role_id_for(demo.resources, ROLES[role])}"


def _kms_context(caller, token, via="ssm.us-east-1.amazonaws.com"):
    """``token``: worker | manager, or the cluster-relative name of another parameter."""
    parameter = token if "/" in token else f"join-token/{token}"
    context = {"aws:PrincipalArn": caller, "kms:EncryptionContext:PARAMETER_ARN": _own(parameter)}
    return {**context, "kms:ViaService": via} if via else context


def _may_use_key(demo, roles, key, role, action, token, via="ssm.us-east-1.amazonaws.com"):
    """Both the key policy and the role's own policy must allow it (the key policy trusts the account)."""
    (key_id,) = demo.of_type("AWS::KMS::Key")
    context = _kms_context(_role_arn(demo, role), token, via)
    in_iam = allowed(roles[role], action, f"arn:aws:test:::{key_id}", context)
    return bool(key_allows(key, action, context)) and bool(in_iam)


def test_instance_roles_attach_no_managed_policy(demo):
    # AmazonSSMManagedInstanceCore would grant ssm:GetParameter(s) on every parameter of the account
    for prefix in ROLES.values():
        role = demo.resources[role_id_for(demo.resources, prefix)]["Properties"]
        assert "ManagedPolicyArns" not in role


@pytest.mark.parametrize("role", ROLES)
def test_instance_roles_read_and_write_exactly_their_parameters(roles, role):
    reads = {"worker": {"join-token/worker", "manager-addresses"}}.get(
        role, {"join-token/manager", "manager-addresses", "cluster-id"}
    )
    writes = set() if role == "worker" else set(OWN)
    # Given the cluster's own parameters / Then GetParameter reaches exactly `reads`, PutParameter `writes`
    assert {n for n in OWN if allowed(roles[role], "ssm:GetParameter", _own(n))} == reads
    assert {n for n in OWN if allowed(roles[role], "ssm:PutParameter", _own(n))} == writes
    # and no other read action reaches any of them, nor a path above them
    for action in PARAMETER_READS[1:]:
        for name in (*OWN, "join-token", ""):
            assert allowed(roles[role], action, _own(name)) == [], (action, name)
    # Given parameters outside the cluster / Then nothing reads or writes them
    for name in FOREIGN:
        for action in (*PARAMETER_READS, "ssm:PutParameter"):
            assert allowed(roles[role], action, _param(name)) == [], (action, name)


@pytest.mark.parametrize("role", ROLES)
def test_ssm_agent_gets_its_own_calls_and_not_the_rest_of_the_managed_core_policy(roles, role):
    for action in SSM_AGENT:
        assert allowed(roles[role], action, "*"), action
    for action in NOT_FOR_THE_AGENT:
        assert allowed(roles[role], action, _param("/prod/database/password")) == [], action
        assert allowed(roles[role], action, "*") == [], action
    # The associations' documents are the only ones the agent may fetch (refresh-registry-auth: managers)
    assert allowed(roles[role], "ssm:GetDocument", arn("ssm", "document/swarmkeeper-demo-agent-ready"))
    refresh = allowed(
        roles[role], "ssm:GetDocument", arn("ssm", "document/swarmkeeper-demo-refresh-registry-auth")
    )
    assert bool(refresh) is (role == "manager")
    assert (
        allowed(roles[role], "ssm:GetDocument", arn("ssm", "document/swarmkeeper-demo-bootstrap-node")) == []
    )


@pytest.mark.parametrize(("role", "action"), [(r, a) for r in ROLES for a in CRYPTO])
def test_the_key_policy_names_who_may_use_the_key_for_which_token(demo, roles, key, role, action):
    # Given each instance role, each cryptographic action and each token, through Parameter Store
    expected = KEY_USE.get((role, action), set())
    # Then exactly the expected uses are allowed (both the key policy and the role's policy say so)
    used = {t for t in ("worker", "manager") if _may_use_key(demo, roles, key, role, action, t)}
    assert used == expected
    # and never outside Parameter Store (a direct KMS call, or through another service)
    for token in ("worker", "manager"):
        assert not _may_use_key(demo, roles, key, role, action, token, via=None)
        assert not _may_use_key(demo, roles, key, role, action, token, via="s3.us-east-1.amazonaws.com")


@pytest.mark.parametrize(
    "caller",
    [
        ACCOUNT_ROOT,
        "arn:aws:iam::123456789012:role/Admin",
        "arn:aws:iam::123456789012:role/cdk-hnb659fds-cfn-exec-role-123456789012-us-east-1",
    ],
)
def test_the_account_administers_the_key_but_no_one_else_may_use_it(key, caller):
    # Given any other principal of the account, even one whose IAM policy grants kms:*
    for token in ("worker", "manager"):
        for action in CRYPTO:
            # Then the key policy allows it no cryptographic use
            assert key_allows(key, action, _kms_context(caller, token)) == [], action
    # but the account can still manage (and CloudFormation update or delete) the key
    for action in ("kms:DescribeKey", "kms:PutKeyPolicy", "kms:EnableKeyRotation", "kms:ScheduleKeyDeletion"):
        assert key_allows(key, action, {"aws:PrincipalArn": caller}), action


def test_only_managers_write_command_output_and_only_under_the_describe_swarm_prefix(demo, roles):
    bucket = f"arn:aws:test:::{demo.output_bucket_id}"
    key = "describe-swarm/0b1c-command/i-0123/awsrunShellScript/0.awsrunShellScript/stdout"
    assert allowed(roles["manager"], "s3:PutObject", f"{bucket}/{key}")
    assert allowed(roles["manager"], "s3:PutObject", f"{bucket}/elsewhere/stdout") == []
    assert allowed(roles["manager"], "s3:GetObject", f"{bucket}/{key}") == []
    assert allowed(roles["worker"], "s3:PutObject", f"{bucket}/{key}") == []


def test_the_command_output_prefix_is_the_one_reconcile_sends_describe_swarm_output_to():
    assert reconcile.OUTPUT_PREFIX == COMMAND_OUTPUT_PREFIX


def _shell_lines():
    for path in sorted(DOCUMENTS_DIR.glob("*.sh")):
        for line in path.read_text().splitlines():
            if not line.lstrip().startswith("#"):
                yield path.name, line


def test_the_documents_shell_makes_only_the_aws_calls_checked_here():
    # Given every `aws <service> <operation>` in infra/documents/*.sh (includes too)
    calls = {
        (m[1], m[2])
        for _, line in _shell_lines()
        for m in re.finditer(r"\baws\s+([a-z0-9-]+)\s+([a-z-]+)", line)
    }
    # Then each is one SCRIPT_CALLS accounts for (a new one must be added there, and to the roles)
    assert calls and calls <= set(CLI_ACTIONS), calls - set(CLI_ACTIONS)
    # and the parameters they name are the four of the cluster
    names = {
        m[1]
        for _, line in _shell_lines()
        for m in re.finditer(r"\$\{?SK_PARAMETER_PREFIX\}?/([A-Za-z0-9_/$-]+)", line)
    }
    assert names <= SCRIPT_PARAMETERS | SCRIPT_PARAMETER_VARIABLES, names
    checked = {action for role in SCRIPT_CALLS.values() for action, _, _ in role}
    checked |= {action for reads in SCRIPT_OBJECT_READS.values() for action in reads}
    assert checked == set(CLI_ACTIONS.values())


@pytest.mark.parametrize("role", ROLES)
def test_every_call_the_documents_make_on_a_role_is_allowed(demo, roles, key, role):
    for action, name, kms_action in SCRIPT_CALLS[role]:
        assert allowed(roles[role], action, _own(name)), (action, name)
        if kms_action:
            assert _may_use_key(demo, roles, key, role, kms_action, name), (kms_action, name)
    stack_file = f"arn:aws:test:::{demo.stacks_bucket_id}/stacks/app.yml"
    for action in SCRIPT_OBJECT_READS[role]:
        assert allowed(roles[role], action, stack_file), action


# --- images from ECR and container logs ----------------------------------------------------------------

ECR_PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")
ECR_WRITE = (
    "ecr:PutImage",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:BatchDeleteImage",
    "ecr:CreateRepository",
    "ecr:DeleteRepository",
    "ecr:SetRepositoryPolicy",
)
LOG_WRITES = ("logs:CreateLogStream", "logs:PutLogEvents")
LOG_OTHERS = ("logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:GetLogEvents")


def _log_group_id(synth, name):
    (found,) = [
        k for k, r in synth.of_type("AWS::Logs::LogGroup").items() if r["Properties"]["LogGroupName"] == name
    ]
    return found


@pytest.mark.parametrize("role", ROLES)
def test_nodes_pull_from_the_accounts_ecr_and_push_nowhere(roles, role):
    own = arn("ecr", "repository/team/app")
    # The token (no resource-level permission), then pulls from any repository of the account here
    assert allowed(roles[role], "ecr:GetAuthorizationToken", "*")
    for action in ECR_PULL:
        assert allowed(roles[role], action, own), action
        # never from another account's or another region's repositories
        assert allowed(roles[role], action, "arn:aws:ecr:us-east-1:999999999999:repository/app") == []
        assert allowed(roles[role], action, "arn:aws:ecr:eu-west-1:123456789012:repository/app") == []
    # and no write, anywhere
    for action in ECR_WRITE:
        assert allowed(roles[role], action, own) == [], action
        assert allowed(roles[role], action, "*") == [], action


@pytest.mark.parametrize("role", ROLES)
def test_nodes_write_container_logs_to_the_clusters_group_only(demo, roles, role):
    # Given the containers' log group, with the cluster's retention
    group_id = _log_group_id(demo, "/swarmkeeper/demo/containers")
    assert demo.resources[group_id]["Properties"]["RetentionInDays"] == 30
    group = f"arn:aws:test:::{group_id}"  # its Arn: log-group:/swarmkeeper/demo/containers:* (streams)
    # Then a node adds streams and events there
    for action in LOG_WRITES:
        assert allowed(roles[role], action, group), action
    # and in no other group of the stack (the functions', the timeline, the flow logs)
    for other in demo.of_type("AWS::Logs::LogGroup"):
        if other != group_id:
            for action in LOG_WRITES:
                assert allowed(roles[role], action, f"arn:aws:test:::{other}") == [], (action, other)
    # nor anything else: not a new group (awslogs-create-group is false), not a read
    for action in LOG_OTHERS + LOG_WRITES:
        assert allowed(roles[role], action, "*") == [], action
    for action in LOG_OTHERS:
        assert allowed(roles[role], action, group) == [], action


def test_without_container_logs_there_is_no_group_and_no_permission(variant):
    # Given the variant, synthesized with containerLogs=false
    names = {r["Properties"]["LogGroupName"] for r in variant.of_type("AWS::Logs::LogGroup").values()}
    # Then there is no containers' log group, and the instance roles may write no log at all
    assert "/swarmkeeper/blue/containers" not in names
    for prefix in ROLES.values():
        statements = statements_of_role(variant.resources, role_id_for(variant.resources, prefix))
        assert not [s for s in statements if any(a.startswith("logs:") for a in s.actions)]
    # and bootstrap-node is told no log group, so containers keep dockerd's json-file driver
    for function in variant.of_type("AWS::Lambda::Function").values():
        assert function["Properties"]["Environment"]["Variables"]["CONTAINER_LOG_GROUP"] == ""
