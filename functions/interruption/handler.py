"""interruption: EC2 Spot Instance Interruption Warning / Instance Rebalance Recommendation.

A Spot warning starts the drain at once (two minutes is all there is; the drain budget is cut to
90 s); a rebalance recommendation drains workers when REBALANCE_DRAIN_WORKERS is true (default).
Neither has a lifecycle action to complete: when the instance then terminates, the terminate action
or state change finds the leave in flight and there is still one removal.
"""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from swarmkeeper import inputs, runtime
from swarmkeeper.handling import cluster_metrics, parse_or_reject, report
from swarmkeeper.settings import RuntimeSettings

settings = RuntimeSettings.from_env()
logger = Logger()
metrics = cluster_metrics(settings.cluster_name)
tracer = Tracer()


def process(event: dict) -> dict:
    notice = inputs.instance_notice(EventBridgeEvent(event))
    return report(runtime.get(settings).leave.request(notice.leave_request()), logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    notice = parse_or_reject(inputs.instance_notice, event, logger)
    logger.append_keys(instance_id=notice.instance_id, correlation_id=notice.correlation_id, kind=notice.kind)
    rt = runtime.get(settings)
    once = rt.once(process)
    rt.register_context(context)
    return once(event=event.raw_event)
