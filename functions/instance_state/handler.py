"""instance_state: EC2 Instance State-change Notifications, and the agent-ready association's
State Manager Instance Association State Change (Success): the instance's SSM agent registered, so a
join waiting for it bootstraps now instead of at its next poll.

`running`: the join fallback (joins an instance of this cluster that has no join in flight and has
not joined; a no-op when the lifecycle event got there first). `shutting-down` / `terminated`: the
ungraceful exit: its node is removed from the swarm right away (Dead Node Removed), unless a leave is
already in flight for it (then that leave skips to the removal, once). Other states: ignored.
"""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from swarmkeeper import inputs, runtime
from swarmkeeper.domain.join import Decision
from swarmkeeper.handling import cluster_metrics, parse_or_reject, report
from swarmkeeper.settings import RuntimeSettings

settings = RuntimeSettings.from_env()
logger = Logger()
metrics = cluster_metrics(settings.cluster_name)
tracer = Tracer()


def process(event: dict) -> dict:
    change = inputs.instance_event(EventBridgeEvent(event))
    if isinstance(change, inputs.AgentReady):
        if change.status != "Success":
            decision = Decision("ignore", f"agent-ready association {change.status}")
        else:
            decision = runtime.get(settings).join.agent_registered(change.stimulus())
    elif change.state == "running":
        decision = runtime.get(settings).join.request(change.join_request())
    elif change.state in ("shutting-down", "terminated"):
        decision = runtime.get(settings).leave.request(change.leave_request())
    else:
        decision = Decision("ignore", f"state {change.state} needs nothing")
    return report(decision, logger, metrics)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    change = parse_or_reject(inputs.instance_event, event, logger)
    logger.append_keys(instance_id=change.instance_id, correlation_id=change.correlation_id)
    rt = runtime.get(settings)
    once = rt.once(process)
    rt.register_context(context)
    return once(event=event.raw_event)
