"""AWS's own events, shaped as AWS documents them, and the EventBridge that routes them.

``EventFactory`` builds the envelopes; ``Router`` matches every rule's real pattern from the template
(moto's ``EventPattern``, the same matcher moto's EventBridge uses) and hands each match to the
target's asynchronous invoker. Knobs make delivery as unreliable as EventBridge is allowed to be:
duplicate, delay, reorder. Events put on the operators' bus are captured for the timeline.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("lab.events")


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventFactory:
    """Envelopes for one account and region."""

    def __init__(self, region: str, account: str):
        self.region = region
        self.account = account

    def envelope(
        self, source: str, detail_type: str, detail: dict, resources: list[str] | None = None
    ) -> dict:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": self.account,
            "time": iso_now(),
            "region": self.region,
            "resources": list(resources or []),
            "detail": detail,
        }

    def instance_arn(self, instance_id: str) -> str:
        return f"arn:aws:ec2:{self.region}:{self.account}:instance/{instance_id}"

    def ec2_state_change(self, instance_id: str, state: str) -> dict:
        return self.envelope(
            "aws.ec2",
            "EC2 Instance State-change Notification",
            {"instance-id": instance_id, "state": state},
            [self.instance_arn(instance_id)],
        )

    def lifecycle_action(
        self,
        *,
        launching: bool,
        group_name: str,
        group_arn: str,
        hook_name: str,
        instance_id: str,
        token: str,
        metadata: str | None = None,
    ) -> dict:
        detail = {
            "LifecycleActionToken": token,
            "AutoScalingGroupName": group_name,
            "LifecycleHookName": hook_name,
            "EC2InstanceId": instance_id,
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING"
            if launching
            else "autoscaling:EC2_INSTANCE_TERMINATING",
            "Origin": "EC2" if launching else "AutoScalingGroup",
            "Destination": "AutoScalingGroup" if launching else "EC2",
        }
        if metadata:
            detail["NotificationMetadata"] = metadata
        kind = "launch" if launching else "terminate"
        return self.envelope("aws.autoscaling", f"EC2 Instance-{kind} Lifecycle Action", detail, [group_arn])

    def spot_interruption(self, instance_id: str, action: str = "terminate") -> dict:
        return self.envelope(
            "aws.ec2",
            "EC2 Spot Instance Interruption Warning",
            {"instance-id": instance_id, "instance-action": action},
            [self.instance_arn(instance_id)],
        )

    def rebalance_recommendation(self, instance_id: str) -> dict:
        return self.envelope(
            "aws.ec2",
            "EC2 Instance Rebalance Recommendation",
            {"instance-id": instance_id},
            [self.instance_arn(instance_id)],
        )

    def command_invocation_status(
        self, command_id: str, document_name: str, instance_id: str, requested: str, status: str
    ) -> dict:
        return self.envelope(
            "aws.ssm",
            "EC2 Command Invocation Status-change Notification",
            {
                "command-id": command_id,
                "document-name": document_name,
                "instance-id": instance_id,
                "requested-date-time": requested,
                "status": status,
            },
            [self.instance_arn(instance_id)],
        )

    def instance_association_state_change(
        self,
        association_id: str,
        instance_id: str,
        document_name: str,
        document_version: str,
        targets: list[dict],
        status: str,
        summary: str,
    ) -> dict:
        now = iso_now()
        return self.envelope(
            "aws.ssm",
            "EC2 State Manager Instance Association State Change",
            {
                "association-id": association_id,
                "instance-id": instance_id,
                "document-name": document_name,
                "document-version": document_version,
                # AWS sends the targets as a JSON string with lower-case keys.
                "targets": json.dumps([{"key": t["Key"], "values": t["Values"]} for t in targets]),
                "creation-date": now,
                "last-successful-execution-date": now if status == "Success" else "",
                "last-execution-date": now,
                "status": status,
                "detailed-status": status,
                "error-code": "",
                "execution-summary": summary,
                "output-url": "",
                "instance-association-cwe-version": "1",
            },
            [
                self.instance_arn(instance_id),
                f"arn:aws:ssm:{self.region}:{self.account}:document/{document_name}",
            ],
        )

    def command_status(
        self,
        command_id: str,
        document_name: str,
        parameters: dict,
        requested: str,
        expire_after: str,
        status: str,
    ) -> dict:
        return self.envelope(
            "aws.ssm",
            "EC2 Command Status-change Notification",
            {
                "command-id": command_id,
                "document-name": document_name,
                "expire-after": expire_after,
                "parameters": parameters,
                "requested-date-time": requested,
                "status": status,
            },
            [],
        )

    def alarm_state_change(
        self, alarm_name: str, alarm_arn: str, state: dict, previous: dict, configuration: dict
    ) -> dict:
        return self.envelope(
            "aws.cloudwatch",
            "CloudWatch Alarm State Change",
            {
                "alarmName": alarm_name,
                "state": state,
                "previousState": previous,
                "configuration": configuration,
            },
            [alarm_arn],
        )

    def scheduled(self, rule_arn: str) -> dict:
        return self.envelope("aws.events", "Scheduled Event", {}, [rule_arn])


@dataclass
class RuleSpec:
    name: str
    arn: str
    bus: str
    targets: list[str]  # function names
    pattern: dict | None = None
    schedule: str | None = None
    enabled: bool = True
    _matcher: Any = field(default=None, repr=False)

    def matches(self, event: dict) -> bool:
        if not self.enabled or self.pattern is None:
            return False
        if self._matcher is None:
            from moto.events.models import EventPattern

            self._matcher = EventPattern.load(json.dumps(self.pattern))
        return bool(self._matcher.matches_event(event))


@dataclass
class Knobs:
    """How unreliable delivery is. Probabilities are 0..1, times in seconds."""

    duplicate: float = 0.0
    delay: float = 0.0  # extra delay of every delivery, uniformly 0..delay
    reorder: float = 0.0  # window within which deliveries may swap order
    seed: int | None = None


@dataclass
class Captured:
    at: float
    event: dict


class Router:
    """EventBridge for the lab. ``put(event, bus)`` routes; deliveries run on one dispatcher thread."""

    def __init__(
        self, invoke: Callable[[str, dict], None], knobs: Knobs | None = None, default_bus: str = "default"
    ):
        self.invoke = invoke
        self.knobs = knobs or Knobs()
        self.default_bus = default_bus
        self.rules: list[RuleSpec] = []
        self.captured_buses: set[str] = set()
        self.captured: list[Captured] = []
        self.aws_events: list[Captured] = []
        self.unmatched: list[dict] = []
        self._rng = random.Random(self.knobs.seed)
        self._heap: list[tuple[float, int, str, dict]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stop = False
        self._inflight = 0
        self._thread = threading.Thread(target=self._run, name="lab-eventbridge", daemon=True)
        self.listeners: list[Callable[[dict, str], None]] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def add_rule(self, rule: RuleSpec) -> None:
        self.rules.append(rule)

    def put(self, event: dict, bus: str | None = None) -> list[str]:
        """Route one event; returns the names of the rules it matched."""
        bus = bus or self.default_bus
        now = time.monotonic()
        with self._cv:
            if bus in self.captured_buses:
                self.captured.append(Captured(time.time(), event))
            elif event.get("source", "").startswith("aws."):
                self.aws_events.append(Captured(time.time(), event))
        for listener in list(self.listeners):
            try:
                listener(event, bus)
            except Exception:
                log.exception("event listener failed")
        matched = [r for r in self.rules if r.bus == bus and r.matches(event)]
        if not matched and event.get("source", "").startswith("aws."):
            self.unmatched.append(event)
        with self._cv:
            for rule in matched:
                for target in rule.targets:
                    copies = 2 if self._rng.random() < self.knobs.duplicate else 1
                    for _ in range(copies):
                        due = (
                            now
                            + self._rng.uniform(0, self.knobs.delay)
                            + self._rng.uniform(0, self.knobs.reorder)
                        )
                        heapq.heappush(self._heap, (due, next(self._seq), target, event))
            self._cv.notify_all()
        log.debug("event %s %s -> %s", event.get("detail-type"), event.get("id"), [r.name for r in matched])
        return [r.name for r in matched]

    def fire_schedule(self, rule: RuleSpec, factory: EventFactory) -> None:
        event = factory.scheduled(rule.arn)
        with self._cv:
            self.aws_events.append(Captured(time.time(), event))
            for target in rule.targets:
                heapq.heappush(self._heap, (time.monotonic(), next(self._seq), target, event))
            self._cv.notify_all()

    def idle(self) -> bool:
        with self._cv:
            return not self._heap and self._inflight == 0

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = (self._heap[0][0] - time.monotonic()) if self._heap else None
                    self._cv.wait(timeout=timeout if timeout is None else max(0.0, timeout))
                if self._stop:
                    return
                _, _, target, event = heapq.heappop(self._heap)
                self._inflight += 1
            try:
                self.invoke(target, event)
            except Exception:
                log.exception("delivering %s to %s", event.get("detail-type"), target)
            finally:
                with self._cv:
                    self._inflight -= 1
