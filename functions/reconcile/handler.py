"""reconcile: scheduled (every reconcileMinutes), or on demand with any payload.

Starts a reconcile pass: describe-swarm on a healthy manager; its status event (command_status)
carries the pass on (see swarmkeeper.flows.reconcile). One pass in flight at a time. Then the stacks:
each file of the stacks bucket whose current version is not the one its stack runs is deployed
again (or its stack removed), a few a pass (see swarmkeeper.flows.stacks).
"""

from swarmkeeper import runtime
from swarmkeeper.domain.kernel import Decision
from swarmkeeper.handling import Function
from swarmkeeper.runtime import Runtime

fn = Function(runtime.RECONCILE, runtime.STACKS)
metrics = fn.metrics


def start(rt: Runtime, correlation_id: str) -> Decision[object]:
    swarm = rt.reconcile.start(correlation_id)
    fn.report(rt.stacks.reconcile(correlation_id))
    return swarm


lambda_handler = fn.on_schedule(start)
