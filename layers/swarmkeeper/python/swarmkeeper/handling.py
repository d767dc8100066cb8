"""What every handler does around its one entry point, so that a handler keeps only what is its own
(which event, which flow): the Powertools set-up (logger, tracer, metrics with the one ``Cluster``
dimension), malformed events rejected with one clear log line (re-raised: Lambda's retries, then the
DLQ, keep the event and the reason), each event handled once (idempotency), and outcomes counted."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from swarmkeeper import inputs, runtime
from swarmkeeper.domain.errors import MalformedEvent
from swarmkeeper.domain.kernel import Decision
from swarmkeeper.domain.outputs import redact
from swarmkeeper.runtime import Runtime
from swarmkeeper.settings import RuntimeSettings

T = TypeVar("T")
Handler = Callable[[Any, LambdaContext], Mapping[str, object]]

# What the functions call: botocore alone. Left to its default, the Tracer patches every library
# X-Ray supports that is installed, and imports `requests` (and more) to do so, in every cold start.
TRACED_MODULES = ("botocore",)


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


def report(decision: Decision[object], logger: Logger, metrics: Metrics) -> dict[str, str]:
    reason = redact(decision.reason)
    logger.info(f"{decision.outcome}: {reason}", extra={"outcome": decision.outcome})
    if decision.outcome.metric:
        metrics.add_metric(name=decision.outcome.metric, unit=MetricUnit.Count, value=1)
    return {"outcome": decision.outcome, "reason": reason}


def instance_keys(parsed: Any) -> dict[str, str]:
    """The log keys of an event about one instance."""
    return {"instance_id": parsed.instance_id, "correlation_id": parsed.correlation_id}


class Function:
    """One Lambda function, set up while its module is imported (Lambda's init phase): the flows it
    uses imported (``runtime.load``), its settings read (a bad value fails the init, once, loudly), its
    Powertools logger, tracer and metrics. ``on_event`` / ``on_schedule`` make its entry point."""

    def __init__(self, *flows: str):
        runtime.load(*flows)
        self.settings = RuntimeSettings.from_env()
        self.logger = Logger()
        self.metrics = cluster_metrics(self.settings.cluster_name)
        self.tracer = Tracer(patch_modules=TRACED_MODULES)

    @property
    def runtime(self) -> Runtime:
        return runtime.get(self.settings)

    def entry_point(self, handler: Handler) -> Handler:
        """Powertools around a ``lambda_handler``: a log context cleared per invocation (the handler
        appends its keys), the invocation traced, its metrics flushed."""
        traced = self.tracer.capture_lambda_handler(self.metrics.log_metrics(handler))
        return self.logger.inject_lambda_context(traced, clear_state=True)

    def parse(self, parse: Callable[[Any], T], event: Any) -> T:
        return parse_or_reject(parse, event, self.logger)

    def report(self, decision: Decision[object]) -> dict[str, str]:
        return report(decision, self.logger, self.metrics)

    def once(
        self,
        process: Callable[..., dict[str, Any]],
        context: LambdaContext | None = None,
        key_jmespath: str = "id",
    ) -> Callable[..., dict[str, Any]]:
        """``process(event=...)`` run once per ``key_jmespath`` of the event (``Runtime.once``); given
        the invocation's ``context``, an in-progress record expires with the invocation."""
        rt = self.runtime
        once = rt.once(process, key_jmespath)
        if context is not None:
            rt.register_context(context)
        return once

    def on_event(
        self,
        parse: Callable[[Any], T],
        process: Callable[[T, Runtime], Decision[object]],
        keys: Callable[[T], dict[str, str]] = instance_keys,
        answer_first: Callable[[T], Decision[object] | None] | None = None,
    ) -> Handler:
        """The entry point of a function fed by EventBridge: ``parse`` the event (malformed: logged and
        re-raised), append its log ``keys``, then ``process(parsed, runtime)`` once per event id and
        report the decision. ``answer_first(parsed)``, where given, may decide before the idempotency
        record is even looked at (None: it does not)."""

        # Powertools keys the idempotency records by the module and name of the function it wraps:
        # ``process``, in the handler's module.
        @functools.wraps(process)
        def once_per_event(event: dict[str, Any]) -> dict[str, Any]:
            return self.report(process(parse(event), self.runtime))

        @self.entry_point
        def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
            parsed = self.parse(parse, event)
            self.logger.append_keys(**keys(parsed))
            early = answer_first(parsed) if answer_first else None
            if early is not None:
                return self.report(early)
            return self.once(once_per_event, context)(event=event)

        return lambda_handler

    def on_schedule(self, start: Callable[[Runtime, str], Decision[object]]) -> Handler:
        """The entry point of a scheduled function, which may also be invoked on demand with any
        payload: ``start(runtime, correlation_id)`` with the event's id, or else (no id, or one that
        is not an event id: it is neither logged nor stored) the request id."""

        @self.entry_point
        def lambda_handler(event: object, context: LambdaContext) -> dict[str, Any]:
            correlation_id = inputs.invocation_id(event) or context.aws_request_id
            self.logger.append_keys(correlation_id=correlation_id)
            return self.report(start(self.runtime, correlation_id))

        return lambda_handler
