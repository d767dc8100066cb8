"""instance_state: EC2 Instance State-change Notifications, and the agent-ready association's
State Manager Instance Association State Change (Success): the instance's SSM agent registered, so a
join waiting for it bootstraps now instead of at its next poll.

`running`: the join fallback (joins an instance of this cluster that has no join in flight and has
not joined; a no-op when the lifecycle event got there first). `shutting-down` / `terminated`: the
ungraceful exit: its node is removed from the swarm right away (Dead Node Removed), unless a leave is
already in flight for it (then that leave skips to the removal, once). Other states: ignored.
"""

from swarmkeeper import inputs, runtime
from swarmkeeper.domain.kernel import Decision, Outcome
from swarmkeeper.handling import Function
from swarmkeeper.inputs import AgentReady, InstanceStateChange
from swarmkeeper.runtime import Runtime

fn = Function(runtime.JOIN, runtime.LEAVE)
metrics = fn.metrics


def process(change: InstanceStateChange | AgentReady, rt: Runtime) -> Decision[object]:
    if isinstance(change, AgentReady):
        if change.status != "Success":
            return Decision(Outcome.IGNORE, f"agent-ready association {change.status}")
        return rt.join.agent_registered(change.stimulus())
    if change.state == "running":
        return rt.join.request(change.join_request())
    if change.state in ("shutting-down", "terminated"):
        return rt.leave.request(change.leave_request())
    return Decision(Outcome.IGNORE, f"state {change.state} needs nothing")


lambda_handler = fn.on_event(inputs.instance_event, process)
