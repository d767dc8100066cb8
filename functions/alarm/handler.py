"""alarm: CloudWatch Alarm State Change for the stack's alarms.

Skeleton until the exit flow (issue 5): parses the event (a malformed one is rejected with a clear
log line and re-raised), logs it, does nothing.
"""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from swarmkeeper import inputs
from swarmkeeper.handling import parse_or_reject
from swarmkeeper.settings import RuntimeSettings

settings = RuntimeSettings.from_env()
logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    alarm = parse_or_reject(inputs.alarm_change, event, logger)
    logger.info(
        "alarm state change: exit flow not implemented yet",
        extra={"alarm": alarm.alarm_name, "state": alarm.state, "correlation_id": alarm.correlation_id},
    )
    return {"outcome": "ignore", "reason": "exit flow not implemented yet"}
