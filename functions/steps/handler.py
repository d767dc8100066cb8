"""steps: the SQS step queue (delayed re-deliveries: wait for the SSM agent, the cluster, the init
lock, a verifier; poll a drain, wait for a fresh swarm view or the quorum guard) -- no Lambda ever
sleeps. Powertools batch processing reports partial failures; a
malformed message fails alone, is retried by SQS and then lands in the queue's DLQ. Each step
(instance, op version) runs once (idempotency), and a step for an older op version is stale.
"""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from swarmkeeper import inputs, runtime
from swarmkeeper.domain.leave import LeaveStepDue
from swarmkeeper.handling import cluster_metrics, parse_or_reject, report
from swarmkeeper.settings import RuntimeSettings

settings = RuntimeSettings.from_env()
logger = Logger()
metrics = cluster_metrics(settings.cluster_name)
tracer = Tracer()
processor = BatchProcessor(event_type=EventType.SQS)


KEY = "[kind, instanceId, version]"


def process(event: dict) -> dict:
    step = inputs.step_body(event["body"])
    rt = runtime.get(settings)
    decision = rt.leave.step(step) if isinstance(step, LeaveStepDue) else rt.join.step(step)
    return report(decision, logger, metrics)


def record_handler(record: SQSRecord) -> dict:
    step = parse_or_reject(inputs.step_body, record.body, logger)
    logger.append_keys(instance_id=step.instance_id, correlation_id=step.correlation_id)
    once = runtime.get(settings).once(process, key_jmespath=KEY)
    kind = inputs.step_kind(step)
    return once(
        event={"body": record.body, "kind": kind, "instanceId": step.instance_id, "version": step.version}
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    rt = runtime.get(settings)
    rt.once(process, key_jmespath=KEY)
    rt.register_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
