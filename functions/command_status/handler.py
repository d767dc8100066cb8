"""command_status: EC2 Command Invocation Status-change Notifications for the stack's documents.

Routes a terminal status to the flow that sent the command (bootstrap-node / verify-node: the join
flow; rotate-tokens: token rotation; the exit flow's documents: not implemented yet). Non-terminal
statuses and stale commands are ignored.
"""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from swarmkeeper import inputs, runtime
from swarmkeeper.domain.join import NON_TERMINAL, Decision
from swarmkeeper.handling import cluster_metrics, parse_or_reject, report
from swarmkeeper.settings import RuntimeSettings

settings = RuntimeSettings.from_env()
logger = Logger()
metrics = cluster_metrics(settings.cluster_name)
tracer = Tracer()


def process(event: dict) -> dict:
    change = inputs.command_status_change(EventBridgeEvent(event))
    return report(runtime.get(settings).commands.handle(change), logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    change = parse_or_reject(inputs.command_status_change, event, logger)
    logger.append_keys(
        instance_id=change.instance_id, command_id=change.command_id, correlation_id=change.correlation_id
    )
    if change.status in NON_TERMINAL:
        # Pending / InProgress change nothing: answered before the idempotency record, which only a
        # terminal status needs (two DynamoDB calls saved per such event, two such events per command).
        return report(Decision("ignore", f"command {change.status}"), logger, metrics)
    rt = runtime.get(settings)
    once = rt.once(process)
    rt.register_context(context)
    return once(event=event.raw_event)
