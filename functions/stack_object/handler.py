"""stack_object: S3's Object Created / Object Deleted events of the stacks bucket (`stacks/*.yml`).

A new version of `stacks/<name>.yml` is deployed as swarm stack `<name>` by deploy-stack on a
joined manager; a deleted file removes the stack (remove-stack). One command per stack at a time:
a version that arrives meanwhile follows it (see swarmkeeper.flows.stacks); the command's status
(command_status) publishes the outcome. Duplicate deliveries are answered from the idempotency
record; an older event arriving late is ignored.
"""

from swarmkeeper import inputs, runtime
from swarmkeeper.domain.kernel import Decision
from swarmkeeper.handling import Function
from swarmkeeper.inputs import ObjectChanged
from swarmkeeper.runtime import Runtime

fn = Function(runtime.STACKS)
metrics = fn.metrics


def process(change: ObjectChanged, rt: Runtime) -> Decision[object]:
    return rt.stacks.object_changed(change)


def log_keys(change: ObjectChanged) -> dict[str, str]:
    return {"key": change.key, "version_id": change.version_id, "correlation_id": change.correlation_id}


lambda_handler = fn.on_event(inputs.stack_object_change, process, keys=log_keys)
