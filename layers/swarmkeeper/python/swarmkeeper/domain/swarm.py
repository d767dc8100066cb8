"""The swarm as one manager sees it: the `describe-swarm` document's output, parsed.

`describe-swarm` prints one line per node,

    <id> <role> <state> <availability> <manager-status or -> <addr> <hostname>

then a last line ``nodes=<count>``. The trailer is how a truncated output (Run Command keeps 24,000
characters, the rest goes to S3) is told apart from a small swarm, so it is required and checked.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from swarmkeeper.domain.models import Role

NODE_ID_PATTERN = re.compile(r"^[a-z0-9]{25}$")
_TRAILER = re.compile(r"^nodes=(\d+)$")
_LINE_FORMAT = "<id> <role> <state> <availability> <manager-status or -> <addr> <hostname>"
_FIELD_COUNT = 7
_NO_MANAGER_STATUS = "-"
_E = TypeVar("_E", bound=StrEnum)


class NodeState(StrEnum):
    READY = "ready"
    DOWN = "down"
    UNKNOWN = "unknown"
    DISCONNECTED = "disconnected"


class Availability(StrEnum):
    ACTIVE = "active"
    PAUSE = "pause"
    DRAIN = "drain"


class ManagerStatus(StrEnum):
    LEADER = "leader"
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"


class SwarmViewError(ValueError):
    """The describe-swarm output cannot be trusted as a view of the swarm."""

    def __init__(self, message: str, line_number: int | None = None) -> None:
        prefix = f"describe-swarm output line {line_number}: " if line_number is not None else ""
        super().__init__(prefix + message)
        self.line_number = line_number


@dataclass(frozen=True)
class SwarmNode:
    node_id: str
    role: Role
    state: NodeState
    availability: Availability
    manager_status: ManagerStatus | None  # None for workers
    address: str
    hostname: str

    def __post_init__(self) -> None:
        # Accept the plain strings an adapter reads, and keep the enum members (`is` comparisons).
        object.__setattr__(self, "role", Role(self.role))
        object.__setattr__(self, "state", NodeState(self.state))
        object.__setattr__(self, "availability", Availability(self.availability))
        if self.manager_status is not None:
            object.__setattr__(self, "manager_status", ManagerStatus(self.manager_status))
        if not NODE_ID_PATTERN.match(self.node_id):
            raise ValueError(f"node id must be 25 lowercase letters or digits, got {self.node_id!r}")
        if (self.role is Role.MANAGER) != (self.manager_status is not None):
            raise ValueError(
                f"node {self.node_id}: a manager has a manager status and a worker has none "
                f"(role={self.role}, manager_status={self.manager_status})"
            )

    @property
    def is_manager(self) -> bool:
        return self.role is Role.MANAGER

    @property
    def is_leader(self) -> bool:
        return self.manager_status is ManagerStatus.LEADER

    @property
    def is_reachable_manager(self) -> bool:
        """A voting manager the raft leader can reach (the leader counts itself)."""
        return self.manager_status in (ManagerStatus.LEADER, ManagerStatus.REACHABLE)

    @property
    def is_ready(self) -> bool:
        return self.state is NodeState.READY

    @property
    def is_down(self) -> bool:
        # `unknown` is what every node shows for a few seconds after a leader election, so it is
        # not counted as down; `disconnected` is a node the dispatcher lost.
        return self.state in (NodeState.DOWN, NodeState.DISCONNECTED)


def parse_node_line(line: str, line_number: int | None = None) -> SwarmNode:
    fields = line.split()
    if len(fields) != _FIELD_COUNT:
        raise SwarmViewError(
            f"expected {_FIELD_COUNT} fields `{_LINE_FORMAT}`, got {len(fields)}: {_excerpt(line)}",
            line_number,
        )
    node_id, role, state, availability, manager_status, address, hostname = fields
    if not NODE_ID_PATTERN.match(node_id):
        raise SwarmViewError(f"node id must be 25 lowercase letters or digits, got {node_id!r}", line_number)
    parsed_role = _member(Role, role, "role", line_number)
    parsed_state = _member(NodeState, state, "state", line_number)
    parsed_availability = _member(Availability, availability, "availability", line_number)
    if parsed_role is Role.WORKER:
        if manager_status != _NO_MANAGER_STATUS:
            raise SwarmViewError(
                f"worker {node_id} must have manager status '-', got {manager_status!r}", line_number
            )
        parsed_status = None
    else:
        parsed_status = _member(ManagerStatus, manager_status, "manager status", line_number)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise SwarmViewError(
            f"node {node_id}: address is not an IP address: {address!r}", line_number
        ) from None
    return SwarmNode(
        node_id=node_id,
        role=parsed_role,
        state=parsed_state,
        availability=parsed_availability,
        manager_status=parsed_status,
        address=address,
        hostname=hostname,
    )


def parse_describe_swarm(output: str) -> list[SwarmNode]:
    """Parse the whole output; raise SwarmViewError unless it is complete and consistent.

    Blank lines are ignored. The ``nodes=<count>`` trailer must be the last line and match the number
    of node lines; node ids must be unique and at most one manager may be the leader.
    """
    numbered = [(number, line.strip()) for number, line in enumerate(output.splitlines(), start=1)]
    numbered = [(number, line) for number, line in numbered if line]
    if not numbered:
        raise SwarmViewError("empty output: no node lines and no `nodes=<count>` trailer")
    trailer_number, trailer = numbered[-1]
    match = _TRAILER.match(trailer)
    if match is None:
        raise SwarmViewError(
            f"last line must be the trailer `nodes=<count>` (output truncated?), got {_excerpt(trailer)}",
            trailer_number,
        )
    nodes: list[SwarmNode] = []
    seen: set[str] = set()
    leader: str | None = None
    for number, line in numbered[:-1]:
        if _TRAILER.match(line):
            raise SwarmViewError("the `nodes=<count>` trailer must be the last line", number)
        node = parse_node_line(line, number)
        if node.node_id in seen:
            raise SwarmViewError(f"node {node.node_id} is listed twice", number)
        seen.add(node.node_id)
        if node.is_leader:
            if leader is not None:
                raise SwarmViewError(f"two leaders: {leader} and {node.node_id}", number)
            leader = node.node_id
        nodes.append(node)
    expected = int(match.group(1))
    if expected != len(nodes):
        raise SwarmViewError(
            f"trailer says nodes={expected} but {len(nodes)} node lines were read (output truncated?)",
            trailer_number,
        )
    return nodes


def _member(enum: type[_E], value: str, what: str, line_number: int | None) -> _E:
    try:
        return enum(value)
    except ValueError:
        allowed = "/".join(member.value for member in enum)
        raise SwarmViewError(f"{what} must be one of {allowed}, got {value!r}", line_number) from None


def _excerpt(line: str, limit: int = 120) -> str:
    return repr(line if len(line) <= limit else line[:limit] + "…")
