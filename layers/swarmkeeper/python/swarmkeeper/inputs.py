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
from dataclasses import dataclass
from typing import Any

from swarmkeeper.domain.errors import MalformedEvent
from swarmkeeper.domain.join import AgentRegistered, JoinRequested, JoinStepDue
from swarmkeeper.domain.leave import (
    VIA_LIFECYCLE,
    VIA_REBALANCE,
    VIA_SPOT,
    VIA_STATE,
    LeaveRequested,
    LeaveStepDue,
)

LAUNCH_ACTION = "EC2 Instance-launch Lifecycle Action"
TERMINATE_ACTION = "EC2 Instance-terminate Lifecycle Action"
STATE_CHANGE = "EC2 Instance State-change Notification"
INVOCATION_STATUS = "EC2 Command Invocation Status-change Notification"
ASSOCIATION_STATE = "EC2 State Manager Instance Association State Change"
SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE = "EC2 Instance Rebalance Recommendation"
ALARM_STATE = "CloudWatch Alarm State Change"

_INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")
JOIN_STEP = "join-step"
LEAVE_STEP = "leave-step"
_STEP_KINDS = {JOIN_STEP: JoinStepDue, LEAVE_STEP: LeaveStepDue}


@dataclass(frozen=True)
class LifecycleAction:
    transition: str  # autoscaling:EC2_INSTANCE_LAUNCHING | autoscaling:EC2_INSTANCE_TERMINATING
    instance_id: str
    group: str
    hook: str
    correlation_id: str

    @property
    def launching(self) -> bool:
        return self.transition == "autoscaling:EC2_INSTANCE_LAUNCHING"

    def join_request(self) -> JoinRequested:
        return JoinRequested(self.instance_id, "lifecycle", self.correlation_id, self.group)

    def leave_request(self) -> LeaveRequested:
        return LeaveRequested(self.instance_id, VIA_LIFECYCLE, self.correlation_id, self.group)


@dataclass(frozen=True)
class InstanceStateChange:
    instance_id: str
    state: str
    correlation_id: str

    def join_request(self) -> JoinRequested:
        return JoinRequested(self.instance_id, "running", self.correlation_id)

    def leave_request(self) -> LeaveRequested:
        return LeaveRequested(self.instance_id, VIA_STATE, self.correlation_id)


@dataclass(frozen=True)
class AgentReady:
    """The agent-ready association ran on an instance: its SSM agent registered."""

    instance_id: str
    status: str
    correlation_id: str

    def stimulus(self) -> AgentRegistered:
        return AgentRegistered(self.instance_id, self.correlation_id)


@dataclass(frozen=True)
class CommandStatusChange:
    command_id: str
    document_name: str
    instance_id: str
    status: str
    correlation_id: str


@dataclass(frozen=True)
class InstanceNotice:
    """Spot interruption warning or rebalance recommendation."""

    kind: str
    instance_id: str
    action: str
    correlation_id: str

    def leave_request(self) -> LeaveRequested:
        via = VIA_SPOT if self.kind == SPOT_WARNING else VIA_REBALANCE
        return LeaveRequested(self.instance_id, via, self.correlation_id)


@dataclass(frozen=True)
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
    if raw.get("detail-type") not in detail_types:
        raise MalformedEvent(
            f"event {event_id}: detail-type {raw.get('detail-type')!r} is not one of {detail_types}"
        )
    detail = raw.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent(f"event {event_id}: detail is missing or not an object")
    return event_id, detail


def _field(event_id: str, detail: dict[str, Any], name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = detail.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"event {event_id}: detail.{name} is missing or empty")
    if pattern is not None and not pattern.fullmatch(value):
        raise MalformedEvent(f"event {event_id}: detail.{name}={value!r} is not well formed")
    return value


def lifecycle_action(event: Any) -> LifecycleAction:
    event_id, detail = _envelope(event, (LAUNCH_ACTION, TERMINATE_ACTION))
    transition = _field(event_id, detail, "LifecycleTransition")
    if transition not in ("autoscaling:EC2_INSTANCE_LAUNCHING", "autoscaling:EC2_INSTANCE_TERMINATING"):
        raise MalformedEvent(f"event {event_id}: unknown LifecycleTransition {transition!r}")
    return LifecycleAction(
        transition=transition,
        instance_id=_field(event_id, detail, "EC2InstanceId", _INSTANCE_ID),
        group=_field(event_id, detail, "AutoScalingGroupName"),
        hook=_field(event_id, detail, "LifecycleHookName"),
        correlation_id=event_id,
    )


def instance_state_change(event: Any) -> InstanceStateChange:
    event_id, detail = _envelope(event, (STATE_CHANGE,))
    return InstanceStateChange(
        instance_id=_field(event_id, detail, "instance-id", _INSTANCE_ID),
        state=_field(event_id, detail, "state"),
        correlation_id=event_id,
    )


def agent_ready(event: Any) -> AgentReady:
    event_id, detail = _envelope(event, (ASSOCIATION_STATE,))
    return AgentReady(
        instance_id=_field(event_id, detail, "instance-id", _INSTANCE_ID),
        status=_field(event_id, detail, "status"),
        correlation_id=event_id,
    )


def instance_event(event: Any) -> InstanceStateChange | AgentReady:
    """What the instance_state function receives: an EC2 state change or the agent-ready signal."""
    if isinstance(event, dict) and event.get("detail-type") == ASSOCIATION_STATE:
        return agent_ready(event)
    return instance_state_change(event)


def command_status_change(event: Any) -> CommandStatusChange:
    event_id, detail = _envelope(event, (INVOCATION_STATUS,))
    return CommandStatusChange(
        command_id=_field(event_id, detail, "command-id"),
        document_name=_field(event_id, detail, "document-name"),
        instance_id=_field(event_id, detail, "instance-id", _INSTANCE_ID),
        status=_field(event_id, detail, "status"),
        correlation_id=event_id,
    )


def instance_notice(event: Any) -> InstanceNotice:
    event_id, detail = _envelope(event, (SPOT_WARNING, REBALANCE))
    return InstanceNotice(
        kind=event["detail-type"],
        instance_id=_field(event_id, detail, "instance-id", _INSTANCE_ID),
        action=str(detail.get("instance-action", "")),
        correlation_id=event_id,
    )


def alarm_change(event: Any) -> AlarmChange:
    event_id, detail = _envelope(event, (ALARM_STATE,))
    state = detail.get("state")
    if not isinstance(state, dict) or not isinstance(state.get("value"), str):
        raise MalformedEvent(f"event {event_id}: detail.state.value is missing")
    return AlarmChange(_field(event_id, detail, "alarmName"), state["value"], event_id)


def step_body(body: str) -> JoinStepDue | LeaveStepDue:
    """A step-queue message (written by ``adapters.steps.StepQueue``): a join or a leave step."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError) as err:
        raise MalformedEvent(f"step message is not JSON: {err}") from err
    if not isinstance(data, dict) or data.get("kind") not in _STEP_KINDS:
        raise MalformedEvent(
            f"step message has unknown kind {data.get('kind') if isinstance(data, dict) else data!r}"
        )
    instance_id, version = data.get("instanceId"), data.get("version")
    if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
        raise MalformedEvent("step message lacks a well-formed instanceId")
    if not isinstance(version, int) or isinstance(version, bool):
        raise MalformedEvent("step message lacks an integer version")
    return _STEP_KINDS[data["kind"]](instance_id, version, str(data.get("correlationId", "")))


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
