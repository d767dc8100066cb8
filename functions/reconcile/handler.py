"""reconcile: scheduled (every reconcileMinutes), or on demand with any payload.

Starts a reconcile pass: describe-swarm on a healthy manager; its status event (command_status)
carries the pass on (see swarmkeeper.flows.reconcile). One pass in flight at a time.
"""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from swarmkeeper import runtime
from swarmkeeper.handling import cluster_metrics, report
from swarmkeeper.settings import RuntimeSettings

settings = RuntimeSettings.from_env()
logger = Logger()
metrics = cluster_metrics(settings.cluster_name)
tracer = Tracer()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: object, context: LambdaContext) -> dict:
    event_id = event.get("id") if isinstance(event, dict) else None
    correlation_id = event_id if isinstance(event_id, str) and event_id else context.aws_request_id
    logger.append_keys(correlation_id=correlation_id)
    return report(runtime.get(settings).reconcile.start(correlation_id), logger, metrics)
