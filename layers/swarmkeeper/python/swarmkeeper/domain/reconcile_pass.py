"""One reconcile pass, step by step: what the reconcile flow does on each of its stimuli, decided.

A pass is two invocations, so no Lambda waits for a command:

1. a request (schedule, alarm, the exit flow wanting a fresh view) sends describe-swarm to a
   Reachable, Ready manager of the latest view (any joined manager when there is none yet), with the
   output bucket set: only managers may write there, and a large swarm's list is longer than the
   24,000 characters Run Command keeps. ``op#reconcile`` keeps one pass in flight at a time.
2. its status: ``plan_reconcile`` (``domain.reconcile``) decides on the node list, the instances and
   the operations in flight; the decision saves ``view#cluster``, wakes the manager removals that
   waited for it, publishes metrics and alerts, and carries the plan out: stuck operations finished
   or rolled back, remove-node per dead node (at most ``max_removals``; the rest next pass),
   SetInstanceHealth Unhealthy for nodes Down past the grace period. A describe-swarm that failed is
   retried on another manager, up to ``max_attempts`` managers per pass.

A removal's own status (remove-node sent by a pass for a dead node) publishes Dead Node Removed.
Nothing here touches AWS.
"""

from __future__ import annotations

import re
from dataclasses import field, replace
from datetime import UTC, datetime

from swarmkeeper.domain import outputs
from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.kernel import (
    TERMINAL_SUCCESS,
    BusEvent,
    Decision,
    DetailType,
    Outcome,
    Publish,
    detail_type,
    ignore,
)
from swarmkeeper.domain.leave import DEAD_NODE_REMOVED, MANAGER_DEMOTED
from swarmkeeper.domain.leave_types import LeaveStepDue, ScheduleLeaveStep
from swarmkeeper.domain.manager_removal import FRESH_VIEW
from swarmkeeper.domain.models import (
    ClusterIdentity,
    InstanceFacts,
    LeaveOp,
    OpKind,
    OpSummary,
    ReconcilePass,
    Role,
    Stage,
)
from swarmkeeper.domain.names import ClusterNames
from swarmkeeper.domain.reconcile import (
    InstanceState,
    InstanceView,
    NodeRemoval,
    OpView,
    ReconcilePlan,
    ReconcileSettings,
    StuckOperation,
    SwarmMetrics,
    UnhealthyMark,
    plan_reconcile,
)
from swarmkeeper.domain.swarm import SwarmNode
from swarmkeeper.domain.view import ClusterView

DESCRIBE = "describe-swarm"
ALARM_RAISED = detail_type("Alarm Raised")
_RM_COMMENT = re.compile(r"swarmkeeper reconcile rm ([a-z0-9]{25}) (i-[0-9a-f]+|-) (manager|worker)")


def removal_comment(node_id: str, instance_id: str | None, role: Role) -> str:
    return f"swarmkeeper reconcile rm {node_id} {instance_id or '-'} {role}"


def parse_removal_comment(comment: str) -> tuple[str, str, str] | None:
    """(node id, dead instance id or "", role) of a remove-node a pass sent; None for any other."""
    m = _RM_COMMENT.fullmatch(comment)
    return (m.group(1), "" if m.group(2) == "-" else m.group(2), m.group(3)) if m else None


@frozen
class ReconcilePolicy:
    identity: ClusterIdentity
    join_budget_seconds: float  # a join op is stuck past this (agent wait + init lock + bootstrap + verify)
    plan: ReconcileSettings = field(default_factory=ReconcileSettings)
    ttl_seconds: int = 240
    max_attempts: int = 3  # managers tried for one pass's describe-swarm
    max_removals: int = 10  # remove-node is one SendCommand per node: cap, continue next pass
    max_marks: int = 5
    max_stuck: int = 5
    closed_op_seconds: int = 86_400

    @property
    def alarm_names(self) -> frozenset[str]:
        """The stack's alarms, matched whole: another cluster's (swarmkeeper-<cluster>-2-...) or anyone's
        alarm with a similar name starts nothing."""
        return frozenset(ClusterNames(self.identity.name).alarms)


# ------------------------------------------------------------------------------------- stimuli


