"""The operators' dashboard as synthesized: every alarm of the template on it, errors and duration of
every function, the swarm's gauges and counts under the names the control plane really publishes."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from infra_synth import Synth

from swarmkeeper.domain.kernel import Outcome
from swarmkeeper.domain.reconcile import SwarmMetrics

LAYER = Path(__file__).resolve().parents[2] / "layers/swarmkeeper/python/swarmkeeper"


def body(synth: Synth) -> dict[str, Any]:
    """The dashboard body as JSON, each CloudFormation token in it written as `<Ref:Id>` /
    `<GetAtt:Id.Attribute>` (tokens only ever stand inside its strings)."""
    (dashboard,) = synth.of_type("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]

    def text(part: str | dict[str, Any]) -> str:
        if isinstance(part, str):
            return part
        if "Ref" in part:
            return f"<Ref:{part['Ref']}>"
        logical_id, attribute = part["Fn::GetAtt"]
        return f"<GetAtt:{logical_id}.{attribute}>"

    return json.loads("".join(text(p) for p in parts))


def metrics_of(synth: Synth, title_prefix: str = "") -> list[list[Any]]:
    """Every metric line (namespace, name, dimension name, value, ..., options) of the graphs whose title
    starts with ``title_prefix``."""
    return [
        line
        for widget in body(synth)["widgets"]
        if widget["type"] == "metric" and widget["properties"]["title"].startswith(title_prefix)
        for line in widget["properties"]["metrics"]
    ]


def published_by_the_code() -> set[str]:
    """The metric names the layer publishes: each outcome's count, the reconcile pass's swarm gauges,
    and every `add_metric(name="...")` written out in the source."""
    literal = {
        keyword.value.value
        for path in LAYER.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_metric"
        for keyword in node.keywords
        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant)
    }
    outcomes = {outcome.metric for outcome in Outcome if outcome.metric}
    return literal | outcomes | set(SwarmMetrics(0, 0, 0, 0).as_dict())


def test_every_alarm_of_the_template_is_on_the_dashboard(demo: Synth) -> None:
    # Given the template's alarms, When the dashboard's alarm widgets are read
    alarms = {*demo.of_type("AWS::CloudWatch::Alarm"), *demo.of_type("AWS::CloudWatch::CompositeAlarm")}
    shown = {
        arn
        for widget in body(demo)["widgets"]
        if widget["type"] == "alarm"
        for arn in widget["properties"]["alarms"]
    }
    # Then each alarm is there (a new alarm the dashboard does not show fails here)
    assert len(alarms) >= 4
    assert {f"<GetAtt:{alarm}.Arn>" for alarm in alarms} <= shown


@pytest.mark.parametrize("metric", ["Errors", "Duration"])
def test_every_function_has_its_errors_and_duration_on_the_dashboard(demo: Synth, metric: str) -> None:
    # Given the template's functions
    functions = set(demo.of_type("AWS::Lambda::Function"))
    # When the dashboard's Lambda lines of that metric are read
    lines = [line for line in metrics_of(demo) if line[:2] == ["AWS/Lambda", metric]]
    # Then each function has one, by its own name
    assert {line[3] for line in lines} == {f"<Ref:{function}>" for function in functions}
    assert all(line[2] == "FunctionName" for line in lines)


def test_the_swarm_metrics_are_the_ones_the_code_publishes(demo: Synth, variant: Synth) -> None:
    # Given the metrics the layer publishes
    published = published_by_the_code()
    for synth, cluster in ((demo, "demo"), (variant, "blue")):
        # When the dashboard's Swarmkeeper lines are read
        lines = [line for line in metrics_of(synth) if line[0] == "Swarmkeeper"]
        # Then every one is published by the code, with the one dimension Cluster = C
        assert {line[1] for line in lines} <= published
        assert all(line[2:4] == ["Cluster", cluster] and isinstance(line[4], dict) for line in lines)


def test_the_dashboard_shows_the_swarm_the_outcomes_and_the_queues(demo: Synth) -> None:
    # Given the dashboard, When its graphs are read, Then each shows what its title says
    names = lambda prefix: {line[1] for line in metrics_of(demo, prefix)}  # noqa: E731
    (dashboard,) = demo.of_type("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "swarmkeeper-demo"
    assert names("Nodes Ready / Down") == {"NodesReady", "NodesDown"}
    assert names("Quorum") == {"ManagersReachable", "QuorumMargin"}
    assert names("Joins") == {"NodeJoinStarted", "NodeJoined"}
    assert names("Leaves") == {"NodeDrainStarted", "NodeRemoved"}
    assert {"NodeJoinFailed", "NodeRemovalGaveUp"} <= names("Failures")
    queues = {
        q["Properties"]["QueueName"]: f"<GetAtt:{k}.QueueName>"
        for k, q in demo.of_type("AWS::SQS::Queue").items()
    }
    dead_letters = metrics_of(demo, "Dead letters")
    assert [line[:4] for line in dead_letters] == [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queues["swarmkeeper-demo-dlq"]]
    ]
    steps = {line[1]: line[3] for line in metrics_of(demo, "Step queue")}
    assert steps["ApproximateAgeOfOldestMessage"] == queues["swarmkeeper-demo-steps"]
