"""One reconcile pass, decided: what to clean up, given the swarm, the instances and the operations.

`plan_reconcile` is pure: the `reconcile` function gathers the three views, calls it, and carries the
plan out in this order: finish or roll back stuck operations, demote then remove nodes, mark instances
Unhealthy, publish metrics and alerts, and keep `plan.down_since` for the next pass.

Nodes and instances are matched by the instance's `swarmkeeper:node-id` tag first, then by the node's
address == the instance's private IP (a node that joined but was never tagged, or a node that rejoined
the same instance under a new id).

Safety rules, beyond the quorum guard of `quorum.py`:

- A node is removed only when it is not ready and has no live instance (terminated, shutting down, or
  none at all), or when it is down and its instance now runs another, healthy node (it rejoined).
  A ready node without an instance is left alone: the instance list may be stale.
- An instance is marked Unhealthy only when it is running, its node has been down for
  `down_grace` (counted from the first pass that saw it down) and it was launched before that.
- An instance with an operation in flight belongs to that operation; only a stuck one (past its
  deadline) is acted on.
- At most one manager change per pass (demotion, Unhealthy mark or rollback of a manager), none while
  a manager joins or leaves.
- With quorum lost the plan holds no destructive action at all; the alert carries the runbook.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.kernel import DetailType, detail_type
from swarmkeeper.domain.models import OpKind, Role
from swarmkeeper.domain.quorum import ManagerChangeGate, RaftCounts, choose_command_manager, removal_order
from swarmkeeper.domain.swarm import NodeState, SwarmNode

MANAGER_PORT = 2377


class InstanceState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SHUTTING_DOWN = "shutting-down"
    TERMINATED = "terminated"
    STOPPING = "stopping"
    STOPPED = "stopped"


_GONE_STATES = frozenset({InstanceState.SHUTTING_DOWN, InstanceState.TERMINATED})


@frozen
class InstanceView:
    instance_id: str
    state: InstanceState
    private_ip: str | None
    role: Role
    node_id: str | None  # the swarmkeeper:node-id tag, set once the node joined
    launched_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", InstanceState(self.state))
        object.__setattr__(self, "role", Role(self.role))

    @property
    def is_live(self) -> bool:
        return self.state not in _GONE_STATES


@frozen
class OpView:
    instance_id: str
    kind: OpKind
    stage: str
    started_at: datetime
    deadline: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", OpKind(self.kind))

    def is_stuck(self, now: datetime) -> bool:
        return now > self.deadline


@frozen
class ReconcileSettings:
    down_grace: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.down_grace <= timedelta(0):
            raise ValueError(f"down_grace must be positive, got {self.down_grace}")


@frozen
class NodeRemoval:
    node_id: str
    role: Role
    state: NodeState
    instance_id: str | None
    reason: str


@frozen
class UnhealthyMark:
    instance_id: str
    node_id: str
    role: Role
    down_since: datetime
    reason: str


class StuckAction(StrEnum):
    FINISH = "finish"
    ROLL_BACK = "roll-back"


@frozen
class StuckOperation:
    instance_id: str
    kind: OpKind
    stage: str
    action: StuckAction
    node_id: str | None
    role: Role | None
    manager_change: bool  # it changes the raft configuration, so it used this pass's budget
    destructive: bool  # it lets a live instance terminate
    reason: str


@frozen
class Deferred:
    subject: str  # a node id or an instance id
    reason: str


class AlertType:
    """The detail-types of a reconcile pass's alerts."""

    QUORUM_AT_RISK = detail_type("Quorum At Risk")
    QUORUM_LOST = detail_type("Quorum Lost")


QUORUM_AT_RISK_RUNBOOK = (
    "One more manager lost and the swarm loses quorum. Do not stop, reboot or scale in managers. "
    "swarmkeeper replaces unreachable managers one per reconcile pass; find out why they are "
    "unreachable (instance status checks, security groups on 2377/7946/4789, disk) and watch "
    "QuorumMargin come back to 1 or more."
)
QUORUM_LOST_RUNBOOK = (
    "The swarm has no raft majority: services keep running but nothing can be changed, and "
    "swarmkeeper takes no destructive action until a majority is back. "
    "1) Bring the unreachable managers back if at all possible (start or recover their instances); "
    "quorum returns by itself. "
    "2) If they cannot come back, an operator picks the healthiest remaining manager (most recent "
    "raft state: `docker info`, `docker node ls`) and runs "
    "`docker swarm init --force-new-cluster --advertise-addr <its-ip>` on it. "
    "This is an operator's decision, never automatic. "
    "3) Then swarmkeeper removes the dead managers and joins new ones, one per pass."
)


