"""Every input is shaped before it is used: ids matched whole, names bounded, states one of a set,
strings that are strings (not numbers, booleans or null), and a rejected value quoted only in part.
Pure parsing first, then what a handler does with a hostile event. Given / When / Then."""

from __future__ import annotations

import json

import pytest
from join_world import load_event

from swarmkeeper import inputs
from swarmkeeper.domain import outputs
from swarmkeeper.domain.errors import MalformedEvent
from swarmkeeper.domain.join_types import JoinStepDue
from swarmkeeper.domain.reconcile_pass import parse_removal_comment
from swarmkeeper.flows.join import joining_instance
from swarmkeeper.flows.leave import leaving_instance

IID = "i-0123456789abcdef0"
CMD = "e8d3c0e4-71f7-4491-898f-c9b35bee5f3b"
NODE = "abcdefghijklmnopqrstuvwx1"
LONG = "x" * 100_000
CMD_EVENT = "ec2-command-invocation-status-change-notification"

HOSTILE_INSTANCE_IDS = [
    "i-0abc;rm -rf /",
    f"{IID};reboot",
    f"{IID}junk",
    f"{IID}\n",
    f" {IID}",
    "i-0123456789abcde",  # 15 hex digits: neither the old 8 nor the 17 of today
    "I-0123456789ABCDEF0",
    "i-" + "0" * 5000,
    "",
    1,
    True,
    None,
    ["i-0123456789abcdef0"],
]

# (parser, fixture, the detail field holding an instance id)
INSTANCE_FIELDS = [
    (inputs.lifecycle_action, "ec2-instance-launch-lifecycle-action", "EC2InstanceId"),
    (inputs.lifecycle_action, "ec2-instance-terminate-lifecycle-action", "EC2InstanceId"),
    (inputs.instance_state_change, "ec2-instance-state-change-notification", "instance-id"),
    (inputs.instance_event, "ec2-state-manager-instance-association-state-change", "instance-id"),
    (inputs.command_status_change, CMD_EVENT, "instance-id"),
    (inputs.instance_notice, "ec2-spot-instance-interruption-warning", "instance-id"),
    (inputs.instance_notice, "ec2-instance-rebalance-recommendation", "instance-id"),
]


@pytest.mark.parametrize(("parse", "fixture", "field"), INSTANCE_FIELDS)
@pytest.mark.parametrize("bad", HOSTILE_INSTANCE_IDS)
def test_instance_ids_are_matched_whole(parse, fixture, field, bad):
    # Given a documented event whose instance id is hostile, When parsed, Then it is rejected, and the
    # message quotes at most a bounded piece of the value
    with pytest.raises(MalformedEvent, match=field) as raised:
        parse(load_event(fixture, **{field: bad}))
    assert len(str(raised.value)) < 300


@pytest.mark.parametrize(("parse", "fixture", "field"), INSTANCE_FIELDS)
@pytest.mark.parametrize("good", [IID, "i-0123abcd"])
def test_both_documented_instance_id_lengths_are_accepted(parse, fixture, field, good):
    assert parse(load_event(fixture, **{field: good})).instance_id == good


@pytest.mark.parametrize(
    ("fixture", "field", "bad"),
    [
        (CMD_EVENT, "command-id", "cmd-1"),
        (CMD_EVENT, "command-id", f"{CMD}0"),
        (CMD_EVENT, "command-id", CMD.upper()),
        (CMD_EVENT, "command-id", ""),
        (CMD_EVENT, "command-id", 36),
        (CMD_EVENT, "document-name", "x/document/swarmkeeper-demo-rm"),
        (CMD_EVENT, "document-name", "swarmkeeper-demo-bootstrap-node\n"),
        (CMD_EVENT, "status", "Success; rm -rf /"),
        (CMD_EVENT, "status", LONG),
        (CMD_EVENT, "status", True),
        ("ec2-instance-state-change-notification", "state", "RUNNING"),
        ("ec2-instance-state-change-notification", "state", "running "),
        ("ec2-instance-state-change-notification", "state", "rebooting"),
        ("ec2-instance-state-change-notification", "state", 16),
        ("ec2-instance-launch-lifecycle-action", "AutoScalingGroupName", "g" * 256),
        ("ec2-instance-launch-lifecycle-action", "AutoScalingGroupName", "swarmkeeper-demo-workers\n"),
        ("ec2-instance-launch-lifecycle-action", "AutoScalingGroupName", False),
        ("ec2-instance-launch-lifecycle-action", "LifecycleHookName", "swarmkeeper launch"),
        ("ec2-instance-launch-lifecycle-action", "LifecycleTransition", "autoscaling:TEST_NOTIFICATION"),
        ("ec2-instance-launch-lifecycle-action", "LifecycleActionToken", "71514b9d-6a40-4b26-8523-EXAMPLE"),
        ("ec2-instance-launch-lifecycle-action", "LifecycleActionToken", None),
        ("ec2-instance-launch-lifecycle-action", "Origin", "Elsewhere"),
        ("ec2-instance-launch-lifecycle-action", "Destination", "warmpool"),
        ("ec2-instance-launch-lifecycle-action", "Destination", ""),
        ("ec2-instance-terminate-lifecycle-action", "Destination", True),
        ("ec2-spot-instance-interruption-warning", "instance-action", "reboot"),
        ("ec2-spot-instance-interruption-warning", "instance-action", ""),
        ("cloudwatch-alarm-state-change", "alarmName", "swarmkeeper-demo-nodes-down\x00"),
        ("cloudwatch-alarm-state-change", "alarmName", ""),
    ],
)  # fmt: skip
def test_fields_of_the_wrong_shape_are_rejected(fixture, field, bad):
    # Given a documented event with one field of the wrong shape, When parsed, Then it is rejected and
    # the message names the field
    parse = {
        CMD_EVENT: inputs.command_status_change,
        "ec2-instance-state-change-notification": inputs.instance_state_change,
        "ec2-instance-launch-lifecycle-action": inputs.lifecycle_action,
        "ec2-instance-terminate-lifecycle-action": inputs.lifecycle_action,
        "ec2-spot-instance-interruption-warning": inputs.instance_notice,
        "cloudwatch-alarm-state-change": inputs.alarm_change,
    }[fixture]
    with pytest.raises(MalformedEvent, match=field) as raised:
        parse(load_event(fixture, **{field: bad}))
    assert len(str(raised.value)) < 300


