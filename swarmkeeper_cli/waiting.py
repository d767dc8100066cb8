"""Waiting for an outcome the control plane reports later: poll, show each new state once on stderr,
give up after a timeout (exit TIMEOUT: the action may still complete)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from swarmkeeper_cli.context import Context
from swarmkeeper_cli.errors import CliError, Exit

T = TypeVar("T")
POLL_SECONDS = 2.0


class Progress:
    """Says a state once, and again only when it changed."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.last = ""
        self.started = ctx.clock()

    def say(self, text: str) -> None:
        if text != self.last:
            self.last = text
            self.ctx.out.progress(f"{text} ({self.ctx.clock() - self.started:.0f}s)")


def wait_for(ctx: Context, what: str, poll: Callable[[], T | None], timeout: float) -> T:
    """``poll()`` until it returns something, every POLL_SECONDS, for at most ``timeout`` seconds."""
    deadline = ctx.clock() + timeout
    while True:
        found = poll()
        if found is not None:
            return found
        if ctx.clock() >= deadline:
            raise CliError(
                f"{what}: no outcome after {timeout:.0f}s; it may still complete (swarmkeeper events)",
                Exit.TIMEOUT,
            )
        ctx.sleep(POLL_SECONDS)
