"""interruption: EC2 Spot Instance Interruption Warning / Instance Rebalance Recommendation.

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
    notice = parse_or_reject(inputs.instance_notice, event, logger)
    logger.info(
        "interruption notice: exit flow not implemented yet",
        extra={
            "kind": notice.kind,
            "instance_id": notice.instance_id,
            "correlation_id": notice.correlation_id,
        },
    )
    return {"outcome": "ignore", "reason": "exit flow not implemented yet"}