@pytest.mark.parametrize("bad", ["alarm", "Alarm", True, None, {"value": "ALARM"}])
def test_an_alarm_state_is_one_of_the_three(bad):
    with pytest.raises(MalformedEvent, match="state"):
        inputs.alarm_change(load_event("cloudwatch-alarm-state-change", state={"value": bad}))


@pytest.mark.parametrize(
    "bad", [LONG, "id with spaces", "-leading-dash", "\u00e9v\u00e9nement", 42, True, ""]
)
def test_event_ids_are_bounded_and_shaped(bad):
    event = load_event("ec2-instance-state-change-notification")
    event["id"] = bad
    with pytest.raises(MalformedEvent) as raised:
        inputs.instance_state_change(event)
    assert len(str(raised.value)) < 300


@pytest.mark.parametrize(
    ("fixture", "origin", "destination", "into_pool"),
    [
        ("ec2-instance-launch-lifecycle-action", "EC2", "AutoScalingGroup", False),
        ("ec2-instance-launch-lifecycle-action-into-warm-pool", "EC2", "WarmPool", True),
        ("ec2-instance-launch-lifecycle-action-from-warm-pool", "WarmPool", "AutoScalingGroup", False),
        ("ec2-instance-terminate-lifecycle-action-into-warm-pool", "AutoScalingGroup", "WarmPool", True),
    ],
)
def test_lifecycle_actions_say_where_the_instance_comes_from_and_goes(
    fixture, origin, destination, into_pool
):
    action = inputs.lifecycle_action(load_event(fixture))
    assert (action.origin, action.destination) == (origin, destination)
    request = action.join_request() if action.launching else action.leave_request()
    assert request.token == load_event(fixture)["detail"]["LifecycleActionToken"]
    if action.launching:
        assert (request.origin, request.destination) == (origin, destination)
    else:
        assert request.into_warm_pool is into_pool


def test_a_group_without_a_warm_pool_sends_no_origin_or_destination():
    event = load_event("ec2-instance-launch-lifecycle-action")
    del event["detail"]["Origin"], event["detail"]["Destination"]
    assert (inputs.lifecycle_action(event).origin, inputs.lifecycle_action(event).destination) == ("", "")


def test_a_document_arn_is_read_as_its_name():
    arn = "arn:aws:ssm:us-east-1:123456789012:document/swarmkeeper-demo-verify-node"
    event = load_event(CMD_EVENT, **{"document-name": arn})
    assert inputs.command_status_change(event).document_name == "swarmkeeper-demo-verify-node"


def test_a_rebalance_recommendation_needs_no_instance_action():
    notice = inputs.instance_notice(load_event("ec2-instance-rebalance-recommendation"))
    assert notice.action == ""


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "join-step", "instanceId": IID, "version": True},
        {"kind": "join-step", "instanceId": IID, "version": "1"},
        {"kind": "join-step", "instanceId": IID, "version": 1.0},
        {"kind": "join-step", "instanceId": IID, "version": -1},
        {"kind": "join-step", "instanceId": IID, "version": 10**30},
        {"kind": "join-step", "instanceId": IID, "version": None},
        {"kind": "join-step", "instanceId": f"{IID};reboot", "version": 1},
        {"kind": "join-step", "instanceId": IID, "version": 1, "correlationId": {"id": "x"}},
        {"kind": "join-step", "instanceId": IID, "version": 1, "correlationId": LONG},
        {"kind": "join-step", "instanceId": IID, "version": 1, "correlationId": 7},
        {"kind": ["join-step"], "instanceId": IID, "version": 1},
        {"kind": LONG, "instanceId": IID, "version": 1},
        [LONG],
    ],
)
def test_step_messages_of_the_wrong_shape_are_rejected(body):
    # Given a step message a number, a boolean or a string stands in for another in
    # When it is parsed, Then it is rejected with a bounded message
    with pytest.raises(MalformedEvent) as raised:
        inputs.step_body(json.dumps(body))
    assert len(str(raised.value)) < 300


