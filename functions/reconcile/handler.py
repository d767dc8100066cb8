"""reconcile: scheduled (every reconcileMinutes).

Skeleton until the exit flow (issue 5): logs the schedule event, does nothing.
"""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from swarmkeeper.settings import RuntimeSettings

settings = RuntimeSettings.from_env()
logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    raw = event.raw_event if isinstance(event.raw_event, dict) else {}
    logger.info(
        "reconcile: not implemented yet",
        extra={"correlation_id": raw.get("id"), "resources": raw.get("resources")},
    )
    return {"outcome": "ignore", "reason": "reconcile not implemented yet"}
