"""interruption: EC2 Spot Instance Interruption Warning / Instance Rebalance Recommendation.

A Spot warning starts the drain at once (two minutes is all there is; the drain budget is cut to
90 s); a rebalance recommendation drains workers when REBALANCE_DRAIN_WORKERS is true (default).
Neither has a lifecycle action to complete: when the instance then terminates, the terminate action
or state change finds the leave in flight and there is still one removal.
"""

from swarmkeeper import inputs, runtime
from swarmkeeper.domain.kernel import Decision
from swarmkeeper.handling import Function, instance_keys
from swarmkeeper.inputs import InstanceNotice
from swarmkeeper.runtime import Runtime

fn = Function(runtime.LEAVE)
metrics = fn.metrics


def process(notice: InstanceNotice, rt: Runtime) -> Decision[object]:
    return rt.leave.request(notice.leave_request())


def log_keys(notice: InstanceNotice) -> dict[str, str]:
    return {**instance_keys(notice), "kind": notice.kind}


lambda_handler = fn.on_event(inputs.instance_notice, process, keys=log_keys)
