"""Settings from the environment, AWS events in, script output out: the package's edges that need no AWS."""

from __future__ import annotations

import json
import os

import pytest
from join_world import ENV, load_event

from swarmkeeper import inputs
from swarmkeeper.domain import outputs
from swarmkeeper.domain.errors import MalformedEvent
from swarmkeeper.domain.join_types import JoinStepDue
from swarmkeeper.domain.labels import NodeLabels
from swarmkeeper.domain.models import Role
from swarmkeeper.settings import RuntimeSettings, SettingsError

# --- settings -----------------------------------------------------------------------------------


def test_settings_parse_the_contract_environment():
    # Given the stack's environment, When parsed, Then every variable is typed
    s = RuntimeSettings.from_env()
    assert s.cluster_name == "demo" and s.agent_wait_seconds == 300 and s.region == "us-east-1"
    assert s.document_prefix == "swarmkeeper-demo-" and s.parameter_prefix == "/swarmkeeper/demo"


CONTRACT = [
    "CLUSTER_NAME", "MANAGER_GROUP_NAME", "WORKER_GROUP_NAME", "LAUNCH_HOOK_NAME", "TERMINATE_HOOK_NAME",
    "STATE_TABLE_NAME", "EVENT_BUS_NAME", "PARAMETER_PREFIX", "KMS_KEY_ID", "DOCUMENT_PREFIX",
    "STEP_QUEUE_URL", "COMMAND_OUTPUT_BUCKET", "STACKS_BUCKET", "DOCKER_VERSION", "AGENT_WAIT_SECONDS",
    "DRAIN_TIMEOUT_SECONDS", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL",
]  # fmt: skip


@pytest.mark.parametrize("name", CONTRACT)
def test_a_missing_variable_is_named(name):
    env = {k: v for k, v in ENV.items() if k != name}
    with pytest.raises(SettingsError, match=name):
        RuntimeSettings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AGENT_WAIT_SECONDS", "soon"),
        ("AGENT_WAIT_SECONDS", "0"),
        ("PARAMETER_PREFIX", "/other/demo"),
        ("CLUSTER_NAME", "Demo Cluster"),
        ("LOG_LEVEL", "LOUD"),
        ("DOCKER_VERSION", "latest; rm -rf /"),
        ("STEP_QUEUE_URL", "swarmkeeper-demo-steps"),
    ],
)
def test_a_malformed_variable_is_named(name, value):
    with pytest.raises(SettingsError, match=name):
        RuntimeSettings.from_env({**ENV, name: value})


def test_docker_version_may_be_empty():
    assert RuntimeSettings.from_env({**ENV, "DOCKER_VERSION": ""}).docker_version == ""


def test_container_logs_and_the_registry_are_optional_but_well_formed():
    # Given neither variable (containerLogs off), or both as the stack sets them
    off = RuntimeSettings.from_env(ENV)
    on = RuntimeSettings.from_env(
        {
            **ENV,
            "CONTAINER_LOG_GROUP": "/swarmkeeper/demo/containers",
            "ECR_REGISTRY": "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        }
    )
    # Then they are empty, or what the stack said
    assert (off.container_log_group, off.ecr_registry) == ("", "")
    assert on.container_log_group == "/swarmkeeper/demo/containers"
    assert on.ecr_registry == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    # and anything else is refused, naming the variable
    for name, value in (
        ("CONTAINER_LOG_GROUP", "/aws/lambda/other"),
        ("CONTAINER_LOG_GROUP", "/swarmkeeper/demo/containers'"),
        ("ECR_REGISTRY", "123.dkr.ecr.eu-west-1.amazonaws.com"),
        ("ECR_REGISTRY", "registry.example.com"),
    ):
        with pytest.raises(SettingsError, match=name):
            RuntimeSettings.from_env({**ENV, name: value})


def test_the_layer_sends_exactly_the_documents_parameters():
    # The layer cannot import infra/ (not deployed with it): its parameter names are checked here.
    from infra.documents import PARAMETERS

    assert {p.name for p in PARAMETERS["bootstrap-node"]} >= {
        "Role", "Mode", "AdvertiseAddress", "ParameterPrefix", "KmsKeyId", "Region", "DockerVersion",
        "ContainerLogGroup", "EcrRegistry",
    }  # fmt: skip
    assert {p.name for p in PARAMETERS["verify-node"]} == {
        "NodeId", "TimeoutSeconds", *NodeLabels("a", "b", "spot", Role.WORKER).parameters(),
    }  # fmt: skip
    assert {p.name for p in PARAMETERS["rotate-tokens"]} == {"ParameterPrefix", "KmsKeyId", "Region"}


# --- inputs -------------------------------------------------------------------------------------


def test_canonical_aws_samples_parse():
    # Given the AWS-documented samples, When parsed, Then the fields the flows need come out
    launch = inputs.lifecycle_action(load_event("ec2-instance-launch-lifecycle-action"))
    assert launch.launching and launch.instance_id == "i-0123456789abcdef0"
    assert launch.group == "swarmkeeper-demo-workers" and launch.hook == "swarmkeeper-launch"
    stop = inputs.lifecycle_action(load_event("ec2-instance-terminate-lifecycle-action"))
    assert not stop.launching
    state = inputs.instance_state_change(load_event("ec2-instance-state-change-notification"))
    assert (state.instance_id, state.state) == ("i-0123456789abcdef0", "running")
    raw = load_event("ec2-command-invocation-status-change-notification")
    cmd = inputs.command_status_change(raw)
    assert cmd.document_name == "swarmkeeper-demo-bootstrap-node" and cmd.status == "Success"
    assert cmd.correlation_id == raw["id"]
    for name in ("ec2-spot-instance-interruption-warning", "ec2-instance-rebalance-recommendation"):
        assert inputs.instance_notice(load_event(name)).instance_id == "i-0123456789abcdef0"
    assert inputs.alarm_change(load_event("cloudwatch-alarm-state-change")).alarm_name


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.pop("id"), "no id"),
        (lambda e: e.update({"detail-type": "Something Else"}), "detail-type"),
        (lambda e: e.pop("detail"), "detail is missing"),
        (lambda e: e["detail"].pop("EC2InstanceId"), "detail.EC2InstanceId"),
        (lambda e: e["detail"].update(EC2InstanceId="i-; rm -rf /"), "not well formed"),
        (
            lambda e: e["detail"].update(LifecycleTransition="autoscaling:TEST_NOTIFICATION"),
            "LifecycleTransition",
        ),
    ],
)
def test_malformed_lifecycle_events_say_what_is_wrong(mutate, message):
    event = load_event("ec2-instance-launch-lifecycle-action")
    mutate(event)
    with pytest.raises(MalformedEvent, match=message):
        inputs.lifecycle_action(event)


