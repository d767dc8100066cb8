"""The swarm as one manager sees it: the `describe-swarm` document's output, parsed.

`describe-swarm` prints one line per node,

    <id> <role> <state> <availability> <manager-status or -> <addr> <hostname>

each field percent-encoded as Go's urlquery does (``-`` when empty), so what a node reports about
itself (its hostname) can neither split its line nor add one; then a last line ``nodes=<count>``.
The trailer is how a truncated output (Run Command keeps 24,000 characters, the rest goes to S3) is
told apart from a small swarm, so it is required and checked. A node line that cannot be read is
skipped and reported (``SwarmListing.skipped``), never the end of the whole listing.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import TypeVar
from urllib.parse import quote_plus, unquote_plus

from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.listeners import PublishedPort
from swarmkeeper.domain.models import Role

NODE_ID_PATTERN = re.compile(r"^[a-z0-9]{25}$")
_TRAILER = re.compile(r"^nodes=(\d+)$")
_PORTS_TRAILER = re.compile(r"^ports=(\d+)$")
_PORT_LINE = "port"
_PORT_FORMAT = "port <service> <protocol> <published> <target> <mode> <certificate or ->"
_PORT_FIELDS = 7
_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_PROTOCOLS = ("tcp", "udp", "sctp")
_MODES = ("ingress", "host")
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


@frozen
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


@frozen
class SkippedLine:
    line_number: int
    reason: str
    # Its role field does not say worker: a count of the managers without this line may be short.
    may_be_manager: bool


@frozen
class SwarmListing:
    nodes: tuple[SwarmNode, ...]
    skipped: tuple[SkippedLine, ...] = ()
    # The services' published ports; None when the output has no port section (nothing is known).
    ports: tuple[PublishedPort, ...] | None = None
    skipped_ports: tuple[SkippedLine, ...] = ()

    @property
    def may_miss_a_manager(self) -> bool:
        return any(line.may_be_manager for line in self.skipped)


def encode_field(value: str) -> str:
    """One field of a node line as describe-swarm prints it (Go's urlquery, ``-`` when empty)."""
    return quote_plus(value) or _NO_MANAGER_STATUS


def parse_node_line(line: str, line_number: int | None = None) -> SwarmNode:
    fields = [unquote_plus(field) for field in line.split()]
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


def parse_describe_swarm(output: str) -> SwarmListing:
    """Parse the whole output: the nodes of the lines that read, and the lines that do not, skipped.

    Blank lines are ignored. Raise SwarmViewError unless the output is complete and consistent: the
    ``nodes=<count>`` trailer must be the last line and match the number of node lines (read or
    skipped); node ids must be unique and at most one manager may be the leader.
    """
    # A line is what the shell printed up to a newline (not every separator str.splitlines knows).
    numbered = [(number, line.strip()) for number, line in enumerate(output.split("\n"), start=1)]
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
    skipped: list[SkippedLine] = []
    seen: set[str] = set()
    leader: str | None = None
    ports, skipped_ports, body = _port_section(numbered[:-1])
    for number, line in body:
        if _TRAILER.match(line):
            raise SwarmViewError("the `nodes=<count>` trailer must be the last line", number)
        try:
            node = parse_node_line(line, number)
        except SwarmViewError as err:
            skipped.append(SkippedLine(number, str(err), _may_be_manager(line)))
            continue
        if node.node_id in seen:
            raise SwarmViewError(f"node {node.node_id} is listed twice", number)
        seen.add(node.node_id)
        if node.is_leader:
            if leader is not None:
                raise SwarmViewError(f"two leaders: {leader} and {node.node_id}", number)
            leader = node.node_id
        nodes.append(node)
    expected = int(match.group(1))
    if expected != len(nodes) + len(skipped):
        raise SwarmViewError(
            f"trailer says nodes={expected} but {len(nodes) + len(skipped)} node lines were read "
            "(output truncated?)",
            trailer_number,
        )
    return SwarmListing(tuple(nodes), tuple(skipped), ports, skipped_ports)


def parse_port_line(line: str, line_number: int | None = None) -> PublishedPort:
    fields = [unquote_plus(field) for field in line.split()]
    if len(fields) != _PORT_FIELDS or fields[0] != _PORT_LINE:
        raise SwarmViewError(
            f"expected {_PORT_FIELDS} fields `{_PORT_FORMAT}`, got {len(fields)}: {_excerpt(line)}",
            line_number,
        )
    _, service, protocol, published, target, mode, certificate = fields
    if not _SERVICE_NAME.match(service):
        raise SwarmViewError(f"service name is not one Swarm allows: {_excerpt(service)}", line_number)
    if protocol not in _PROTOCOLS or mode not in _MODES:
        raise SwarmViewError(f"service {service}: protocol {protocol!r} / mode {mode!r} unknown", line_number)
    numbers = [_port_number(value) for value in (published, target)]
    if None in numbers:
        raise SwarmViewError(
            f"service {service}: ports must be whole numbers: {published!r} {target!r}", line_number
        )
    return PublishedPort(
        service=service,
        protocol=protocol,
        published=numbers[0] or 0,
        target=numbers[1] or 0,
        mode=mode,
        certificate="" if certificate == _NO_MANAGER_STATUS else certificate,
    )


def _port_number(value: str) -> int | None:
    if value == _NO_MANAGER_STATUS:
        return 0  # Go prints `-` for an unset (zero) port
    return int(value) if re.fullmatch(r"[0-9]{1,6}", value) else None


def _port_section(
    lines: list[tuple[int, str]],
) -> tuple[tuple[PublishedPort, ...] | None, tuple[SkippedLine, ...], list[tuple[int, str]]]:
    """The port lines and their ``ports=<count>`` line, if the output has them, and the node lines.

    The count must match, or the section is not trusted (None: the ports are unknown)."""
    trailer = next(
        ((i, n, m) for i, (n, line) in enumerate(lines) if (m := _PORTS_TRAILER.match(line))), None
    )
    if trailer is None:
        return None, (), [(n, line) for n, line in lines if not _is_port_line(line)]
    index, number, match = trailer
    section, body = lines[:index], lines[index + 1 :]
    ports: list[PublishedPort] = []
    skipped: list[SkippedLine] = []
    for line_number, line in section:
        try:
            ports.append(parse_port_line(line, line_number))
        except SwarmViewError as err:
            skipped.append(SkippedLine(line_number, str(err), may_be_manager=False))
    if int(match.group(1)) != len(section):
        why = f"ports={match.group(1)} but {len(section)} port lines were read"
        return None, (SkippedLine(number, why, may_be_manager=False),), body
    return tuple(ports), tuple(skipped), body


def _is_port_line(line: str) -> bool:
    return line.split(maxsplit=1)[0] == _PORT_LINE


def _may_be_manager(line: str) -> bool:
    fields = line.split()
    return len(fields) != _FIELD_COUNT or unquote_plus(fields[1]) != Role.WORKER


def _member(enum: type[_E], value: str, what: str, line_number: int | None) -> _E:
    try:
        return enum(value)
    except ValueError:
        allowed = "/".join(member.value for member in enum)
        raise SwarmViewError(f"{what} must be one of {allowed}, got {value!r}", line_number) from None


def _excerpt(line: str, limit: int = 120) -> str:
    return repr(line if len(line) <= limit else line[:limit] + "…")
