"""``view#cluster``: what the latest reconcile pass saw, kept for the next pass and for the exit flow.

Only the managers are kept in full (at most seven, as describe-swarm lines, with the instance each
runs on): the quorum guard and the choice of a command manager need nothing else. ``down_since``
carries the reconcile's grace-period clock from one pass to the next.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import field
from typing import Any

from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.quorum import choose_command_manager
from swarmkeeper.domain.swarm import SwarmNode, encode_field, parse_node_line


def node_line(node: SwarmNode) -> str:
    """The node as describe-swarm prints it."""
    status = str(node.manager_status) if node.manager_status is not None else "-"
    fields = (node.node_id, node.role, node.state, node.availability, status, node.address, node.hostname)
    return " ".join(encode_field(str(field)) for field in fields)


@frozen
class ClusterView:
    taken_at: float
    managers: tuple[SwarmNode, ...]
    manager_instances: Mapping[str, str] = field(default_factory=dict)  # node id -> instance id
    down_since: Mapping[str, float] = field(default_factory=dict)  # node id -> epoch seconds
    nodes: int = 0

    def node(self, node_id: str) -> SwarmNode | None:
        return next((n for n in self.managers if n.node_id == node_id), None)

    def command_managers(self, exclude_instances: Collection[str] = ()) -> tuple[str, ...]:
        """Instance ids of Reachable + Ready managers of this view, in `choose_command_manager`'s order
        (followers first, then by node id); never one that is excluded or whose instance is unknown."""
        out: list[str] = []
        skip: set[str] = {
            n.node_id for n in self.managers if self.manager_instances.get(n.node_id) in exclude_instances
        }
        skip |= {n.node_id for n in self.managers if n.node_id not in self.manager_instances}
        while (best := choose_command_manager(self.managers, exclude=skip)) is not None:
            out.append(self.manager_instances[best.node_id])
            skip.add(best.node_id)
        return tuple(out)

    def to_item(self) -> dict[str, object]:
        return {
            "taken_at": self.taken_at,
            "managers": [node_line(n) for n in self.managers],
            "manager_instances": dict(self.manager_instances),
            "down_since": dict(self.down_since),
            "nodes": self.nodes,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ClusterView:
        return cls(
            taken_at=float(item.get("taken_at", 0)),
            managers=tuple(parse_node_line(line) for line in item.get("managers", [])),
            manager_instances=dict(item.get("manager_instances", {})),
            down_since={k: float(v) for k, v in dict(item.get("down_since", {})).items()},
            nodes=int(item.get("nodes", 0)),
        )
