"""Each rule's pattern, read from the synthesized template, against AWS-documented sample events.

Matching uses moto's EventBridge pattern engine (EventPattern.matches_event), not test_event_pattern.
"""

from __future__ import annotations

import copy
import json

import pytest
from infra_synth import load_event
from moto.events.models import EventPattern

EVENT_KINDS = (
    "ec2-instance-state-change-notification",
    "ec2-instance-launch-lifecycle-action",
    "ec2-instance-terminate-lifecycle-action",
    "ec2-spot-instance-interruption-warning",
    "ec2-instance-rebalance-recommendation",
    "ec2-command-invocation-status-change-notification",
    "ec2-command-status-change-notification",
    "ec2-state-manager-instance-association-state-change",
    "cloudwatch-alarm-state-change",
    "scheduled-event",
    "s3-object-created",
    "s3-object-deleted",
)
# rule -> the sample events it must match; it must match none of the others.
EXPECTED = {
    "swarmkeeper-demo-instance-state": {"ec2-instance-state-change-notification"},
    "swarmkeeper-demo-lifecycle-action": {
        "ec2-instance-launch-lifecycle-action",
        "ec2-instance-terminate-lifecycle-action",
    },
    "swarmkeeper-demo-interruption": {
        "ec2-spot-instance-interruption-warning",
        "ec2-instance-rebalance-recommendation",
    },
    "swarmkeeper-demo-command-status": {"ec2-command-invocation-status-change-notification"},
    "swarmkeeper-demo-agent-ready": {"ec2-state-manager-instance-association-state-change"},
    "swarmkeeper-demo-alarm": {"cloudwatch-alarm-state-change"},
}


def matches(synth, rule_name: str, event: dict) -> bool:
    pattern = synth.rule(rule_name)["Properties"]["EventPattern"]
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def variant_of(kind: str, **detail) -> dict:
    event = copy.deepcopy(load_event(kind))
    event["detail"].update(detail)
    return event


def test_sample_events_have_the_documented_envelope():
    for kind in EVENT_KINDS:
        event = load_event(kind)
        assert set(event) == {
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
            "detail",
        }


@pytest.mark.parametrize("rule_name", EXPECTED)
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_each_rule_matches_its_events_and_no_other(demo, rule_name, kind):
    # Given a rule's synthesized pattern and a documented sample event
    # When the pattern is applied / Then it matches exactly the kinds the rule is for
    assert matches(demo, rule_name, load_event(kind)) is (kind in EXPECTED[rule_name])


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("running", True),
        ("shutting-down", True),
        ("terminated", True),
        ("pending", False),
        ("stopping", False),
        ("stopped", False),
    ],
)
def test_instance_state_rule_takes_only_running_shutting_down_terminated(demo, state, expected):
    event = variant_of("ec2-instance-state-change-notification", state=state)
    assert matches(demo, "swarmkeeper-demo-instance-state", event) is expected


@pytest.mark.parametrize("group", ["swarmkeeper-demo-managers", "swarmkeeper-demo-workers"])
@pytest.mark.parametrize(
    "kind", ["ec2-instance-launch-lifecycle-action", "ec2-instance-terminate-lifecycle-action"]
)
def test_lifecycle_rule_takes_both_own_groups(demo, group, kind):
    assert matches(demo, "swarmkeeper-demo-lifecycle-action", variant_of(kind, AutoScalingGroupName=group))


@pytest.mark.parametrize("group", ["web-asg", "swarmkeeper-demo-2-workers", "swarmkeeper-other-managers"])
def test_lifecycle_rule_ignores_other_groups(demo, group):
    event = variant_of("ec2-instance-launch-lifecycle-action", AutoScalingGroupName=group)
    assert not matches(demo, "swarmkeeper-demo-lifecycle-action", event)


@pytest.mark.parametrize(
    "action",
    [
        "bootstrap-node",
        "verify-node",
        "drain-node",
        "remove-node",
        "leave-swarm",
        "rotate-tokens",
        "describe-swarm",
    ],
)
def test_command_status_rule_takes_every_own_document(demo, action):
    event = variant_of(
        "ec2-command-invocation-status-change-notification", **{"document-name": f"swarmkeeper-demo-{action}"}
    )
    assert matches(demo, "swarmkeeper-demo-command-status", event)


@pytest.mark.parametrize(
    "document", ["AWS-RunShellScript", "swarmkeeper-demo-2-bootstrap-node", "swarmkeeper-other-drain-node"]
)
def test_command_status_rule_ignores_other_documents(demo, document):
    event = variant_of("ec2-command-invocation-status-change-notification", **{"document-name": document})
    assert not matches(demo, "swarmkeeper-demo-command-status", event)


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ({}, True),
        ({"status": "Failed"}, False),
        ({"status": "Pending"}, False),
        ({"document-name": "swarmkeeper-demo-2-agent-ready"}, False),
        ({"document-name": "AWS-GatherSoftwareInventory"}, False),
    ],
)
def test_agent_ready_rule_takes_only_the_own_association_succeeding(demo, detail, expected):
    # Given the agent-ready association's documented status event, as is or changed
    event = variant_of("ec2-state-manager-instance-association-state-change", **detail)
    # Then only a Success of this cluster's own agent-ready document reaches the join flow
    assert matches(demo, "swarmkeeper-demo-agent-ready", event) is expected


@pytest.mark.parametrize("what", ["nodes-down", "quorum-at-risk", "dlq-depth", "function-errors"])
def test_alarm_rule_takes_every_own_alarm(demo, what):
    event = variant_of("cloudwatch-alarm-state-change", alarmName=f"swarmkeeper-demo-{what}")
    assert matches(demo, "swarmkeeper-demo-alarm", event)


@pytest.mark.parametrize(
    "alarm", ["ServerCpuTooHigh", "swarmkeeper-demo-2-nodes-down", "swarmkeeper-other-dlq-depth"]
)
def test_alarm_rule_ignores_other_stacks_alarms(demo, alarm):
    event = variant_of("cloudwatch-alarm-state-change", alarmName=alarm)
    assert not matches(demo, "swarmkeeper-demo-alarm", event)


def test_interruption_rule_ignores_rebalance_when_disabled(variant):
    # Given rebalanceDrainWorkers=false (variant stack "blue")
    assert matches(
        variant, "swarmkeeper-blue-interruption", load_event("ec2-spot-instance-interruption-warning")
    )
    assert not matches(
        variant, "swarmkeeper-blue-interruption", load_event("ec2-instance-rebalance-recommendation")
    )


def test_operators_timeline_takes_swarmkeeper_events_only(demo):
    detail = {"cluster": "demo", "instanceId": "i-0123456789abcdef0", "role": "worker"}
    published = {
        **load_event("scheduled-event"),
        "source": "swarmkeeper",
        "detail-type": "Node Joined",
        "detail": detail,
    }
    assert matches(demo, "swarmkeeper-demo-timeline", published)
    assert not matches(
        demo, "swarmkeeper-demo-timeline", load_event("ec2-instance-state-change-notification")
    )
