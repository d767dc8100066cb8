"""AWS events in -> typed inputs. These functions take the event as Lambda passes it (a dict), check
the fields the control plane needs and raise ``MalformedEvent`` naming what is missing (the handler
logs that line and re-raises: after Lambda's retries the event lands in the dead-letter queue with
the reason).

Not through Powertools' EventBridgeEvent data class: all it would add here is ``raw_event``, and
importing it imports every Powertools event class (about 8 ms, 0.08x a bare ``import boto3``, in
every cold start; see docs/benchmarks.md, cold_import_ratio)."""

from __future__ import annotations

import json
import re
from typing import Any

from swarmkeeper.domain.errors import MalformedEvent
from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.join_types import AgentRegistered, JoinRequested, JoinStepDue
from swarmkeeper.domain.leave_types import VIA_LIFECYCLE, VIA_REBALANCE, VIA_SPOT, VIA_STATE, LeaveRequested
from swarmkeeper.domain.leave_types import (
    LeaveStepDue as LeaveStepDue,  # the steps handler tells the two apart
)
from swarmkeeper.domain.models import WARM_POOL
from swarmkeeper.domain.stacks import ObjectChanged as ObjectChanged  # what stack_object receives

LAUNCH_ACTION = "EC2 Instance-launch Lifecycle Action"
TERMINATE_ACTION = "EC2 Instance-terminate Lifecycle Action"
STATE_CHANGE = "EC2 Instance State-change Notification"
INVOCATION_STATUS = "EC2 Command Invocation Status-change Notification"
ASSOCIATION_STATE = "EC2 State Manager Instance Association State Change"
SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE = "EC2 Instance Rebalance Recommendation"
ALARM_STATE = "CloudWatch Alarm State Change"
OBJECT_CREATED = "Object Created"
OBJECT_DELETED = "Object Deleted"

# Shapes, each matched whole. Anything an event carries is checked against one before it is used,
# stored or logged: ids are what AWS documents them to be, names are bounded, states are one of a set.
_EVENT_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}")  # EventBridge ids and Lambda request ids: UUIDs
_INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_COMMAND_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_AWS_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,255}")  # an Auto Scaling group or alarm name
_HOOK_NAME = re.compile(r"[A-Za-z0-9_/-]{1,255}")
_TOKEN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DOCUMENT = re.compile(r"(?:arn:aws[a-z-]*:ssm:[a-z0-9-]+:[0-9]{12}:document/)?[A-Za-z0-9_.-]{3,128}")
_STATUS = re.compile(r"[A-Z][A-Za-z]{0,31}")  # Success, InProgress, TimedOut, ... (unknown: a failure)
_WORD = re.compile(r"[A-Za-z0-9_:-]{1,64}")
_PLACES = frozenset({"EC2", "AutoScalingGroup", WARM_POOL})
_TRANSITIONS = frozenset({"autoscaling:EC2_INSTANCE_LAUNCHING", "autoscaling:EC2_INSTANCE_TERMINATING"})
_EC2_STATES = frozenset({"pending", "running", "stopping", "stopped", "shutting-down", "terminated"})
_SPOT_ACTIONS = frozenset({"terminate", "stop", "hibernate"})
_ALARM_STATES = frozenset({"OK", "ALARM", "INSUFFICIENT_DATA"})
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_OBJECT_KEY = re.compile(r"[^\x00-\x1f\x7f]{1,1024}")
_VERSION_ID = re.compile(r"[A-Za-z0-9._+/=-]{1,1024}")  # S3 version ids ("null": an unversioned object)
_SEQUENCER = re.compile(r"[0-9A-Fa-f]{1,64}")
_DELETION_TYPES = frozenset({"Permanently Deleted", "Delete Marker Created"})
_MAX_VERSION = 1_000_000
_SHOWN = 80  # characters of a rejected value an error message quotes
JOIN_STEP = "join-step"
LEAVE_STEP = "leave-step"
_STEP_KINDS: dict[str, type[JoinStepDue] | type[LeaveStepDue]] = {
    JOIN_STEP: JoinStepDue,
    LEAVE_STEP: LeaveStepDue,
}


@frozen
class LifecycleAction:
    transition: str  # autoscaling:EC2_INSTANCE_LAUNCHING | autoscaling:EC2_INSTANCE_TERMINATING
    instance_id: str
    group: str
    hook: str
    correlation_id: str
    token: str  # LifecycleActionToken: this action, not another of the same instance
    # EC2 | AutoScalingGroup | WarmPool; "" from a group without a warm pool
    origin: str = ""
    destination: str = ""

    @property
    def launching(self) -> bool:
        return self.transition == "autoscaling:EC2_INSTANCE_LAUNCHING"

    def join_request(self) -> JoinRequested:
        return JoinRequested(
            self.instance_id,
            "lifecycle",
            self.correlation_id,
            self.group,
            token=self.token,
            origin=self.origin,
            destination=self.destination,
        )

    def leave_request(self) -> LeaveRequested:
        return LeaveRequested(
            self.instance_id,
            VIA_LIFECYCLE,
            self.correlation_id,
            self.group,
            token=self.token,
            into_warm_pool=self.destination == WARM_POOL,
        )


