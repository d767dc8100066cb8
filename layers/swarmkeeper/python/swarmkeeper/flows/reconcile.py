"""Reconcile: compare the swarm with the cluster's instances and clean up, one pass at a time.

A pass is two invocations, so no Lambda waits for a command:

1. ``start`` (schedule, alarm, or the exit flow wanting a fresh view) sends describe-swarm to a
   Reachable, Ready manager of the latest view (any joined manager when there is none yet), with the
   output bucket set: only managers may write there, and a large swarm's list is longer than the
   24,000 characters Run Command keeps. ``op#reconcile`` keeps one pass in flight at a time.
2. ``finished`` (its status event) reads the node list (inline, or from S3 when it was cut), reads
   the instances (one paginated DescribeInstances) and the operations in flight (one paginated Scan),
   asks ``domain.reconcile.plan_reconcile``, saves ``view#cluster``, publishes metrics and alerts, and
   carries the plan out: remove-node per dead node (at most ``MAX_REMOVALS_PER_PASS``; the rest next
   pass), the plan's one demotion, SetInstanceHealth Unhealthy for nodes Down past the grace period,
   stuck operations finished or rolled back. manager-addresses is refreshed by describe-swarm's own
   script (the control plane cannot write parameters).

A pass costs a constant number of AWS calls, whatever the cluster's size (see the 1,000-node test).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from swarmkeeper.adapters.bus import EventBus
from swarmkeeper.adapters.commands import AgentNotRegistered, Invocation, RunCommands
from swarmkeeper.adapters.instances import Ec2Instances
from swarmkeeper.adapters.lifecycle import LifecycleActions
from swarmkeeper.adapters.outputs import INLINE_LIMIT, CommandOutputs, key_from_url, stdout_key
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.adapters.steps import StepQueue
from swarmkeeper.domain import outputs
from swarmkeeper.domain.kernel import BusEvent, Decision, Outcome
from swarmkeeper.domain.leave import DEAD_NODE_REMOVED, FRESH_VIEW, MANAGER_DEMOTED, REMOVE, LeaveStepDue
from swarmkeeper.domain.models import ClusterIdentity, InstanceFacts, LeaveStage, LifecycleResult, Role, Stage
from swarmkeeper.domain.reconcile import (
    InstanceView,
    OpKind,
    OpView,
    ReconcilePlan,
    ReconcileSettings,
    StuckAction,
    StuckOperation,
    plan_reconcile,
)
from swarmkeeper.domain.swarm import SwarmNode, SwarmViewError, parse_describe_swarm
from swarmkeeper.domain.view import ClusterView
from swarmkeeper.flows.managers import joined_managers_healthy_first
from swarmkeeper.settings import RuntimeSettings

logger = Logger(child=True)
metrics = Metrics()  # shares the handler's metric set (Powertools), flushed by its log_metrics

DESCRIBE = "describe-swarm"
ALARM_RAISED = "Alarm Raised"
OUTPUT_PREFIX = DESCRIBE
COMMENT = "swarmkeeper reconcile"
RECONCILE_TTL_SECONDS = 240  # a lost status event blocks reconciles at most this long
MAX_ATTEMPTS = 3  # managers tried for one pass's describe-swarm
MAX_REMOVALS_PER_PASS = 10  # remove-node is one SendCommand per node: cap, continue next pass
MAX_MARKS_PER_PASS = 5
MAX_STUCK_PER_PASS = 5
# Join ops are stuck past the launch hook's budget (agent wait + init lock + bootstrap + verify).
JOIN_BUDGET_EXTRA_SECONDS = 1080 + 900 + 120
_RM_COMMENT = re.compile(r"^swarmkeeper reconcile rm ([a-z0-9]{25}) (i-[0-9a-f]+|-) (manager|worker)$")


def removal_comment(node_id: str, instance_id: str | None, role: Role) -> str:
    return f"swarmkeeper reconcile rm {node_id} {instance_id or '-'} {role}"


def parse_removal_comment(comment: str) -> tuple[str, str, str] | None:
    m = _RM_COMMENT.match(comment)
    return (m.group(1), "" if m.group(2) == "-" else m.group(2), m.group(3)) if m else None


@dataclass
class ReconcileAdapters:
    instances: Ec2Instances
    lifecycle: LifecycleActions
    commands: RunCommands
    outputs: CommandOutputs
    state: StateTable
    bus: EventBus
    steps: StepQueue | None = None  # wakes manager removals waiting for the view this pass takes


class Reconcile:
    def __init__(
        self,
        settings: RuntimeSettings,
        adapters: ReconcileAdapters,
        clock: Callable[[], float] = time.time,
        plan_settings: ReconcileSettings | None = None,
    ):
        self.settings = settings
        self.a = adapters
        self.clock = clock
        self.plan_settings = plan_settings or ReconcileSettings()
        self.identity = ClusterIdentity(
            settings.cluster_name, settings.manager_group_name, settings.worker_group_name
        )

    # --- 1. start ----------------------------------------------------------------------------

    def start(self, correlation_id: str, why: str = "schedule", exclude: Collection[str] = ()) -> Decision:
        a, s, now = self.a, self.settings, self.clock()
        view = a.state.get_view()
        candidates = view.command_managers(exclude) if view is not None else ()
        if not candidates:
            joined = joined_managers_healthy_first(a.instances, a.state, s.manager_group_name)
            candidates = tuple(m for m in joined if m not in exclude)
        if not candidates:
            return Decision(Outcome.IGNORE, "no joined manager to describe the swarm from")
        pending = {
            "command_id": "",
            "target": "",
            "correlation_id": correlation_id,
            "why": why,
            "excluded": list(exclude),
            "sent_at": now,
            "expires_at": now + RECONCILE_TTL_SECONDS,
        }
        if not a.state.start_reconcile(pending, now):
            return Decision(Outcome.IGNORE, "a reconcile pass is already in flight")
        params = {"ParameterPrefix": s.parameter_prefix, "Region": s.region}
        for target in candidates:
            try:
                command_id = a.commands.send(
                    f"{s.document_prefix}{DESCRIBE}",
                    target,
                    params,
                    COMMENT,
                    output=(s.command_output_bucket, OUTPUT_PREFIX),
                )
            except AgentNotRegistered:
                logger.warning(
                    "manager's SSM agent is not registered; trying the next", extra={"target": target}
                )
                continue
            a.state.save_reconcile({**pending, "command_id": command_id, "target": target})
            return Decision(Outcome.RECONCILE, f"{why}: describe-swarm sent to {target}")
        a.state.end_reconcile("")
        return Decision(Outcome.IGNORE, "no manager could take the describe-swarm command")

    def on_alarm(self, alarm_name: str, state: str, correlation_id: str) -> Decision:
        """One of the stack's alarms changed state: in ALARM, tell operators and reconcile at once."""
        if not alarm_name.startswith(f"swarmkeeper-{self.settings.cluster_name}-"):
            return Decision(Outcome.IGNORE, f"alarm {alarm_name} is not one of this stack's")
        if state != "ALARM":
            return Decision(Outcome.IGNORE, f"alarm {alarm_name} is {state}")
        self.a.bus.publish(self._event(ALARM_RAISED, f"{alarm_name} is in ALARM", correlation_id))
        started = self.start(correlation_id, f"alarm {alarm_name}")
        return Decision(Outcome.ALARM, f"{alarm_name} in ALARM; {started.reason}")

    # --- 2. the node list is in ------------------------------------------------------------

    def finished(self, command_id: str, instance_id: str, status: str) -> Decision:
        a = self.a
        pending = a.state.get_reconcile()
        if pending is None or pending.get("command_id") != command_id:
            return Decision(Outcome.IGNORE, f"stale describe-swarm command {command_id}")
        a.state.end_reconcile(command_id)
        excluded = [*pending.get("excluded", []), instance_id]
        correlation_id = pending.get("correlation_id", "")
        if status != "Success":
            return self._retry(correlation_id, excluded, f"describe-swarm {status} on {instance_id}")
        nodes = self._read_nodes(command_id, instance_id)
        if isinstance(nodes, str):
            return self._retry(correlation_id, excluded, nodes)
        instances = a.instances.group_instances(self.identity.groups)
        ops = a.state.open_ops()
        previous = a.state.get_view()
        plan = self._plan(nodes, instances, ops, previous)
        view = self._view(nodes, instances, plan, float(pending.get("sent_at", self.clock())))
        a.state.save_view(view)
        self._wake_removals(ops, view)
        self._publish_metrics(plan)
        for alert in plan.alerts:
            reason = f"{alert.reason}. Runbook: {alert.runbook}"
            a.bus.publish(self._event(str(alert.detail_type), reason, correlation_id))
        done = self._execute(plan, view, instance_id, correlation_id)
        m = plan.metrics
        summary = f"{len(nodes)} nodes, {m.nodes_down} down, quorum margin {m.quorum_margin}; " + ", ".join(
            done or ["nothing to do"]
        )
        return Decision(Outcome.RECONCILED, summary)

    def removal_finished(self, status: str, invocation: Invocation, correlation_id: str) -> Decision:
        """A remove-node this flow sent for a dead node (``invocation``: its result on the manager)."""
        subject = parse_removal_comment(invocation.comment)
        if subject is None:
            return Decision(Outcome.IGNORE, "remove-node command was not sent by swarmkeeper")
        node_id, dead_instance, role = subject
        removed = outputs.parse_removed(invocation.stdout) == node_id
        if status != "Success" or not removed:
            detail = outputs.excerpt(invocation.stderr or invocation.stdout)
            logger.error(
                "dead node removal failed; the next pass retries",
                extra={"node_id": node_id, "status": status, "detail": detail},
            )
            return Decision(
                Outcome.REMOVE_FAILED, f"remove-node {status} for {node_id}: {detail}".rstrip(": ")
            )
        if role == "manager":
            self.a.bus.publish(
                self._event(
                    MANAGER_DEMOTED,
                    "dead manager demoted and removed",
                    correlation_id,
                    dead_instance,
                    node_id,
                    role,
                )
            )
        self.a.bus.publish(
            self._event(
                DEAD_NODE_REMOVED, "its instance is gone", correlation_id, dead_instance, node_id, role
            )
        )
        if dead_instance:
            self.a.state.forget_node(dead_instance)
        return Decision(Outcome.REMOVED, f"dead node {node_id} removed")

    # --- helpers -----------------------------------------------------------------------------

    def _wake_removals(self, ops: list[dict[str, Any]], view: ClusterView) -> None:
        """A manager removal that asked for a fresh view goes on as soon as it is saved, not at its
        next delayed step (view_wait_seconds later). The step carries the op's version: if the op
        moved on meanwhile it is ignored as stale, and so is the delayed one after this one ran."""
        if self.a.steps is None:
            return
        for item in ops:
            if item.get("kind") != "leave" or item.get("stage") != LeaveStage.REMOVING:
                continue
            if item.get("role") != Role.MANAGER:
                continue
            _, leave = self.a.state.get_ops(item["pk"].removeprefix("op#"))
            if (
                leave is None
                or leave.command_id
                or leave.waiting_for != FRESH_VIEW
                or view.taken_at < leave.view_wanted_at
            ):
                continue
            self.a.steps.schedule(LeaveStepDue(leave.instance_id, leave.version, leave.correlation_id), 0)
            logger.info("manager removal woken by the fresh view", extra={"instance_id": leave.instance_id})

    def _retry(self, correlation_id: str, excluded: list[str], why: str) -> Decision:
        logger.error("reconcile pass failed", extra={"reason": outputs.redact(why)})
        if len(excluded) >= MAX_ATTEMPTS:
            return Decision(Outcome.RECONCILE_FAILED, f"{why}; giving up until the next pass")
        retried = self.start(correlation_id, "retry", exclude=excluded)
        return replace(retried, reason=f"{why}; {retried.reason}")

    def _read_nodes(self, command_id: str, instance_id: str) -> list[SwarmNode] | str:
        """The node list, or why it could not be read."""
        invocation = self.a.commands.invocation(command_id, instance_id)
        text = invocation.stdout if invocation else ""
        try:
            return parse_describe_swarm(text)
        except SwarmViewError as err:
            cut = len(text) >= INLINE_LIMIT - 1000 or bool(invocation and invocation.stdout_url)
            if not cut:
                return f"describe-swarm output unusable: {err}"
        bucket = self.settings.command_output_bucket
        url = invocation.stdout_url if invocation else ""
        key = key_from_url(url, bucket) or stdout_key(OUTPUT_PREFIX, command_id, instance_id)
        full = self.a.outputs.read(key)
        if full is None:
            return f"describe-swarm output was cut and s3://{bucket}/{key} is missing"
        try:
            return parse_describe_swarm(full)
        except SwarmViewError as err:
            return f"describe-swarm output in S3 unusable: {err}"

    def _plan(
        self,
        nodes: list[SwarmNode],
        instances: list[InstanceFacts],
        ops: list[dict[str, Any]],
        previous: ClusterView | None,
    ) -> ReconcilePlan:
        now = self.clock()
        down_since = {k: _dt(v) for k, v in (previous.down_since if previous else {}).items()}
        return plan_reconcile(
            nodes,
            self._instance_views(instances),
            self._op_views(ops, now),
            _dt(now),
            self.plan_settings,
            down_since,
        )

    def _instance_views(self, instances: list[InstanceFacts]) -> list[InstanceView]:
        views = []
        for i in instances:
            role = self.identity.role_of(i.tags)
            if role is None:
                continue
            views.append(
                InstanceView(
                    i.instance_id,
                    i.state,
                    i.private_ip,
                    role,
                    i.node_id,
                    i.launched_at or datetime.fromtimestamp(0, UTC),
                )
            )
        return views

    def _op_views(self, items: list[dict[str, Any]], now: float) -> list[OpView]:
        join_budget = self.settings.agent_wait_seconds + JOIN_BUDGET_EXTRA_SECONDS
        out = []
        for item in items:
            kind, stage = item.get("kind"), item.get("stage", "")
            started = float(item.get("started_at", now))
            if kind == "join" and stage not in (Stage.JOINED, Stage.FAILED):
                deadline = started + join_budget
            elif kind == "leave" and stage != "done":
                deadline = float(item.get("deadline", started))
            else:
                continue
            out.append(
                OpView(item["pk"].removeprefix("op#"), OpKind(kind), stage, _dt(started), _dt(deadline))
            )
        return out

    def _view(
        self, nodes: list[SwarmNode], instances: list[InstanceFacts], plan: ReconcilePlan, taken_at: float
    ) -> ClusterView:
        live = [i for i in instances if not i.gone]
        by_tag = {i.node_id: i.instance_id for i in live if i.node_id}
        by_ip = {i.private_ip: i.instance_id for i in live if i.private_ip}
        managers = tuple(n for n in nodes if n.is_manager)
        mapping = {}
        for n in managers:
            iid = by_tag.get(n.node_id) or by_ip.get(n.address)
            if iid:
                mapping[n.node_id] = iid
        return ClusterView(
            taken_at=taken_at,
            managers=managers,
            manager_instances=mapping,
            down_since={k: v.timestamp() for k, v in plan.down_since.items()},
            nodes=len(nodes),
        )

    def _publish_metrics(self, plan: ReconcilePlan) -> None:
        for name, value in plan.metrics.as_dict().items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def _execute(self, plan: ReconcilePlan, view: ClusterView, ran_on: str, correlation_id: str) -> list[str]:
        a, done = self.a, []
        for stuck in plan.stuck_operations[:MAX_STUCK_PER_PASS]:
            done.append(self._stuck(stuck))
        command_manager = plan.command_manager
        target = view.manager_instances.get(command_manager.node_id) if command_manager else None
        target = target or ran_on
        for removal in plan.removals[:MAX_REMOVALS_PER_PASS]:
            params = {
                "NodeId": removal.node_id,
                "ParameterPrefix": self.settings.parameter_prefix,
                "Region": self.settings.region,
            }
            try:
                a.commands.send(
                    f"{self.settings.document_prefix}{REMOVE}",
                    target,
                    params,
                    removal_comment(removal.node_id, removal.instance_id, removal.role),
                )
            except AgentNotRegistered:
                logger.warning(
                    "command manager is gone; the next pass picks another", extra={"target": target}
                )
                break
            done.append(f"remove {removal.node_id} ({removal.reason})")
        if len(plan.removals) > MAX_REMOVALS_PER_PASS:
            done.append(f"{len(plan.removals) - MAX_REMOVALS_PER_PASS} removals left for the next pass")
        for mark in plan.mark_unhealthy[:MAX_MARKS_PER_PASS]:
            marked = a.lifecycle.mark_unhealthy(mark.instance_id)
            logger.warning(
                "instance marked Unhealthy",
                extra={"instance_id": mark.instance_id, "reason": mark.reason, "marked": marked},
            )
            metrics.add_metric(name="InstancesMarkedUnhealthy", unit=MetricUnit.Count, value=1)
            done.append(f"mark {mark.instance_id} unhealthy")
        for deferred in plan.deferred:
            logger.info("deferred", extra={"subject": deferred.subject, "reason": deferred.reason})
        return done

    def _stuck(self, stuck: StuckOperation) -> str:
        """Finish or roll back an operation past its deadline (``domain.reconcile`` decided which)."""
        a, s = self.a, self.settings
        join, leave = a.state.get_ops(stuck.instance_id)
        now = self.clock()
        if leave is not None:
            if leave.group:
                a.lifecycle.complete(
                    leave.group, s.terminate_hook_name, leave.instance_id, str(LifecycleResult.CONTINUE)
                )
            if leave.role is Role.MANAGER:
                a.state.release_manager_lock(leave.instance_id)
            a.state.save_leave(
                replace(
                    leave,
                    stage=LeaveStage.DONE,
                    version=leave.version + 1,
                    reason=stuck.reason,
                    expires_at=now + 86_400,
                )
            )
            return f"finish leave of {stuck.instance_id}"
        if join is None:
            return f"{stuck.instance_id}: nothing stuck any more"
        if stuck.action is StuckAction.FINISH and stuck.node_id:
            a.instances.tag_node_id(join.instance_id, stuck.node_id)
            a.state.record_node(join.instance_id, stuck.node_id, str(join.role), now)
            if join.group:
                a.lifecycle.complete(join.group, s.launch_hook_name, join.instance_id, "CONTINUE")
            closed = replace(join, stage=Stage.JOINED, node_id=stuck.node_id, reason=stuck.reason)
        else:
            if stuck.destructive:
                completed = bool(join.group) and a.lifecycle.complete(
                    join.group or "", s.launch_hook_name, join.instance_id, "ABANDON"
                )
                if not completed:
                    a.lifecycle.mark_unhealthy(join.instance_id)
            closed = replace(join, stage=Stage.FAILED, reason=stuck.reason)
        a.state.save_op(replace(closed, version=join.version + 1, waiting_for="", expires_at=now + 86_400))
        return f"{stuck.action} join of {stuck.instance_id}"

    def _event(
        self,
        detail_type: str,
        reason: str,
        correlation_id: str,
        instance_id: str = "",
        node_id: str = "",
        role: str = "",
    ) -> BusEvent:
        return BusEvent(
            detail_type, self.settings.cluster_name, instance_id, node_id, role, reason, correlation_id
        )


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