@frozen
class Alert:
    detail_type: DetailType
    reason: str
    runbook: str
    managers: int
    managers_reachable: int
    majority: int


@frozen
class SwarmMetrics:
    nodes_ready: int
    nodes_down: int
    managers_reachable: int
    quorum_margin: int

    def as_dict(self) -> dict[str, int]:
        return {
            "NodesReady": self.nodes_ready,
            "NodesDown": self.nodes_down,
            "ManagersReachable": self.managers_reachable,
            "QuorumMargin": self.quorum_margin,
        }


@frozen
class ReconcilePlan:
    removals: tuple[NodeRemoval, ...]  # down nodes first; a manager here is also in `demotions`
    demotions: tuple[NodeRemoval, ...]  # at most one; demote it, then remove it
    mark_unhealthy: tuple[UnhealthyMark, ...]
    stuck_operations: tuple[StuckOperation, ...]
    manager_addresses: tuple[str, ...]  # ip:2377 of reachable managers, leader first, minus the demoted
    command_manager: SwarmNode | None  # where to run this plan's swarm commands
    metrics: SwarmMetrics
    alerts: tuple[Alert, ...]
    deferred: tuple[Deferred, ...]  # what was seen but held back, and why
    down_since: Mapping[str, datetime] = field(default_factory=dict)  # keep for the next pass

    @property
    def destructive(self) -> bool:
        return bool(
            self.removals
            or self.demotions
            or self.mark_unhealthy
            or any(op.destructive for op in self.stuck_operations)
        )

    @property
    def manager_changes(self) -> int:
        return (
            len(self.demotions)
            + sum(mark.role is Role.MANAGER for mark in self.mark_unhealthy)
            + sum(op.manager_change for op in self.stuck_operations)
        )


