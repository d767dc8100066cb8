"""Results an SSM agent of the lab holds back (``SsmAgents.hold``): an agent whose report is late, so
that a scenario can make a command's status arrive after what it races with (a terminate action)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HeldResult:
    """A command's result as its agent would have reported it, held back (``SsmAgents.hold``)."""

    command_id: str
    instance_id: str
    status: str
    stdout: str
    at: float  # time.time() when the command ended on the instance

    @property
    def node_id(self) -> str:
        """The ``node-id=`` bootstrap-node and verify-node print on their last line ("" when none)."""
        last = (self.stdout.strip().splitlines() or [""])[-1]
        fields = dict(part.split("=", 1) for part in last.split() if "=" in part)
        return fields.get("node-id", "")


@dataclass
class Hold:
    """The results of a document on the instances ``which`` selects stay unreported (the invocation
    InProgress, no status event) until ``release``: an agent whose report is late."""

    document: str  # the document's name ends with this
    which: Callable[[str], bool]  # instance id -> held or not
    held: list[HeldResult] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    released_at: float = 0.0

    def release(self) -> float:
        """Let every held result (and any later one) through; returns when (time.time())."""
        self.released_at = time.time()
        self.released.set()
        return self.released_at