@frozen
class PassRequested:
    correlation_id: str
    why: str = "schedule"
    exclude: tuple[str, ...] = ()  # managers not to send describe-swarm to


@frozen
class DescribeNotDelivered:
    """SendCommand said InvalidInstanceId for every manager in ``tried``: try the next one."""

    op: ReconcilePass
    tried: tuple[str, ...]
    after: str = ""  # what went wrong before, when this is a retry


@frozen
class DescribeFinished:
    command_id: str
    instance_id: str  # the manager it ran on
    status: str


@frozen
class AlarmChanged:
    alarm_name: str
    state: str
    correlation_id: str


@frozen
class RemovalFinished:
    """A remove-node's status, with what its invocation said (``comment`` names what it removed)."""

    status: str
    comment: str
    stdout: str
    stderr: str
    correlation_id: str


ReconcileStimulus = PassRequested | DescribeNotDelivered | DescribeFinished | AlarmChanged | RemovalFinished


@frozen
class ReconcileFacts:
    op: ReconcilePass | None = None  # the pass in flight
    candidates: tuple[str, ...] = ()  # managers that may run describe-swarm, best first
    nodes: tuple[SwarmNode, ...] = ()  # the finished describe-swarm's node list
    unreadable: str = ""  # why that list could not be read ("" when it could)
    instances: tuple[InstanceFacts, ...] = ()
    ops: tuple[OpSummary, ...] = ()  # operations in flight
    previous: ClusterView | None = None  # the view the last pass saved
    removals_waiting: tuple[LeaveOp, ...] = ()  # manager removals waiting for a fresh view


# ------------------------------------------------------------------------------------- actions


@frozen
class StartPass:
    op: ReconcilePass  # conditional: no pass in flight (or it expired); else the run stops
    after: str = ""


@frozen
class SendDescribe:
    target: str
    op: ReconcilePass  # saved with the command id and target once SendCommand returns
    tried: tuple[str, ...] = ()  # managers that refused delivery before this one
    after: str = ""


@frozen
class EndPass:
    command_id: str  # conditional on the stored pass's command id


@frozen
class SaveView:
    view: ClusterView


@frozen
class PublishMetrics:
    metrics: SwarmMetrics


@frozen
class SettleStuck:
    stuck: StuckOperation  # finish or roll back whichever op the instance has now


@frozen
class RemoveDeadNodes:
    target: str  # the manager remove-node runs on; when it is gone the rest wait for the next pass
    removals: tuple[NodeRemoval, ...]


@frozen
class MarkUnhealthy:
    mark: UnhealthyMark


@frozen
class ForgetNode:
    instance_id: str


@frozen
class LogFailure:
    message: str
    details: tuple[tuple[str, str], ...]


@frozen
class LogDeferred:
    subject: str
    reason: str


ReconcileAction = (
    StartPass
    | SendDescribe
    | EndPass
    | SaveView
    | ScheduleLeaveStep
    | PublishMetrics
    | Publish
    | SettleStuck
    | RemoveDeadNodes
    | MarkUnhealthy
    | ForgetNode
    | LogFailure
    | LogDeferred
)
ReconcileDecision = Decision[ReconcileAction]


def decide_reconcile(
    stimulus: ReconcileStimulus, facts: ReconcileFacts, now: float, policy: ReconcilePolicy
) -> ReconcileDecision:
    match stimulus:
        case PassRequested():
            return _start(stimulus.correlation_id, stimulus.why, stimulus.exclude, facts, now, policy)
        case DescribeNotDelivered():
            return _send_next(stimulus.op, stimulus.tried, facts, stimulus.after)
        case DescribeFinished():
            return _on_describe_finished(stimulus, facts, now, policy)
        case AlarmChanged():
            return _on_alarm(stimulus, policy)
        case RemovalFinished():
            return _on_removal_finished(stimulus, policy)
    raise TypeError(f"unknown stimulus {stimulus!r}")


def _start(
    correlation_id: str,
    why: str,
    exclude: tuple[str, ...],
    facts: ReconcileFacts,
    now: float,
    policy: ReconcilePolicy,
    after: str = "",
) -> ReconcileDecision:
    if not facts.candidates:
        return ignore(_after(after, "no joined manager to describe the swarm from"))
    pending = ReconcilePass("", "", correlation_id, why, exclude, now, now + policy.ttl_seconds)
    target = facts.candidates[0]
    return Decision(
        Outcome.RECONCILE,
        _after(after, f"{why}: {DESCRIBE} sent to {target}"),
        (StartPass(pending, after), SendDescribe(target, pending, (), after)),
    )


