"""steps: the SQS step queue (delayed re-deliveries: wait for the SSM agent, the cluster, the init
lock, a verifier; poll a drain, wait for a fresh swarm view or the quorum guard) -- no Lambda ever
sleeps. Powertools batch processing reports partial failures; a
malformed message fails alone, is retried by SQS and then lands in the queue's DLQ. Each step
(instance, op version) runs once (idempotency), and a step for an older op version is stale.
"""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from swarmkeeper import inputs, runtime
from swarmkeeper.handling import Function, instance_keys

fn = Function(runtime.JOIN, runtime.LEAVE)
metrics = fn.metrics
processor = BatchProcessor(event_type=EventType.SQS)


KEY = "[kind, instanceId, version]"


def process(event: dict[str, Any]) -> dict[str, Any]:
    step = inputs.step_body(event["body"])
    rt = fn.runtime
    decision = rt.leave.step(step) if isinstance(step, inputs.LeaveStepDue) else rt.join.step(step)
    return fn.report(decision)


def record_handler(record: SQSRecord) -> dict[str, Any]:
    step = fn.parse(inputs.step_body, record.body)
    fn.logger.append_keys(**instance_keys(step))
    kind = inputs.step_kind(step)
    return fn.once(process, key_jmespath=KEY)(
        event={"body": record.body, "kind": kind, "instanceId": step.instance_id, "version": step.version}
    )


@fn.entry_point
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    fn.once(process, context, key_jmespath=KEY)  # made before the records, so it gets the context
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