def test_a_step_with_an_integer_version_is_taken():
    body = {"kind": "join-step", "instanceId": IID, "version": 1, "correlationId": "evt-1"}
    assert inputs.step_body(json.dumps(body)) == JoinStepDue(IID, 1, "evt-1")


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa"}, "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa"),
        ({"id": LONG}, None),
        ({"id": "a b"}, None),
        ({"id": 12}, None),
        ({"id": True}, None),
        ({}, None),
        ("just a string", None),
        (None, None),
    ],
)
def test_an_invocation_id_is_taken_only_when_it_is_an_event_id(event, expected):
    assert inputs.invocation_id(event) == expected


@pytest.mark.parametrize(
    ("read", "comment"),
    [
        (joining_instance, f"swarmkeeper join {IID}\n"),
        (joining_instance, f"swarmkeeper join {IID} and more"),
        (joining_instance, f"prefix swarmkeeper join {IID}"),
        (leaving_instance, f"swarmkeeper leave {IID}\n"),
        (parse_removal_comment, f"swarmkeeper reconcile rm {NODE} {IID} worker\n"),
    ],
)
def test_command_comments_are_matched_whole(read, comment):
    assert read(comment) is None
    assert read(comment.strip()) is not None or "prefix" in comment or "more" in comment


@pytest.mark.parametrize(
    "stdout",
    [
        "node-id=abc role=worker",  # too short for a swarm id
        "node-id=abcdefghijklmnopqrstuvwx1;rm role=worker",
        "node-id=ABCDEFGHIJKLMNOPQRSTUVWX1 role=worker",
        f"node-id={NODE} role=king",
    ],
)
def test_script_output_of_the_wrong_shape_is_not_a_result(stdout):
    assert outputs.parse_bootstrap(stdout) is None
    assert outputs.parse_removed(stdout.replace("role=worker", "removed=true")) in (None, NODE)
    assert outputs.parse_drain(f"node-id={NODE} tasks-remaining=\u00b2") is None
    assert outputs.parse_drain(f"node-id={NODE} tasks-remaining=3").tasks_remaining == 3


# --- handlers ------------------------------------------------------------------------------------


def test_a_command_id_of_the_wrong_shape_is_a_malformed_event_not_a_botocore_error(world):
    # Given a command status change whose command id is not a command id
    event = load_event(CMD_EVENT, **{"command-id": "not-a-command"})

    # When it reaches the command_status function
    with pytest.raises(MalformedEvent):
        world.invoke("command_status", event)

    # Then it is rejected as malformed with one clear line, before any AWS call
    assert "malformed event rejected: " in world.output() and "command-id" in world.output()
    assert world.fakes.calls_to("GetCommandInvocation") == []


@pytest.mark.parametrize(
    "name", ["swarmkeeper-demo-nodes-down-2", "swarmkeeper-demo-2-nodes-down", "swarmkeeper-demo-"]
)
def test_an_alarm_is_the_stacks_only_by_its_whole_name(world, name):
    # Given an alarm whose name starts like one of this stack's (another cluster's, or anyone's)
    (m,) = world.managers(1)
    world.join(m)
    event = load_event("cloudwatch-alarm-state-change", alarmName=name)

    # When it goes to ALARM, Then nothing is started and nothing is published
    assert world.invoke("alarm", event)["outcome"] == "ignore"
    assert world.sent("describe-swarm") == [] and world.published("Alarm Raised") == []


def test_an_on_demand_invocation_id_is_bounded_before_it_is_logged_or_stored(world):
    # Given a joined manager, and an on-demand invocation carrying a huge "id"
    (m,) = world.managers(1)
    world.join(m)
    huge = "evil" * 50_000

    # When the reconcile function is invoked with it
    result = world.invoke("reconcile", {"id": huge})

    # Then the pass starts under the request id; the payload's id is in no log line and no item
    assert result["outcome"] == "reconcile"
    pending = next(i for i in world.items() if i["pk"] == "op#reconcile")
    assert pending["correlation_id"] == world.context.aws_request_id
    assert "evil" not in world.output() and not any(
        "evil" in json.dumps(i, default=str) for i in world.items()
    )
