"""Every scenario's run checks the operators' timeline against the event schemas (schemas/): the check
is on the scenario's report, so `python -m lab` and the lab tier both fail on an event off its schema."""

from __future__ import annotations

from typing import Any

import pytest

from lab.events import EventFactory
from lab.scenarios import registry
from lab.scenarios.report import SCHEMA_CHECK, Report

F = EventFactory("eu-west-1", "123456789012")


def node_joined(**changes: Any) -> dict[str, Any]:
    detail = {
        "cluster": "demo",
        "instanceId": "i-0123456789abcdef0",
        "nodeId": "k" * 25,
        "role": "manager",
        "reason": "ready as manager",
        "correlationId": "e7d7c1a2-0b7a-4f77-9d7e-3e5d6c1b2a90",
        **changes,
    }
    return F.envelope("swarmkeeper", "Node Joined", {k: v for k, v in detail.items() if v is not None})


class TimelineOnly:
    """What the schema check reads of a lab: the operators' events and when the lab started."""

    started = 1_000.0

    def __init__(self, *events: dict[str, Any]):
        self._events = [(1_001.5, e) for e in events]

    def operator_events(self) -> list[tuple[float, dict[str, Any]]]:
        return self._events


def run_with(monkeypatch: pytest.MonkeyPatch, lab: TimelineOnly) -> Report:
    def scenario(lab: Any, report: Report, scale: float) -> None:
        report.check("the scenario's own check", True)

    monkeypatch.setitem(registry.SCENARIOS, "schema-probe", scenario)
    return registry.run(lab, "schema-probe")  # type: ignore[arg-type]


def test_a_timeline_that_matches_its_schemas_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a scenario whose timeline holds a well-formed Node Joined, When it runs
    report = run_with(monkeypatch, TimelineOnly(node_joined()))
    # Then its report carries the schema check, passed
    assert report.ok
    assert [c.name for c in report.checks] == ["the scenario's own check", SCHEMA_CHECK]


@pytest.mark.parametrize(
    ("event", "named"),
    [
        (node_joined(nodeId=None), "'nodeId' is a required property"),
        (node_joined(token="x"), "'token' was unexpected"),
        (node_joined(role="leader"), "detail/role"),
        (F.envelope("swarmkeeper", "Node Exploded", {}), "no schema for detail-type 'Node Exploded'"),
    ],
)
def test_an_event_off_its_schema_fails_the_scenario(
    monkeypatch: pytest.MonkeyPatch, event: dict[str, Any], named: str
) -> None:
    # Given a scenario whose own checks pass but whose timeline holds an event off its schema
    report = run_with(monkeypatch, TimelineOnly(node_joined(), event))
    # When it runs, Then its report fails on the schema check, naming the event's time and the mismatch
    (check,) = [c for c in report.checks if c.name == SCHEMA_CHECK]
    assert not report.ok and not check.ok
    assert named in check.detail and "+1.5s" in check.detail
