"""What every handler does around its one entry point: reject malformed events with one clear log
line (re-raised: Lambda's retries, then the DLQ, keep the event and the reason), and count outcomes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from swarmkeeper.domain.errors import MalformedEvent
from swarmkeeper.domain.join import Decision
from swarmkeeper.domain.outputs import redact

T = TypeVar("T")

_METRIC = {
    "start": "NodeJoinStarted",
    "joined": "NodeJoined",
    "failed": "NodeJoinFailed",
    "rotated": "JoinTokensRotated",
    "rotation-failed": "TokenRotationFailed",
    "ignore": "EventIgnored",
    "drain": "NodeDrainStarted",
    "removed": "NodeRemoved",
    "gave-up": "NodeRemovalGaveUp",
    "alarm": "AlarmRaised",
    "reconciled": "ReconcilePasses",
    "reconcile-failed": "ReconcileFailed",
}


def cluster_metrics(cluster_name: str) -> Metrics:
    """A handler's metrics: namespace POWERTOOLS_METRICS_NAMESPACE, the one dimension ``Cluster`` (the
    README contract, and what the stack's alarms select). Powertools adds a ``service`` dimension to
    every metric of a Metrics that knows a service name (POWERTOOLS_SERVICE_NAME, set for the logger),
    and a metric with dimensions {Cluster, service} is not the metric an alarm on {Cluster} watches:
    nodes-down and quorum-at-risk would never see a datapoint. So these metrics have no service."""
    metrics = Metrics(service="")
    metrics.set_default_dimensions(Cluster=cluster_name)
    return metrics


def parse_or_reject(parse: Callable[[Any], T], event: Any, logger: Logger) -> T:
    try:
        return parse(event)
    except MalformedEvent as err:
        logger.error(f"malformed event rejected: {err}", extra={"rejected_reason": str(err)})
        raise


def report(decision: Decision, logger: Logger, metrics: Metrics) -> dict[str, str]:
    reason = redact(decision.reason)
    logger.info(f"{decision.outcome}: {reason}", extra={"outcome": decision.outcome})
    name = _METRIC.get(decision.outcome)
    if name:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    return {"outcome": decision.outcome, "reason": reason}
