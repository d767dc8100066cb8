"""Choosing a manager to run manager-side commands on: a running instance of the manager group that
has joined (carries a node-id tag), the one seen healthy most recently first. Never a cached address.
Finding the manager removals that wait for what just happened (a view, a manager's join, the lock)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from swarmkeeper.adapters.instances import Ec2Instances
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.domain.models import LeaveOp, LeaveStage, OpKind, OpSummary, Role


def joined_managers_healthy_first(
    instances: Ec2Instances, state: StateTable, manager_group: str
) -> tuple[str, ...]:
    managers = [m.instance_id for m in instances.joined_managers(manager_group)]
    if not managers:
        return ()
    seen = state.healthy_at(managers)
    return tuple(sorted(managers, key=lambda i: (-seen.get(i, 0.0), i)))


def removals_waiting(
    state: StateTable, ops: Iterable[OpSummary], waits: Callable[[LeaveOp], bool]
) -> tuple[LeaveOp, ...]:
    """The manager removals among ``ops`` (a scan of open ops) that ``waits`` (read by their key)."""
    found = []
    for op in ops:
        if op.kind is not OpKind.LEAVE or op.stage != LeaveStage.REMOVING or op.role is not Role.MANAGER:
            continue
        _, leave = state.get_ops(op.instance_id)
        if leave is not None and waits(leave):
            found.append(leave)
    return tuple(found)
