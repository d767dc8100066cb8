"""Placeholder for the rotate_tokens function (filled in by the join/exit flows)."""

from aws_lambda_powertools import Logger

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event, context):
    logger.info("received event", extra={"detail_type": event.get("detail-type")})
