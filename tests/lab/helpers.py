"""Shared pieces of the lab's unit tests: an embedded region without a bridge, and a fake node."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab import patches
from lab.events import EventFactory
from lab.region import Region


class FakeNode:
    """lab.nodes.LabNode's run() contract, executed on the host (no namespace) — for unit tests only."""

    def __init__(self, name: str = "fake", ip: str = "10.97.0.5"):
        self.name = name
        self.ip = ip
        self.root_dir = Path(tempfile.gettempdir()) / f"swarmkeeper-fake-node-{name}"
        self.run_dir = self.root_dir / "run"
        self.ran: list[tuple[list[str], dict]] = []

    def run(self, argv, env=None, timeout=120, stdin=None):
        self.ran.append((argv, dict(env or {})))
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        return subprocess.run(
            argv, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout, input=stdin
        )


@contextmanager
def embedded_region() -> Iterator[Region]:
    region = Region(None, scrub=False).start()
    try:
        yield region
    finally:
        region.stop()
        patches.undo_all()


def factory(region: Region) -> EventFactory:
    return EventFactory(region.name, region.account)