@frozen
class InstanceStateChange:
    instance_id: str
    state: str
    correlation_id: str

    def join_request(self) -> JoinRequested:
        return JoinRequested(self.instance_id, "running", self.correlation_id)

    def leave_request(self) -> LeaveRequested:
        return LeaveRequested(self.instance_id, VIA_STATE, self.correlation_id)


@frozen
class AgentReady:
    """The agent-ready association ran on an instance: its SSM agent registered."""

    instance_id: str
    status: str
    correlation_id: str

    def stimulus(self) -> AgentRegistered:
        return AgentRegistered(self.instance_id, self.correlation_id)


@frozen
class CommandStatusChange:
    command_id: str
    document_name: str
    instance_id: str
    status: str
    correlation_id: str


@frozen
class InstanceNotice:
    """Spot interruption warning or rebalance recommendation."""

    kind: str
    instance_id: str
    action: str
    correlation_id: str

    def leave_request(self) -> LeaveRequested:
        via = VIA_SPOT if self.kind == SPOT_WARNING else VIA_REBALANCE
        return LeaveRequested(self.instance_id, via, self.correlation_id)


@frozen
class AlarmChange:
    alarm_name: str
    state: str
    correlation_id: str


def _envelope(raw: Any, detail_types: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise MalformedEvent(f"event is a {type(raw).__name__}, not an EventBridge envelope")
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEvent("EventBridge event has no id")
    if not _EVENT_ID.fullmatch(event_id):
        raise MalformedEvent(f"EventBridge event id {_shown(event_id)} is not well formed")
    if raw.get("detail-type") not in detail_types:
        raise MalformedEvent(
            f"event {event_id}: detail-type {_shown(raw.get('detail-type'))} is not one of {detail_types}"
        )
    detail = raw.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent(f"event {event_id}: detail is missing or not an object")
    return event_id, detail


def _field(
    event_id: str, detail: dict[str, Any], name: str, pattern: re.Pattern[str], where: str = "detail"
) -> str:
    """``detail[name]``: a string (not a number, a boolean or null), not empty, matching ``pattern``
    whole. ``where``: how the message names the object the field is in."""
    value = detail.get(name)
    if value is None or value == "":
        raise MalformedEvent(f"event {event_id}: {where}.{name} is missing or empty")
    if not isinstance(value, str):
        raise MalformedEvent(f"event {event_id}: {where}.{name} is a {type(value).__name__}, not a string")
    if not pattern.fullmatch(value):
        raise MalformedEvent(f"event {event_id}: {where}.{name}={_shown(value)} is not well formed")
    return value


def _choice(
    event_id: str, detail: dict[str, Any], name: str, allowed: frozenset[str], where: str = "detail"
) -> str:
    value = _field(event_id, detail, name, _WORD, where)
    if value not in allowed:
        raise MalformedEvent(
            f"event {event_id}: {where}.{name}={_shown(value)} is not one of {sorted(allowed)}"
        )
    return value


def _shown(value: Any) -> str:
    """A value as an error message may quote it: its repr, cut to a length fit for one log line."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"


def lifecycle_action(event: Any) -> LifecycleAction:
    event_id, detail = _envelope(event, (LAUNCH_ACTION, TERMINATE_ACTION))
    return LifecycleAction(
        transition=_choice(event_id, detail, "LifecycleTransition", _TRANSITIONS),
        instance_id=_field(event_id, detail, "EC2InstanceId", _INSTANCE_ID),
        group=_field(event_id, detail, "AutoScalingGroupName", _AWS_NAME),
        hook=_field(event_id, detail, "LifecycleHookName", _HOOK_NAME),
        correlation_id=event_id,
        token=_field(event_id, detail, "LifecycleActionToken", _TOKEN),
        origin=_where(event_id, detail, "Origin"),
        destination=_where(event_id, detail, "Destination"),
    )


def _where(event_id: str, detail: dict[str, Any], name: str) -> str:
    """Origin / Destination: only a group with a warm pool sends them; "" when absent."""
    return _choice(event_id, detail, name, _PLACES) if name in detail else ""


def instance_state_change(event: Any) -> InstanceStateChange:
    event_id, detail = _envelope(event, (STATE_CHANGE,))
    return InstanceStateChange(
        instance_id=_field(event_id, detail, "instance-id", _INSTANCE_ID),
        state=_choice(event_id, detail, "state", _EC2_STATES),
        correlation_id=event_id,
    )


def agent_ready(event: Any) -> AgentReady:
    event_id, detail = _envelope(event, (ASSOCIATION_STATE,))
    return AgentReady(
        instance_id=_field(event_id, detail, "instance-id", _INSTANCE_ID),
        status=_field(event_id, detail, "status", _STATUS),
        correlation_id=event_id,
    )


def instance_event(event: Any) -> InstanceStateChange | AgentReady:
    """What the instance_state function receives: an EC2 state change or the agent-ready signal."""
    if isinstance(event, dict) and event.get("detail-type") == ASSOCIATION_STATE:
        return agent_ready(event)
    return instance_state_change(event)


def command_status_change(event: Any) -> CommandStatusChange:
    """The document is named by its name or its ARN; ``document_name`` is the name."""
    event_id, detail = _envelope(event, (INVOCATION_STATUS,))
    document = _field(event_id, detail, "document-name", _DOCUMENT)
    return CommandStatusChange(
        command_id=_field(event_id, detail, "command-id", _COMMAND_ID),
        document_name=document.rsplit("document/", 1)[-1],
        instance_id=_field(event_id, detail, "instance-id", _INSTANCE_ID),
        status=_field(event_id, detail, "status", _STATUS),
        correlation_id=event_id,
    )


def instance_notice(event: Any) -> InstanceNotice:
    event_id, detail = _envelope(event, (SPOT_WARNING, REBALANCE))
    kind = event["detail-type"]
    # A Spot warning says what will happen (terminate, stop, hibernate); a rebalance says nothing.
    action = _choice(event_id, detail, "instance-action", _SPOT_ACTIONS) if kind == SPOT_WARNING else ""
    return InstanceNotice(
        kind=kind,
        instance_id=_field(event_id, detail, "instance-id", _INSTANCE_ID),
        action=action,
        correlation_id=event_id,
    )


def alarm_change(event: Any) -> AlarmChange:
    event_id, detail = _envelope(event, (ALARM_STATE,))
    state = detail.get("state")
    if not isinstance(state, dict):
        raise MalformedEvent(f"event {event_id}: detail.state is missing or not an object")
    return AlarmChange(
        alarm_name=_field(event_id, detail, "alarmName", _AWS_NAME),
        state=_choice(event_id, state, "value", _ALARM_STATES, "detail.state"),
        correlation_id=event_id,
    )


def stack_object_change(event: Any) -> ObjectChanged:
    """An S3 event of a bucket with EventBridge notifications on: Object Created / Object Deleted."""
    event_id, detail = _envelope(event, (OBJECT_CREATED, OBJECT_DELETED))
    bucket, obj = detail.get("bucket"), detail.get("object")
    if not isinstance(bucket, dict) or not isinstance(obj, dict):
        raise MalformedEvent(f"event {event_id}: detail.bucket or detail.object is missing or not an object")
    deleted = event["detail-type"] == OBJECT_DELETED
    deletion = _choice_of(event_id, detail, "deletion-type", _DELETION_TYPES) if deleted else ""
    return ObjectChanged(
        bucket=_field(event_id, bucket, "name", _BUCKET, "detail.bucket"),
        key=_field(event_id, obj, "key", _OBJECT_KEY, "detail.object"),
        version_id=_field(event_id, obj, "version-id", _VERSION_ID, "detail.object"),
        sequencer=_field(event_id, obj, "sequencer", _SEQUENCER, "detail.object"),
        deleted=deleted,
        permanently=deletion == "Permanently Deleted",
        correlation_id=event_id,
    )


def _choice_of(event_id: str, detail: dict[str, Any], name: str, allowed: frozenset[str]) -> str:
    """Like ``_choice``, for values that are phrases (with spaces)."""
    value = detail.get(name)
    if not isinstance(value, str) or value not in allowed:
        raise MalformedEvent(
            f"event {event_id}: detail.{name}={_shown(value)} is not one of {sorted(allowed)}"
        )
    return value


def invocation_id(event: Any) -> str | None:
    """The id of what invoked a scheduled function: the Scheduled Event's id; None for a payload
    without a well-formed one (invoked on demand: the caller's request id stands in)."""
    event_id = event.get("id") if isinstance(event, dict) else None
    return event_id if isinstance(event_id, str) and _EVENT_ID.fullmatch(event_id) else None


def step_body(body: str) -> JoinStepDue | LeaveStepDue:
    """A step-queue message (written by ``adapters.steps.StepQueue``): a join or a leave step."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as err:
        raise MalformedEvent(f"step message is not JSON: {err}") from err
    if not isinstance(data, dict):
        raise MalformedEvent(f"step message is a JSON {type(data).__name__}, not an object")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _STEP_KINDS:
        raise MalformedEvent(f"step message has unknown kind {_shown(kind)}")
    instance_id, version = data.get("instanceId"), data.get("version")
    correlation_id = data.get("correlationId", "")
    if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
        raise MalformedEvent("step message lacks a well-formed instanceId")
    # bool is an int to Python: true is not version 1
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= _MAX_VERSION:
        raise MalformedEvent(f"step message lacks an integer version 0-{_MAX_VERSION}")
    if not isinstance(correlation_id, str) or (correlation_id and not _EVENT_ID.fullmatch(correlation_id)):
        raise MalformedEvent("step message has a correlationId that is not an event id")
    return _STEP_KINDS[kind](instance_id, version, correlation_id)


def step_kind(step: JoinStepDue | LeaveStepDue) -> str:
    return LEAVE_STEP if isinstance(step, LeaveStepDue) else JOIN_STEP


def step_message(step: JoinStepDue | LeaveStepDue) -> str:
    return json.dumps(
        {
            "kind": step_kind(step),
            "instanceId": step.instance_id,
            "version": step.version,
            "correlationId": step.correlation_id,
        }
    )