def _send_next(
    pending: ReconcilePass, tried: tuple[str, ...], facts: ReconcileFacts, after: str
) -> ReconcileDecision:
    target = next((c for c in facts.candidates if c not in tried), None)
    if target is None:
        return ignore(_after(after, f"no manager could take the {DESCRIBE} command"), (EndPass(""),))
    reason = _after(after, f"{pending.why}: {DESCRIBE} sent to {target}")
    return Decision(Outcome.RECONCILE, reason, (SendDescribe(target, pending, tried, after),))


def _on_describe_finished(
    s: DescribeFinished, facts: ReconcileFacts, now: float, policy: ReconcilePolicy
) -> ReconcileDecision:
    pending = facts.op
    if pending is None or pending.command_id != s.command_id:
        return ignore(f"stale {DESCRIBE} command {s.command_id}")
    ended = EndPass(s.command_id)
    why = f"{DESCRIBE} {s.status} on {s.instance_id}" if s.status != TERMINAL_SUCCESS else facts.unreadable
    if why:
        # Another manager, unless this pass has tried enough of them.
        excluded = (*pending.excluded, s.instance_id)
        failed = LogFailure("reconcile pass failed", (("reason", outputs.redact(why)),))
        if len(excluded) >= policy.max_attempts:
            reason = f"{why}; giving up until the next pass"
            return Decision(Outcome.RECONCILE_FAILED, reason, (ended, failed))
        retry = _start(pending.correlation_id, "retry", excluded, facts, now, policy, after=why)
        return replace(retry, actions=(ended, failed, *retry.actions))
    plan = plan_reconcile(
        facts.nodes,
        instance_views(facts.instances, policy.identity),
        op_views(facts.ops, now, policy.join_budget_seconds),
        _dt(now),
        policy.plan,
        {k: _dt(v) for k, v in (facts.previous.down_since if facts.previous else {}).items()},
    )
    view = cluster_view(facts.nodes, facts.instances, plan, taken_at=pending.sent_at)
    woken = tuple(
        ScheduleLeaveStep(LeaveStepDue(leave.instance_id, leave.version, leave.correlation_id), 0)
        for leave in facts.removals_waiting
        if view.taken_at >= leave.view_wanted_at
    )
    alerts = tuple(
        Publish(_event(policy, a.detail_type, f"{a.reason}. Runbook: {a.runbook}", pending.correlation_id))
        for a in plan.alerts
    )
    carried, done = _carry_out(plan, view, s.instance_id, policy)
    m = plan.metrics
    summary = f"{len(facts.nodes)} nodes, {m.nodes_down} down, quorum margin {m.quorum_margin}; " + ", ".join(
        done or ["nothing to do"]
    )
    actions = (ended, SaveView(view), *woken, PublishMetrics(plan.metrics), *alerts, *carried)
    return Decision(Outcome.RECONCILED, summary, actions)


def _carry_out(
    plan: ReconcilePlan, view: ClusterView, ran_on: str, policy: ReconcilePolicy
) -> tuple[tuple[ReconcileAction, ...], list[str]]:
    """The plan's actions, capped per pass, in order: stuck operations, removals, Unhealthy marks."""
    actions: list[ReconcileAction] = []
    done: list[str] = []
    for stuck in plan.stuck_operations[: policy.max_stuck]:
        actions.append(SettleStuck(stuck))
        done.append(f"{stuck.action} {stuck.kind} of {stuck.instance_id}")
    removals = plan.removals[: policy.max_removals]
    if removals:
        manager = plan.command_manager
        target = (view.manager_instances.get(manager.node_id) if manager else None) or ran_on
        actions.append(RemoveDeadNodes(target, removals))
        done.extend(f"remove {r.node_id} ({r.reason})" for r in removals)
    if len(plan.removals) > policy.max_removals:
        done.append(f"{len(plan.removals) - policy.max_removals} removals left for the next pass")
    for mark in plan.mark_unhealthy[: policy.max_marks]:
        actions.append(MarkUnhealthy(mark))
        done.append(f"mark {mark.instance_id} unhealthy")
    actions.extend(LogDeferred(d.subject, d.reason) for d in plan.deferred)
    return tuple(actions), done