def test_step_messages_round_trip_and_reject_garbage():
    step = JoinStepDue("i-0123456789abcdef0", 4, "evt")
    assert inputs.step_body(inputs.step_message(step)) == step
    garbage = [
        "{",
        "[]",
        json.dumps({"kind": "join-step", "instanceId": "x", "version": 1}),
        json.dumps({"kind": "join-step", "instanceId": "i-0123456789abcdef0", "version": "1"}),
    ]
    for body in garbage:
        with pytest.raises(MalformedEvent):
            inputs.step_body(body)


# --- outputs ------------------------------------------------------------------------------------

NODE = "abcdefghijklmnopqrstuvwx1"
SWARM = "swarm00000000000000000001"
TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"


def test_script_last_lines_parse():
    boot = outputs.parse_bootstrap(f"installing\nnode-id={NODE} role=worker cluster-id={SWARM}\n")
    assert (boot.node_id, boot.role, boot.cluster_id) == (NODE, Role.WORKER, SWARM)
    assert outputs.parse_bootstrap(f"node-id={NODE} role=king\n") is None
    assert outputs.parse_bootstrap("") is None
    v = outputs.parse_verify(f"node-id={NODE} state=ready role=manager")
    assert (v.node_id, v.state, v.role) == (NODE, "ready", "manager")
    assert outputs.parse_rotated("rotated=worker,manager\n") == ("worker", "manager")


def test_tokens_never_survive_redaction():
    text = f"join with {TOKEN} failed\nmasked SWMTKN-*** too\n"
    assert "SWMTKN-" not in outputs.redact(text)
    assert "SWMTKN-" not in outputs.excerpt(text)
    assert len(outputs.excerpt("x" * 1000)) == 240


@pytest.mark.parametrize(
    "text",
    [
        f"join with {TOKEN} failed",
        f"token={TOKEN},next",
        f"{TOKEN}\n{TOKEN.replace('-1-', '-2-')}",
        f'{{"JoinToken": "{TOKEN}"}}',
        f"end of line {TOKEN}",
    ],
)
def test_redaction_removes_the_whole_token_not_just_its_prefix(text):
    # Given output carrying a swarm join token, When redacted (and excerpted)
    # Then not one piece of the token is left (its secret is the part after SWMTKN-), and the text
    # around it is
    secret_parts = [part for part in TOKEN.split("-")[1:] if len(part) > 1]
    for redacted in (outputs.redact(text), outputs.excerpt(text)):
        assert not any(part in redacted for part in secret_parts), redacted
        assert "SWMTKN" not in redacted and "<redacted>" in redacted
    assert outputs.redact(f"join with {TOKEN} failed") == "join with <redacted> failed"
    assert outputs.redact(f"token={TOKEN},next") == "token=<redacted>,next"


def test_rotated_token_refusal_is_recognised():
    assert outputs.says_bad_join_token("join via 10.0.0.1:2377 refused: A valid join token is necessary")
    assert not outputs.says_bad_join_token("dnf install docker failed")


def test_env_is_fake():
    # The autouse fixture replaced the environment: no real credentials are reachable.
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing" and "AWS_PROFILE" not in os.environ
