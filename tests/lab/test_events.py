"""Event shapes and routing through the template's real rule patterns."""

from __future__ import annotations

import threading
import time

from lab.events import EventFactory, Knobs, Router, RuleSpec

F = EventFactory("eu-west-1", "123456789012")
ENVELOPE = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}


def _router(knobs: Knobs | None = None):
    got: list[tuple[str, dict]] = []
    done = threading.Event()

    def invoke(target: str, event: dict) -> None:
        got.append((target, event))
        done.set()

    r = Router(invoke, knobs)
    r.add_rule(
        RuleSpec(
            "state",
            "arn:rule/state",
            "default",
            ["fn-state"],
            {
                "source": ["aws.ec2"],
                "detail-type": ["EC2 Instance State-change Notification"],
                "detail": {"state": ["running", "terminated"]},
            },
        )
    )
    r.add_rule(
        RuleSpec(
            "cmd",
            "arn:rule/cmd",
            "default",
            ["fn-cmd"],
            {
                "source": ["aws.ssm"],
                "detail": {"document-name": [{"prefix": "swarmkeeper-demo-"}]},
            },
        )
    )
    r.start()
    return r, got


def _wait(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.02)
    return pred()


def test_every_event_has_the_documented_envelope():
    events = [
        F.ec2_state_change("i-1", "running"),
        F.lifecycle_action(
            launching=True, group_name="g", group_arn="arn:g", hook_name="h", instance_id="i-1", token="t"
        ),
        F.spot_interruption("i-1"),
        F.rebalance_recommendation("i-1"),
        F.command_invocation_status("c", "d", "i-1", "2026-01-01T00:00:00.000Z", "Success"),
        F.command_status("c", "d", {}, "r", "e", "Success"),
        F.alarm_state_change("a", "arn:a", {"value": "ALARM"}, {"value": "OK"}, {}),
        F.scheduled("arn:rule"),
    ]
    for e in events:
        assert set(e) == ENVELOPE, e["detail-type"]
    lifecycle = events[1]["detail"]
    assert lifecycle["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert events[1]["detail-type"] == "EC2 Instance-launch Lifecycle Action"
    assert events[2]["detail"] == {"instance-id": "i-1", "instance-action": "terminate"}


def test_router_delivers_only_what_the_pattern_matches():
    # Given the router with two rules
    r, got = _router()
    try:
        # When a matching, a non-matching state and a command event arrive
        assert r.put(F.ec2_state_change("i-1", "running")) == ["state"]
        assert r.put(F.ec2_state_change("i-1", "pending")) == []
        assert r.put(
            F.command_invocation_status("c", "swarmkeeper-demo-verify-node", "i-1", "x", "Success")
        ) == ["cmd"]
        # Then exactly two deliveries happen, each to its rule's function
        assert _wait(lambda: len(got) == 2)
        assert sorted(t for t, _ in got) == ["fn-cmd", "fn-state"]
    finally:
        r.stop()


def test_duplicate_knob_delivers_twice():
    r, got = _router(Knobs(duplicate=1.0, seed=1))
    try:
        r.put(F.ec2_state_change("i-1", "terminated"))
        assert _wait(lambda: len(got) == 2)
        assert got[0][1]["id"] == got[1][1]["id"]
    finally:
        r.stop()


def test_delay_knob_holds_deliveries_back():
    r, got = _router(Knobs(delay=0.5, seed=3))
    try:
        started = time.monotonic()
        for _ in range(5):
            r.put(F.ec2_state_change("i-1", "running"))
        assert _wait(lambda: len(got) == 5)
        assert time.monotonic() - started > 0.05
    finally:
        r.stop()


def test_operators_bus_is_captured():
    r, _ = _router()
    r.captured_buses.add("swarmkeeper-demo")
    try:
        e = F.envelope("swarmkeeper", "Node Joined", {"instanceId": "i-1"})
        r.put(e, "swarmkeeper-demo")
        assert [c.event["detail-type"] for c in r.captured] == ["Node Joined"]
    finally:
        r.stop()
