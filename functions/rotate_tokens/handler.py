"""rotate_tokens: scheduled (every tokenRotationDays), or on demand by invoking it with any payload.

Sends rotate-tokens to a healthy joined manager; its script rotates both join tokens and writes them
to Parameter Store. The command's Success (seen by command_status) publishes Join Tokens Rotated.
"""

from swarmkeeper import runtime
from swarmkeeper.domain.kernel import Decision
from swarmkeeper.handling import Function
from swarmkeeper.runtime import Runtime

fn = Function(runtime.ROTATION)
metrics = fn.metrics


def start(rt: Runtime, correlation_id: str) -> Decision[object]:
    return rt.rotation.start(correlation_id)


lambda_handler = fn.on_schedule(start)
