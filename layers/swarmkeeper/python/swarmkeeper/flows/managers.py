"""Choosing a manager to run manager-side commands on: a running instance of the manager group that
has joined (carries a node-id tag), the one seen healthy most recently first. Never a cached address."""

from __future__ import annotations

from swarmkeeper.adapters.instances import Ec2Instances
from swarmkeeper.adapters.state import StateTable


def joined_managers_healthy_first(
    instances: Ec2Instances, state: StateTable, manager_group: str
) -> tuple[str, ...]:
    managers = [m.instance_id for m in instances.joined_managers(manager_group)]
    if not managers:
        return ()
    seen = state.healthy_at(managers)
    return tuple(sorted(managers, key=lambda i: (-seen.get(i, 0.0), i)))