def _on_alarm(s: AlarmChanged, policy: ReconcilePolicy) -> ReconcileDecision:
    """One of the stack's alarms in ALARM: operators are told (the flow then starts a pass)."""
    if s.alarm_name not in policy.alarm_names:
        return ignore(f"alarm {s.alarm_name} is not one of this stack's")
    if s.state != "ALARM":
        return ignore(f"alarm {s.alarm_name} is {s.state}")
    raised = _event(policy, ALARM_RAISED, f"{s.alarm_name} is in ALARM", s.correlation_id)
    return Decision(Outcome.ALARM, f"{s.alarm_name} in ALARM", (Publish(raised),))


def _on_removal_finished(s: RemovalFinished, policy: ReconcilePolicy) -> ReconcileDecision:
    subject = parse_removal_comment(s.comment)
    if subject is None:
        return ignore("remove-node command was not sent by swarmkeeper")
    node_id, dead_instance, role = subject
    if s.status != TERMINAL_SUCCESS or outputs.parse_removed(s.stdout) != node_id:
        detail = outputs.excerpt(s.stderr or s.stdout)
        failed = LogFailure(
            "dead node removal failed; the next pass retries",
            (("node_id", node_id), ("status", s.status), ("detail", detail)),
        )
        reason = f"remove-node {s.status} for {node_id}: {detail}".rstrip(": ")
        return Decision(Outcome.REMOVE_FAILED, reason, (failed,))
    actions: list[ReconcileAction] = []
    if role == "manager":
        demoted = "dead manager demoted and removed"
        actions.append(
            Publish(_event(policy, MANAGER_DEMOTED, demoted, s.correlation_id, dead_instance, node_id, role))
        )
    gone = "its instance is gone"
    actions.append(
        Publish(_event(policy, DEAD_NODE_REMOVED, gone, s.correlation_id, dead_instance, node_id, role))
    )
    if dead_instance:
        actions.append(ForgetNode(dead_instance))
    return Decision(Outcome.REMOVED, f"dead node {node_id} removed", tuple(actions))


def waits_for_a_fresh_view(leave: LeaveOp | None) -> bool:
    """A manager removal that asked for a fresh view and waits for it (no command in flight)."""
    return leave is not None and not leave.command_id and leave.waiting_for == FRESH_VIEW


# ------------------------------------------------------------------------------------- views


def instance_views(instances: tuple[InstanceFacts, ...], identity: ClusterIdentity) -> list[InstanceView]:
    views = []
    for i in instances:
        role = identity.role_of(i.tags)
        if role is None:
            continue
        launched = i.launched_at or datetime.fromtimestamp(0, UTC)
        state = InstanceState(i.state)
        views.append(InstanceView(i.instance_id, state, i.private_ip, role, i.node_id, launched))
    return views


def op_views(ops: tuple[OpSummary, ...], now: float, join_budget_seconds: float) -> list[OpView]:
    out = []
    for op in ops:
        started = op.started_at if op.started_at is not None else now
        if op.kind is OpKind.JOIN and op.stage not in (Stage.JOINED, Stage.FAILED):
            deadline = started + join_budget_seconds
        elif op.kind is OpKind.LEAVE and op.stage != "done":
            deadline = op.deadline if op.deadline is not None else started
        else:
            continue
        out.append(OpView(op.instance_id, op.kind, op.stage, _dt(started), _dt(deadline)))
    return out


def cluster_view(
    nodes: tuple[SwarmNode, ...], instances: tuple[InstanceFacts, ...], plan: ReconcilePlan, taken_at: float
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


def _event(
    policy: ReconcilePolicy,
    kind: DetailType,
    reason: str,
    correlation_id: str,
    instance_id: str = "",
    node_id: str = "",
    role: str = "",
) -> BusEvent:
    return BusEvent(kind, policy.identity.name, instance_id, node_id, role, reason, correlation_id)


def _after(after: str, reason: str) -> str:
    return f"{after}; {reason}" if after else reason


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
