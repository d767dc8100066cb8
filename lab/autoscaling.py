"""Auto Scaling as the control plane sees it: capacity, lifecycle hooks, health replacement.

moto launches and terminates instances straight to InService / gone and ignores lifecycle hooks;
CompleteLifecycleAction and RecordLifecycleActionHeartbeat are missing. The lab takes over each
group's capacity decisions (patched into moto's group model, so every path — SetDesiredCapacity,
UpdateAutoScalingGroup, TerminateInstanceInAutoScalingGroup, DetachInstances — goes through it):

- a launched instance waits in ``Pending:Wait`` while a launch hook is pending, and an
  "EC2 Instance-launch Lifecycle Action" event goes out; CONTINUE puts it InService, ABANDON
  terminates it (and capacity is restored with a new one);
- an instance chosen for scale-in (or replaced because it is unhealthy) waits in
  ``Terminating:Wait`` with an "EC2 Instance-terminate Lifecycle Action" event; only when the
  action completes (or times out: the hook's DefaultResult applies) is the EC2 instance terminated;
- an instance terminated outside Auto Scaling, or marked Unhealthy, is replaced after
  ``health_check_delay``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab import patches

log = logging.getLogger("lab.autoscaling")

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
COUNTED = {"Pending", "Pending:Wait", "Pending:Proceed", "InService"}


@dataclass
class AutoScalingKnobs:
    health_check_delay: float = 3.0  # an instance terminated outside Auto Scaling is noticed after this
    heartbeat_scale: float = 1.0  # multiplies every hook's HeartbeatTimeout
    tick: float = 0.25


@dataclass
class HookAction:
    token: str
    hook: str
    group: str
    instance_id: str
    transition: str
    default_result: str
    heartbeat_timeout: float
    deadline: float
    result: str | None = None


@dataclass
class Pending:
    instance_id: str
    group: str
    transition: str
    actions: dict[str, HookAction] = field(default_factory=dict)  # by hook name
    abandoned: bool = False


@dataclass
class Completed:
    instance_id: str
    group: str
    transition: str
    hook: str
    result: str
    how: str  # "complete" or "timeout"
    at: float


class AutoScaling:
    def __init__(
        self, region: Any, factory: Any, emit: Callable[[dict], None], knobs: AutoScalingKnobs | None = None
    ):
        self.region = region
        self.factory = factory
        self.emit = emit
        self.knobs = knobs or AutoScalingKnobs()
        self.lock = threading.RLock()
        self.pending: dict[str, Pending] = {}  # by instance id
        self.completed: list[Completed] = []
        # Called with each completion before its instance moves on (a scenario can look at the swarm
        # at the very moment a lifecycle action completes); exceptions are logged and ignored.
        self.listeners: list[Callable[[Completed], None]] = []
        self.launched: list[tuple[str, str, float]] = []  # (group, instance id, time)
        self.terminated: list[tuple[str, str, float]] = []
        self._outside: dict[str, float] = {}  # instance id -> when seen gone outside Auto Scaling
        # Set by the lab when it plays the load balancer (lab.forwarder.Deregistrations): scale-in first
        # deregisters the instance and waits out the target groups' delay, as AWS does.
        self.deregistrations: Any = None
        self.deregistered: list[tuple[str, float, float]] = []  # (instance id, began, ends)
        self._deregistering: dict[str, float] = {}  # instance id -> monotonic end of its delay
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-autoscaling", daemon=True)
        self._originals: dict[str, Callable] = {}

    @property
    def backend(self) -> Any:
        return self.region.backend("autoscaling")

    # -- installation -------------------------------------------------------------------------------
    def install(self) -> None:
        from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup
        from moto.autoscaling.responses import AutoScalingResponse
        from moto.core.responses import EmptyResult

        engine = self
        self._originals["replace"] = FakeAutoScalingGroup.replace_autoscaling_group_instances

        def set_desired_capacity(group: Any, new_capacity: int | None) -> None:
            group.desired_capacity = group.min_size if new_capacity is None else new_capacity
            engine.reconcile(group)

        def terminate_instance(backend: Any, instance_id: str, should_decrement: bool) -> Any:
            return engine.terminate_in_group(instance_id, should_decrement)

        def complete_lifecycle_action(resp: Any) -> Any:
            engine.complete(
                resp._get_param("AutoScalingGroupName"),
                resp._get_param("LifecycleHookName"),
                resp._get_param("LifecycleActionToken"),
                resp._get_param("InstanceId"),
                resp._get_param("LifecycleActionResult"),
            )
            return EmptyResult()

        def record_lifecycle_action_heartbeat(resp: Any) -> Any:
            engine.heartbeat(
                resp._get_param("AutoScalingGroupName"),
                resp._get_param("LifecycleHookName"),
                resp._get_param("LifecycleActionToken"),
                resp._get_param("InstanceId"),
            )
            return EmptyResult()

        def set_instance_health(backend: Any, instance_id: str, health_status: str) -> None:
            from moto.autoscaling.exceptions import ValidationError

            with engine.lock:
                found = engine._find(instance_id)
                if not found:
                    raise ValidationError(
                        f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
                    )
                found[1].health_status = health_status

        patches.setattr(FakeAutoScalingGroup, "set_desired_capacity", set_desired_capacity)
        patches.setattr(AutoScalingBackend, "set_instance_health", set_instance_health)
        patches.setattr(AutoScalingBackend, "terminate_instance", terminate_instance)
        patches.setattr(AutoScalingResponse, "complete_lifecycle_action", complete_lifecycle_action)
        patches.setattr(
            AutoScalingResponse, "record_lifecycle_action_heartbeat", record_lifecycle_action_heartbeat
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    # -- capacity -----------------------------------------------------------------------------------
    def hooks(self, group_name: str, transition: str) -> list[Any]:
        return [
            h
            for h in self.backend.lifecycle_hooks.values()
            if h.auto_scaling_group_name == group_name and h.lifecycle_transition == transition
        ]

    def reconcile(self, group: Any) -> None:
        with self.lock:
            desired = group.desired_capacity or 0
            live = [s for s in group.instance_states if s.lifecycle_state in COUNTED]
            if len(live) < desired:
                self._launch(group, desired - len(live))
            elif len(live) > desired:
                for state in self._choose_for_scale_in(group, live, len(live) - desired):
                    self._begin_terminate(group, state)

    def _choose_for_scale_in(self, group: Any, live: list[Any], count: int) -> list[Any]:
        candidates = [s for s in live if not s.protected_from_scale_in]
        # Instances not yet in service go first, then the group's termination policy.
        policies = list(getattr(group, "termination_policies", None) or ["Default"])
        newest_first = "NewestInstance" in policies
        ordered = sorted(
            enumerate(candidates),
            key=lambda p: (p[1].lifecycle_state == "InService", -p[0] if newest_first else p[0]),
        )
        return [s for _, s in ordered][:count]

    def _launch(self, group: Any, count: int) -> None:
        before = {s.instance.id for s in group.instance_states}
        tags = group.get_propagated_tags()
        for _ in range(count):
            self._launch_in_emptiest_zone(group, dict(tags))
        hooks = self.hooks(group.name, LAUNCHING)
        for state in group.instance_states:
            if state.instance.id in before:
                continue
            self.launched.append((group.name, state.instance.id, time.time()))
            if hooks:
                state.lifecycle_state = "Pending:Wait"
                self._hold(group, state.instance.id, LAUNCHING, hooks)
            else:
                state.lifecycle_state = "InService"

    def _launch_in_emptiest_zone(self, group: Any, tags: dict[str, str]) -> None:
        """One instance, in the subnet (one per zone in the lab) with the fewest of the group's live
        instances, the first listed on a tie: Auto Scaling keeps a group balanced over its zones.
        moto launches into the first subnet of VPCZoneIdentifier, so that one is listed first."""
        listed = group.vpc_zone_identifier
        subnets = [s for s in (listed or "").split(",") if s]
        if len(subnets) > 1:
            live = [s.instance.subnet_id for s in group.instance_states if s.lifecycle_state in COUNTED]
            emptiest = min(subnets, key=live.count)
            group.vpc_zone_identifier = ",".join([emptiest, *(s for s in subnets if s != emptiest)])
        try:
            self._originals["replace"](group, 1, tags)
        finally:
            group.vpc_zone_identifier = listed

    def _hold(self, group: Any, instance_id: str, transition: str, hooks: list[Any]) -> None:
        pending = Pending(instance_id, group.name, transition)
        now = time.monotonic()
        events = []
        for hook in hooks:
            timeout = float(hook.heartbeat_timeout) * self.knobs.heartbeat_scale
            action = HookAction(
                token=str(uuid.uuid4()),
                hook=hook.name,
                group=group.name,
                instance_id=instance_id,
                transition=transition,
                default_result=hook.default_result or "ABANDON",
                heartbeat_timeout=timeout,
                deadline=now + timeout,
            )
            pending.actions[hook.name] = action
            events.append(
                self.factory.lifecycle_action(
                    launching=transition == LAUNCHING,
                    group_name=group.name,
                    group_arn=group.arn,
                    hook_name=hook.name,
                    instance_id=instance_id,
                    token=action.token,
                    metadata=getattr(hook, "notification_metadata", None),
                )
            )
        self.pending[instance_id] = pending
        for event in events:
            self.emit(event)

    def _begin_terminate(self, group: Any, state: Any) -> None:
        if state.lifecycle_state.startswith("Terminating"):
            return
        old = self.pending.pop(state.instance.id, None)
        if old and old.transition == LAUNCHING:
            log.info("%s: launch action dropped, instance is terminating", state.instance.id)
        iid = state.instance.id
        if self.deregistrations is not None:
            arns = list(getattr(group, "target_group_arns", None) or [])
            delay = self.deregistrations.begin(self.region.backend("elbv2"), arns, iid)
            if delay > 0:
                # Out of the load balancer first; the terminate hook fires once the delay is over.
                state.lifecycle_state = "Terminating"
                self._deregistering[iid] = time.monotonic() + delay
                self.deregistered.append((iid, time.time(), time.time() + delay))
                return
        self._hook_terminate(group, state)

    def _hook_terminate(self, group: Any, state: Any) -> None:
        hooks = self.hooks(group.name, TERMINATING)
        if hooks:
            state.lifecycle_state = "Terminating:Wait"
            self._hold(group, state.instance.id, TERMINATING, hooks)
        else:
            self._finish_terminate(group, state)

    def _finish_terminate(self, group: Any, state: Any) -> None:
        state.lifecycle_state = "Terminating:Proceed"
        group.instance_states = [s for s in group.instance_states if s is not state]
        self.pending.pop(state.instance.id, None)
        self.terminated.append((group.name, state.instance.id, time.time()))
        ec2 = self.region.backend("ec2")
        if state.instance.state not in ("terminated", "shutting-down"):
            ec2.terminate_instances([state.instance.id])

    def terminate_in_group(self, instance_id: str, should_decrement: bool) -> Any:
        from moto.autoscaling.exceptions import ValidationError
        from moto.autoscaling.models import TerminateInstanceActivity

        with self.lock:
            found = self._find(instance_id)
            if not found:
                raise ValidationError(
                    f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
                )
            group, state = found
            original = group.desired_capacity
            if should_decrement and not state.lifecycle_state.startswith("Terminating"):
                desired, least = group.desired_capacity or 0, group.min_size or 0
                if desired <= least:
                    raise ValidationError(
                        f"Currently, desiredSize equals minSize ({least}). Terminating instance without "
                        "replacement will violate group's min size constraint. Either set "
                        "shouldDecrementDesiredCapacity flag to false or lower group's min size."
                    )
                group.desired_capacity = desired - 1
            self._begin_terminate(group, state)
            self.reconcile(group)
            return TerminateInstanceActivity(state.instance, original)

    def _find(self, instance_id: str) -> tuple[Any, Any] | None:
        for group in self.backend.autoscaling_groups.values():
            for state in group.instance_states:
                if state.instance.id == instance_id:
                    return group, state
        return None

    # -- lifecycle actions --------------------------------------------------------------------------
    def _action(
        self, group_name: str, hook_name: str, token: str | None, instance_id: str | None
    ) -> HookAction:
        from moto.autoscaling.exceptions import ValidationError

        for pending in self.pending.values():
            for action in pending.actions.values():
                if action.group != group_name or action.hook != hook_name or action.result:
                    continue
                if (token and action.token == token) or (not token and action.instance_id == instance_id):
                    return action
        if token:
            raise ValidationError(f"No active Lifecycle Action found with token {token}")
        raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")

    def complete(
        self,
        group_name: str,
        hook_name: str,
        token: str | None,
        instance_id: str | None,
        result: str | None,
        how: str = "complete",
    ) -> None:
        from moto.autoscaling.exceptions import ValidationError

        if result not in ("CONTINUE", "ABANDON"):
            raise ValidationError("LifecycleActionResult must be CONTINUE or ABANDON")
        with self.lock:
            action = self._action(group_name, hook_name, token, instance_id)
            self._resolve(action, result, how)

    def heartbeat(self, group_name: str, hook_name: str, token: str | None, instance_id: str | None) -> None:
        with self.lock:
            action = self._action(group_name, hook_name, token, instance_id)
            action.deadline = time.monotonic() + action.heartbeat_timeout

    def _resolve(self, action: HookAction, result: str, how: str) -> None:
        action.result = result
        done = Completed(
            action.instance_id, action.group, action.transition, action.hook, result, how, time.time()
        )
        self.completed.append(done)
        for listener in list(self.listeners):
            try:
                listener(done)
            except Exception:
                log.exception("lifecycle completion listener")
        log.info("%s %s %s: %s (%s)", action.group, action.instance_id, action.transition, result, how)
        pending = self.pending.get(action.instance_id)
        if not pending:
            return
        if result == "ABANDON":
            pending.abandoned = True
        if any(a.result is None for a in pending.actions.values()):
            return
        del self.pending[action.instance_id]
        found = self._find(action.instance_id)
        if not found:
            return
        group, state = found
        if pending.transition == LAUNCHING:
            if pending.abandoned:
                state.lifecycle_state = "Terminating"
                self._finish_terminate(group, state)
                self.reconcile(group)
            else:
                state.lifecycle_state = "InService"
        else:
            self._finish_terminate(group, state)

    # -- the clock ----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.knobs.tick):
            try:
                self.tick()
            except Exception:
                log.exception("autoscaling tick")

    def tick(self) -> None:
        now = time.monotonic()
        with self.lock:
            for iid, until in list(self._deregistering.items()):
                if now >= until:
                    del self._deregistering[iid]
                    found = self._find(iid)
                    if found:
                        self._hook_terminate(*found)
            for pending in list(self.pending.values()):
                for action in list(pending.actions.values()):
                    if action.result is None and now >= action.deadline:
                        self._resolve(action, action.default_result, "timeout")
            for group in list(self.backend.autoscaling_groups.values()):
                changed = False
                for state in list(group.instance_states):
                    iid = state.instance.id
                    gone = state.instance.state in ("shutting-down", "terminated", "stopping", "stopped")
                    if gone and not state.lifecycle_state.startswith("Terminating"):
                        first = self._outside.setdefault(iid, now)
                        if now - first >= self.knobs.health_check_delay:
                            log.info("%s: terminated outside Auto Scaling, replacing", iid)
                            state.health_status = "Unhealthy"
                            self._outside.pop(iid, None)
                            group.instance_states = [s for s in group.instance_states if s is not state]
                            self.pending.pop(iid, None)
                            self.terminated.append((group.name, iid, time.time()))
                            changed = True
                    elif state.health_status == "Unhealthy" and state.lifecycle_state == "InService":
                        log.info("%s: unhealthy, replacing", iid)
                        self._begin_terminate(group, state)
                        changed = True
                if changed or self._below_capacity(group):
                    self.reconcile(group)

    def _below_capacity(self, group: Any) -> bool:
        live = [s for s in group.instance_states if s.lifecycle_state in COUNTED]
        return len(live) < (group.desired_capacity or 0)

    def snapshot(self) -> dict[str, list[tuple[str, str, str]]]:
        """group -> [(instance id, lifecycle state, health)], for reports and assertions."""
        with self.lock:
            return {
                g.name: [(s.instance.id, s.lifecycle_state, s.health_status) for s in g.instance_states]
                for g in self.backend.autoscaling_groups.values()
            }