def plan_reconcile(
    nodes: Iterable[SwarmNode],
    instances: Iterable[InstanceView],
    in_flight: Iterable[OpView],
    now: datetime,
    settings: ReconcileSettings,
    down_since: Mapping[str, datetime] | None = None,
) -> ReconcilePlan:
    """Decide one reconcile pass. ``down_since`` is the previous plan's ``down_since``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    nodes = list(nodes)
    in_flight = list(in_flight)
    counts = RaftCounts.of(nodes)
    index = _Index(nodes, instances)
    managers_in_flight = {
        op.instance_id
        for op in in_flight
        if not op.is_stuck(now)
        and (instance := index.instance_by_id.get(op.instance_id))
        and instance.role is Role.MANAGER
    }
    gate = ManagerChangeGate(nodes, changes_in_flight=len(managers_in_flight))
    lost_reason = f"quorum lost ({counts.describe()}): no destructive action"

    stuck: list[StuckOperation] = []
    deferred: list[Deferred] = []
    for op in in_flight:
        if op.is_stuck(now):
            decided = _decide_stuck(op, index, gate, counts.has_quorum, lost_reason)
            if isinstance(decided, Deferred):
                deferred.append(decided)
            else:
                stuck.append(decided)

    busy = {op.instance_id for op in in_flight}
    findings = _survey(nodes, index, busy, down_since or {}, now, settings)
    deferred.extend(findings.deferred)
    if counts.has_quorum:
        removals, demotions, marks = _guard(findings, index, gate, deferred)
    else:
        removals, demotions, marks = [], [], []
        deferred.extend(Deferred(removal.node_id, lost_reason) for _, removal in findings.to_remove)
        deferred.extend(Deferred(mark.instance_id, lost_reason) for mark in findings.to_mark)

    demoted = {removal.node_id for removal in demotions}
    return ReconcilePlan(
        removals=tuple(sorted(removals, key=lambda r: (r.state not in _DOWN_STATES, r.node_id))),
        demotions=tuple(demotions),
        mark_unhealthy=tuple(sorted(marks, key=lambda mark: mark.instance_id)),
        stuck_operations=tuple(stuck),
        manager_addresses=_manager_addresses(nodes, exclude=demoted),
        command_manager=choose_command_manager(nodes, exclude=demoted),
        metrics=_metrics(nodes, counts),
        alerts=_alerts(counts),
        deferred=tuple(deferred),
        down_since=findings.down_since,
    )


_DOWN_STATES = (NodeState.DOWN, NodeState.DISCONNECTED)


@dataclass
class _Findings:
    """What the nodes need before the quorum guard and the manager budget are applied."""

    to_remove: list[tuple[SwarmNode, NodeRemoval]] = field(default_factory=list)
    to_mark: list[UnhealthyMark] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)
    down_since: dict[str, datetime] = field(default_factory=dict)


def _survey(
    nodes: list[SwarmNode],
    index: _Index,
    busy: set[str],
    previous_down_since: Mapping[str, datetime],
    now: datetime,
    settings: ReconcileSettings,
) -> _Findings:
    found = _Findings()
    for node in nodes:
        instance = index.instance_for_node(node)
        if node.is_down:
            found.down_since[node.node_id] = previous_down_since.get(node.node_id, now)
        if instance is not None and instance.instance_id in busy:
            if not node.is_ready:
                reason = f"instance {instance.instance_id} has an operation in flight"
                found.deferred.append(Deferred(node.node_id, reason))
        elif instance is None or not instance.is_live:
            where = (
                "no instance" if instance is None else f"instance {instance.instance_id} is {instance.state}"
            )
            if node.is_ready:
                reason = f"{where} but the node is ready; removed once it is down"
                found.deferred.append(Deferred(node.node_id, reason))
            else:
                found.to_remove.append((node, _removal(node, instance, f"{where}; node is {node.state}")))
        elif node.is_down and instance.instance_id in index.claimed_by_up_node:
            successor = index.claimed_by_up_node[instance.instance_id]
            reason = f"superseded: {instance.instance_id} rejoined as {successor}"
            found.to_remove.append((node, _removal(node, instance, reason)))
        elif node.is_down and instance.state is InstanceState.RUNNING:
            since = found.down_since[node.node_id]
            # An instance launched after its node was first seen down cannot be that node (address reuse).
            if now - since >= settings.down_grace and instance.launched_at < since:
                reason = (
                    f"node {node.node_id} down since {since.isoformat()} while {instance.instance_id} runs"
                )
                found.to_mark.append(
                    UnhealthyMark(instance.instance_id, node.node_id, node.role, since, reason)
                )
    return found


def _guard(
    findings: _Findings, index: _Index, gate: ManagerChangeGate, deferred: list[Deferred]
) -> tuple[list[NodeRemoval], list[NodeRemoval], list[UnhealthyMark]]:
    """Apply the quorum guard and the one-manager-change budget (quorum holds); defer the rest."""
    removals: list[NodeRemoval] = []
    demotions: list[NodeRemoval] = []
    for node, removal in sorted(findings.to_remove, key=lambda pair: removal_order(pair[0])):
        if not node.is_manager:
            removals.append(removal)
            continue
        decision = gate.take(node.node_id)
        if decision.allowed:
            demotions.append(removal)
            removals.append(removal)
        else:
            deferred.append(Deferred(node.node_id, decision.reason))

    marks: list[UnhealthyMark] = []
    marked: set[str] = set()
    for mark in findings.to_mark:
        if mark.instance_id in marked:
            continue
        if mark.role is Role.MANAGER:
            node = index.node_by_id[mark.node_id]
            if node.is_reachable_manager:
                deferred.append(
                    Deferred(mark.instance_id, f"{node.node_id} is down but still reachable in raft")
                )
                continue
            decision = gate.take(node.node_id)
            if not decision.allowed:
                deferred.append(Deferred(mark.instance_id, decision.reason))
                continue
        marks.append(mark)
        marked.add(mark.instance_id)
    return removals, demotions, marks


class _Index:
    """Dictionaries over both views, so a pass is linear in the number of nodes and instances."""

    def __init__(self, nodes: list[SwarmNode], instances: Iterable[InstanceView]) -> None:
        self.node_by_id = {node.node_id: node for node in nodes}
        self.node_by_address: dict[str, SwarmNode] = {}
        for node in nodes:
            current = self.node_by_address.get(node.address)
            if current is None or (current.is_down and not node.is_down):
                self.node_by_address[node.address] = node
        self.instance_by_id: dict[str, InstanceView] = {}
        self.instance_by_tag: dict[str, InstanceView] = {}
        self.instance_by_ip: dict[str, InstanceView] = {}
        for instance in instances:
            _keep_preferred(self.instance_by_id, instance.instance_id, instance)
            if instance.node_id:
                _keep_preferred(self.instance_by_tag, instance.node_id, instance)
            if instance.private_ip:
                _keep_preferred(self.instance_by_ip, instance.private_ip, instance)
        # Instances that a node which is not down runs: a down node on one of them was replaced.
        self.claimed_by_up_node: dict[str, str] = {}
        for node in nodes:
            claimed = self.instance_for_node(node)
            if claimed is not None and not node.is_down:
                self.claimed_by_up_node.setdefault(claimed.instance_id, node.node_id)

    def instance_for_node(self, node: SwarmNode) -> InstanceView | None:
        return self.instance_by_tag.get(node.node_id) or self.instance_by_ip.get(node.address)

    def node_for_instance(self, instance: InstanceView) -> SwarmNode | None:
        if instance.node_id and instance.node_id in self.node_by_id:
            return self.node_by_id[instance.node_id]
        if instance.private_ip:
            return self.node_by_address.get(instance.private_ip)
        return None


def _keep_preferred(index: dict[str, InstanceView], key: str, instance: InstanceView) -> None:
    """On a key shared by two instances, keep the live one, then the latest launched."""
    current = index.get(key)
    if current is None or (instance.is_live, instance.launched_at) > (current.is_live, current.launched_at):
        index[key] = instance


def _removal(node: SwarmNode, instance: InstanceView | None, reason: str) -> NodeRemoval:
    instance_id = instance.instance_id if instance is not None else None
    return NodeRemoval(node.node_id, node.role, node.state, instance_id, reason)


def _decide_stuck(
    op: OpView, index: _Index, gate: ManagerChangeGate, quorum: bool, lost_reason: str
) -> StuckOperation | Deferred:
    instance = index.instance_by_id.get(op.instance_id)
    node = index.node_for_instance(instance) if instance is not None else None
    node_id = node.node_id if node is not None else None
    role = node.role if node is not None else (instance.role if instance is not None else None)
    late = f"{op.kind} stuck at stage {op.stage!r} past its deadline {op.deadline.isoformat()}"
    live = instance is not None and instance.is_live
    manager_change = False

    if op.kind is OpKind.JOIN:
        joined = (
            live and node is not None and node.is_ready and (not node.is_manager or node.is_reachable_manager)
        )
        if joined:
            action, destructive, reason = StuckAction.FINISH, False, f"{late}; node {node_id} is ready"
        else:
            action, destructive = StuckAction.ROLL_BACK, live
            reason = f"{late}; no ready node on {op.instance_id}" + (
                "" if live else " and the instance is gone"
            )
            if destructive and node is not None and node.is_manager and quorum:
                decision = gate.take(node.node_id)
                if not decision.allowed:
                    return Deferred(op.instance_id, f"{late}; {decision.reason}")
                manager_change = True
    else:
        if not live:
            action, destructive, reason = StuckAction.FINISH, False, f"{late}; the instance is gone"
        elif node is not None and node.is_reachable_manager:
            return Deferred(
                op.instance_id, f"{late}; {node.node_id} is still a reachable manager, demote it first"
            )
        else:
            action, destructive, reason = StuckAction.FINISH, True, f"{late}; let the instance terminate"

    if destructive and not quorum:
        return Deferred(op.instance_id, f"{late}; {lost_reason}")
    return StuckOperation(
        instance_id=op.instance_id,
        kind=op.kind,
        stage=op.stage,
        action=action,
        node_id=node_id,
        role=role,
        manager_change=manager_change,
        destructive=destructive,
        reason=reason,
    )


def _manager_addresses(nodes: list[SwarmNode], exclude: set[str]) -> tuple[str, ...]:
    reachable = [n for n in nodes if n.is_reachable_manager and n.node_id not in exclude]
    reachable.sort(key=lambda n: (not n.is_leader, n.address, n.node_id))
    return tuple(_host_port(n.address, MANAGER_PORT) for n in reachable)


def _host_port(address: str, port: int) -> str:
    if ipaddress.ip_address(address).version == 6:
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def _metrics(nodes: list[SwarmNode], counts: RaftCounts) -> SwarmMetrics:
    return SwarmMetrics(
        nodes_ready=sum(n.is_ready for n in nodes),
        nodes_down=sum(n.is_down for n in nodes),
        managers_reachable=counts.reachable,
        quorum_margin=counts.margin,
    )


def _alerts(counts: RaftCounts) -> tuple[Alert, ...]:
    if counts.margin > 0:
        return ()
    if counts.has_quorum:
        kind, runbook = AlertType.QUORUM_AT_RISK, QUORUM_AT_RISK_RUNBOOK
        reason = f"quorum margin 0: {counts.describe()}"
    else:
        kind, runbook = AlertType.QUORUM_LOST, QUORUM_LOST_RUNBOOK
        reason = f"quorum lost: {counts.describe()}"
    return (Alert(kind, reason, runbook, counts.managers, counts.reachable, counts.majority),)
