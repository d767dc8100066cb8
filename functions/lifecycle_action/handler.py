"""lifecycle_action: EC2 Instance-launch / -terminate Lifecycle Actions of the cluster's two groups.

Launch: the join flow (the instance becomes a Ready swarm node, then CONTINUE; a launch into a warm
pool is only continued, the join comes with the launch out of it). Terminate: the exit flow (drain,
demote a manager, leave, remove, then CONTINUE; see swarmkeeper.flows.leave), also when scale-in
sends the node back into the warm pool.
Duplicate deliveries of one event are answered from the idempotency record. A malformed event is
logged as such and re-raised, so Lambda's two async retries end in the dead-letter queue with the reason.
"""

from swarmkeeper import inputs, runtime
from swarmkeeper.domain.kernel import Decision
from swarmkeeper.handling import Function
from swarmkeeper.inputs import LifecycleAction
from swarmkeeper.runtime import Runtime

fn = Function(runtime.JOIN, runtime.LEAVE)
metrics = fn.metrics


def process(action: LifecycleAction, rt: Runtime) -> Decision[object]:
    if action.launching:
        return rt.join.request(action.join_request())
    return rt.leave.request(action.leave_request())


lambda_handler = fn.on_event(inputs.lifecycle_action, process)
