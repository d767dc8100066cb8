"""lifecycle_action: EC2 Instance-launch / -terminate Lifecycle Actions of the cluster's two groups.

Launch: the join flow (the instance becomes a Ready swarm node, then CONTINUE). Terminate: the exit
flow (drain, demote a manager, leave, remove, then CONTINUE; see swarmkeeper.flows.leave).
Duplicate deliveries of one event are answered from the idempotency record. A malformed event is
logged as such and re-raised, so Lambda's two async retries end in the dead-letter queue with the reason.
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
    action = inputs.lifecycle_action(EventBridgeEvent(event))
    rt = runtime.get(settings)
    if action.launching:
        decision = rt.join.request(action.join_request())
    else:
        decision = rt.leave.request(action.leave_request())
    return report(decision, logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    action = parse_or_reject(inputs.lifecycle_action, event, logger)
    logger.append_keys(instance_id=action.instance_id, correlation_id=action.correlation_id)
    rt = runtime.get(settings)
    once = rt.once(process)
    rt.register_context(context)
    return once(event=event.raw_event)
