"""Raft quorum rules for swarm managers (the autopilot rules of Consul and Nomad, and Swarm's own).

Every manager node in the view is a voter in the raft configuration. A manager counts as reachable
when its MANAGER STATUS is `leader` or `reachable`: that is the raft leader's own probe of its peers,
the thing a majority is made of. (The node `state` is the dispatcher's heartbeat; it is used only to
pick a manager to run commands on.)

The guard: a manager may leave the configuration (demote, then `docker node rm`) only when

- the cluster has quorum now (with quorum lost, nothing destructive happens: an operator decides),
- it is not the last manager,
- the managers still reachable afterwards are a majority of the configuration *after* the change:
  ``reachable - (1 if it is reachable) >= majority(managers - 1)``. Removing an unreachable manager
  therefore keeps or restores margin, while removing a reachable one can break it (2 of 3 reachable:
  removing a reachable one leaves 1 of 2, which is not a majority),
- and no other manager change happens in the same reconcile pass (`ManagerChangeGate`).

A removal the guard allows may still leave no spare: 3 of 3 reachable, one leaves, 2 of 2 remain and
the next failure loses quorum. ``costs_no_spare`` says whether ``SPARE_MANAGERS`` reachable managers
beyond the majority remain (or the removal takes no reachable manager); the exit flow holds such a
removal while Auto Scaling launches a replacement (``domain.leave``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.swarm import SwarmNode

MAX_MANAGER_CHANGES_PER_PASS = 1
SPARE_MANAGERS = 1  # reachable managers beyond the majority: one more may fail without losing quorum


def majority(n: int) -> int:
    """Votes needed out of ``n`` voters: more than half."""
    if n < 0:
        raise ValueError(f"a raft configuration cannot have {n} members")
    return n // 2 + 1


@frozen
class RaftCounts:
    managers: int
    reachable: int

    @classmethod
    def of(cls, nodes: Iterable[SwarmNode]) -> RaftCounts:
        managers = reachable = 0
        for node in nodes:
            if node.is_manager:
                managers += 1
                reachable += node.is_reachable_manager
        return cls(managers=managers, reachable=reachable)

    @property
    def majority(self) -> int:
        return majority(self.managers)

    @property
    def margin(self) -> int:
        """Reachable managers minus the majority needed: 0 means one more loss loses quorum."""
        return self.reachable - self.majority

    @property
    def has_quorum(self) -> bool:
        return self.margin >= 0

    def without(self, node: SwarmNode) -> RaftCounts:
        """The configuration after ``node`` (a manager) leaves it."""
        return RaftCounts(managers=self.managers - 1, reachable=self.reachable - node.is_reachable_manager)

    def describe(self) -> str:
        return f"{self.reachable} of {self.managers} managers reachable, {self.majority} needed"


def quorum_margin(nodes: Iterable[SwarmNode]) -> int:
    return RaftCounts.of(nodes).margin


def has_quorum(nodes: Iterable[SwarmNode]) -> bool:
    return RaftCounts.of(nodes).has_quorum


@frozen
class Decision:
    allowed: bool
    reason: str


def can_remove_manager(nodes: Iterable[SwarmNode], node_id: str) -> Decision:
    """May ``node_id`` leave the raft configuration now (ignoring the one-change-per-pass budget)?"""
    nodes = list(nodes)
    node = next((n for n in nodes if n.node_id == node_id), None)
    return _decide(RaftCounts.of(nodes), node, node_id)


def _decide(counts: RaftCounts, node: SwarmNode | None, node_id: str) -> Decision:
    if node is None:
        return Decision(False, f"node {node_id} is not in the swarm view")
    if not node.is_manager:
        return Decision(True, f"{node_id} is a worker: the raft configuration does not change")
    if not counts.has_quorum:
        return Decision(False, f"quorum already lost ({counts.describe()}): no destructive action")
    if counts.managers <= 1:
        return Decision(False, f"{node_id} is the last manager")
    after = counts.without(node)
    if not after.has_quorum:
        return Decision(False, f"removing {node_id} would lose quorum: {after.describe()} afterwards")
    effect = "restores margin" if not node.is_reachable_manager else "keeps a majority"
    return Decision(True, f"removing {node_id} {effect}: {after.describe()} afterwards")


def costs_no_spare(nodes: Iterable[SwarmNode], node_id: str) -> Decision:
    """Allowed when ``SPARE_MANAGERS`` reachable managers beyond the majority remain once ``node_id``
    left, or when it is not a reachable manager (what is reachable stays so: waiting gains nothing)."""
    nodes = list(nodes)
    node = next((n for n in nodes if n.node_id == node_id), None)
    if node is None or not node.is_manager:
        return Decision(True, f"{node_id} is not a manager in the view")
    counts = RaftCounts.of(nodes)
    after = counts.without(node)
    if not node.is_reachable_manager or after.margin >= SPARE_MANAGERS:
        return Decision(True, f"{after.describe()} afterwards")
    return Decision(False, f"removing {node_id} leaves {after.describe()}: no failure tolerated")


class ManagerChangeGate:
    """The planner's budget: at most one manager change per reconcile pass, each one guarded.

    A change already in flight (a manager joining or leaving) uses the budget up, so two raft
    configuration changes never overlap. Workers pass without spending anything.
    """

    def __init__(
        self,
        nodes: Iterable[SwarmNode],
        changes_in_flight: int = 0,
        limit: int = MAX_MANAGER_CHANGES_PER_PASS,
    ) -> None:
        self._nodes = {node.node_id: node for node in nodes}
        self._counts = RaftCounts.of(self._nodes.values())
        self._in_flight = changes_in_flight
        self._remaining = max(0, limit - changes_in_flight)

    @property
    def remaining(self) -> int:
        return self._remaining

    def check(self, node_id: str) -> Decision:
        node = self._nodes.get(node_id)
        decision = _decide(self._counts, node, node_id)
        if not decision.allowed or node is None or not node.is_manager:
            return decision
        if self._remaining <= 0:
            why = "a manager change is in flight" if self._in_flight else "another manager change is planned"
            return Decision(False, f"{why}; at most {MAX_MANAGER_CHANGES_PER_PASS} per reconcile pass")
        return decision

    def take(self, node_id: str) -> Decision:
        """Like `check`, and an allowed manager change spends the budget."""
        decision = self.check(node_id)
        node = self._nodes.get(node_id)
        if decision.allowed and node is not None and node.is_manager:
            self._remaining -= 1
        return decision


def removal_order(node: SwarmNode) -> tuple[bool, bool, bool, str]:
    """Sort key, safest manager to remove first: unreachable, then down, then followers before the leader."""
    return (node.is_reachable_manager, not node.is_down, node.is_leader, node.node_id)


def select_manager_change(
    nodes: Iterable[SwarmNode], candidate_ids: Iterable[str], changes_in_flight: int = 0
) -> tuple[str | None, dict[str, Decision]]:
    """Pick at most one candidate manager to remove this pass, safest first; every candidate's decision."""
    nodes = list(nodes)
    candidate_ids = list(dict.fromkeys(candidate_ids))
    gate = ManagerChangeGate(nodes, changes_in_flight)
    by_id = {node.node_id: node for node in nodes}
    known = sorted((by_id[c] for c in candidate_ids if c in by_id), key=removal_order)
    decisions = {
        c: Decision(False, f"node {c} is not in the swarm view") for c in candidate_ids if c not in by_id
    }
    chosen: str | None = None
    for node in known:
        decision = gate.take(node.node_id)
        decisions[node.node_id] = decision
        if decision.allowed and node.is_manager and chosen is None:
            chosen = node.node_id
    return chosen, decisions


def choose_command_manager(nodes: Iterable[SwarmNode], exclude: Collection[str] = ()) -> SwarmNode | None:
    """A manager to send a swarm command to: reachable in raft, state ready, not excluded.

    Followers are preferred over the leader: a follower forwards `docker node ...` to the leader at
    little cost, and the Run Command work (the script, docker CLI, output upload) stays off the
    node whose raft heartbeats keep the cluster together. Ties go to the lowest node id, so retries
    are deterministic; pass the manager that just failed in ``exclude`` to move on to another one.
    """
    best: SwarmNode | None = None
    for node in nodes:
        if not (node.is_reachable_manager and node.is_ready) or node.node_id in exclude:
            continue
        if best is None or (node.is_leader, node.node_id) < (best.is_leader, best.node_id):
            best = node
    return best
