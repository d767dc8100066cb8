"""alarm: CloudWatch Alarm State Change for the stack's alarms.

An alarm of this stack going into ALARM starts a reconcile pass at once and tells operators
(`Alarm Raised`); other transitions and other alarms are logged and ignored.
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
    alarm = inputs.alarm_change(EventBridgeEvent(event))
    decision = runtime.get(settings).reconcile.on_alarm(alarm.alarm_name, alarm.state, alarm.correlation_id)
    return report(decision, logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    alarm = parse_or_reject(inputs.alarm_change, event, logger)
    logger.append_keys(alarm=alarm.alarm_name, state=alarm.state, correlation_id=alarm.correlation_id)
    rt = runtime.get(settings)
    once = rt.once(process)
    rt.register_context(context)
    return once(event=event.raw_event)
