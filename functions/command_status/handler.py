"""command_status: EC2 Command Invocation Status-change Notifications for the stack's documents.

Routes a terminal status to the flow that sent the command (bootstrap-node / verify-node: the join
flow; rotate-tokens: token rotation; the exit flow's documents: not implemented yet). Non-terminal
statuses and stale commands are ignored.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from swarmkeeper import inputs, runtime
from swarmkeeper.handling import parse_or_reject, report
from swarmkeeper.settings import RuntimeSettings

settings = RuntimeSettings.from_env()
logger = Logger()
metrics = Metrics()
metrics.set_default_dimensions(Cluster=settings.cluster_name)
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
    rt = runtime.get(settings)
    once = rt.once(process)
    rt.register_context(context)
    return once(event=event.raw_event)
