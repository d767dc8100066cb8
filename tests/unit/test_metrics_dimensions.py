"""The swarm metrics carry exactly the dimension the stack's alarms select: ``Cluster`` (README contract).

Powertools adds a ``service`` dimension whenever it knows a service name (POWERTOOLS_SERVICE_NAME is set
for the logger); NodesDown with {Cluster, service} is another metric than the one the nodes-down alarm
watches, which then never leaves OK."""

from __future__ import annotations

import json


def _emf(output: str) -> list[dict]:
    docs = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{") and "CloudWatchMetrics" in line:
            docs.append(json.loads(line))
    return docs


def test_reconcile_metrics_have_only_the_cluster_dimension(world):
    # Given a joined manager and a worker whose node is down
    (m,) = world.managers(1)
    (w,) = world.workers(1)
    nodes = {i: world.join(i) for i in (m, w)}
    world.settle()
    world.output()

    # When a reconcile pass sees the swarm
    world.reconcile_pass(overrides={nodes[w]: ("down", "-")})

    # Then NodesDown (and every other metric) is published with the dimension set [Cluster] alone
    docs = _emf(world.output())
    down = [d for d in docs if "NodesDown" in d]
    assert down and down[-1]["NodesDown"] == [1.0]
    for doc in docs:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "Swarmkeeper"
            assert directive["Dimensions"] == [["Cluster"]], directive
        assert doc["Cluster"] == "demo" and "service" not in doc


def test_every_handler_publishes_with_the_cluster_dimension_only(world):
    # Given the handlers' metrics objects, When each flushes a metric, Then its EMF has [Cluster] only
    from aws_lambda_powertools.metrics import MetricUnit

    for name in ("alarm", "command_status", "instance_state", "interruption", "lifecycle_action",
                 "reconcile", "rotate_tokens", "steps"):  # fmt: skip
        handler = world.handlers[name]
        handler.metrics.add_metric(name="Probe", unit=MetricUnit.Count, value=1)
        handler.metrics.flush_metrics()
        (doc,) = [d for d in _emf(world.output()) if "Probe" in d][-1:]
        assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Cluster"]], name
