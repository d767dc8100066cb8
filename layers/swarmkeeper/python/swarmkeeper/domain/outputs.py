"""The machine-readable last stdout line of each document's script, and the token guard.

Nothing here ever returns a script's raw output: callers get parsed fields or a redacted, shortened
excerpt fit for a log line or an event's reason.
"""

from __future__ import annotations

import re

from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.models import Role
from swarmkeeper.domain.swarm import NODE_ID_PATTERN

_TOKEN = re.compile(r"SWMTKN-[A-Za-z0-9_-]*")
_PAIR = re.compile(r"([a-z][a-z-]*)=(\S+)")
_WORD = re.compile(r"[a-z]{1,16}")  # a node state: ready, down, unknown, disconnected
_COUNT = re.compile(r"[0-9]{1,9}")
# What `docker swarm join` says when the token it was given has just been rotated.
_BAD_TOKEN = re.compile(r"join token|invalid token", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace anything that looks like a swarm join token."""
    return _TOKEN.sub("<redacted>", text)


def excerpt(text: str, limit: int = 240) -> str:
    """The last non-empty lines of ``text``, redacted, at most ``limit`` characters, on one line."""
    lines = [line.strip() for line in redact(text).splitlines() if line.strip()]
    joined = " | ".join(lines)
    return joined[-limit:]


def last_line_fields(stdout: str) -> dict[str, str]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return {}
    return dict(_PAIR.findall(lines[-1]))


@frozen
class BootstrapResult:
    node_id: str
    role: Role
    cluster_id: str


@frozen
class VerifyResult:
    node_id: str
    state: str
    role: str


def _node_id(fields: dict[str, str], name: str = "node-id") -> str | None:
    """A swarm id (node or cluster: 25 lowercase letters and digits), or None."""
    value = fields.get(name, "")
    return value if NODE_ID_PATTERN.fullmatch(value) else None


def parse_bootstrap(stdout: str) -> BootstrapResult | None:
    f = last_line_fields(stdout)
    node_id = _node_id(f)
    if node_id is None or f.get("role") not in set(Role):
        return None
    return BootstrapResult(node_id=node_id, role=Role(f["role"]), cluster_id=_node_id(f, "cluster-id") or "")


def parse_verify(stdout: str) -> VerifyResult | None:
    f = last_line_fields(stdout)
    node_id = _node_id(f)
    if node_id is None or not _WORD.fullmatch(f.get("state", "")):
        return None
    role = f.get("role", "")
    return VerifyResult(node_id=node_id, state=f["state"], role=role if role in set(Role) else "")


def parse_rotated(stdout: str) -> tuple[str, ...]:
    rotated = last_line_fields(stdout).get("rotated", "")
    return tuple(r for r in rotated.split(",") if r)


def says_bad_join_token(output: str) -> bool:
    return bool(_BAD_TOKEN.search(output))


@frozen
class DrainResult:
    node_id: str
    tasks_remaining: int
    missing: bool  # the swarm no longer knows the node


def parse_drain(stdout: str) -> DrainResult | None:
    f = last_line_fields(stdout)
    remaining = f.get("tasks-remaining", "")
    node_id = _node_id(f)
    if node_id is None or not _COUNT.fullmatch(remaining):
        return None
    return DrainResult(node_id, int(remaining), f.get("missing") == "true")


def parse_removed(stdout: str) -> str | None:
    """The node id remove-node removed (or found gone), None when it did not say so."""
    f = last_line_fields(stdout)
    return _node_id(f) if f.get("removed") == "true" else None


def parse_left(stdout: str) -> bool:
    return last_line_fields(stdout).get("left") == "true"
