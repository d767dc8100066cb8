"""reconcile: scheduled (every reconcileMinutes), or on demand with any payload.

Starts a reconcile pass: describe-swarm on a healthy manager; its status event (command_status)
carries the pass on (see swarmkeeper.flows.reconcile). One pass in flight at a time.
"""

from swarmkeeper import runtime
from swarmkeeper.domain.kernel import Decision
from swarmkeeper.handling import Function
from swarmkeeper.runtime import Runtime

fn = Function(runtime.RECONCILE)
metrics = fn.metrics


def start(rt: Runtime, correlation_id: str) -> Decision[object]:
    return rt.reconcile.start(correlation_id)


lambda_handler = fn.on_schedule(start)
