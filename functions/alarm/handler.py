"""alarm: CloudWatch Alarm State Change for the stack's alarms.

An alarm of this stack going into ALARM starts a reconcile pass at once and tells operators
(`Alarm Raised`); other transitions and other alarms are logged and ignored.
"""

from swarmkeeper import inputs, runtime
from swarmkeeper.domain.kernel import Decision
from swarmkeeper.handling import Function
from swarmkeeper.inputs import AlarmChange
from swarmkeeper.runtime import Runtime

fn = Function(runtime.RECONCILE)
metrics = fn.metrics


def process(alarm: AlarmChange, rt: Runtime) -> Decision[object]:
    return rt.reconcile.on_alarm(alarm.alarm_name, alarm.state, alarm.correlation_id)


def log_keys(alarm: AlarmChange) -> dict[str, str]:
    return {"alarm": alarm.alarm_name, "state": alarm.state, "correlation_id": alarm.correlation_id}


lambda_handler = fn.on_event(inputs.alarm_change, process, keys=log_keys)
