"""What the CLI prints: a human rendering on stdout by default, JSON with ``--json`` (one document,
or one per line for a stream of events), progress and errors on stderr so stdout stays parseable."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import IO, Any


class Output:
    def __init__(
        self,
        as_json: bool = False,
        quiet: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ):
        self.as_json = as_json
        self.quiet = quiet
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def result(self, human: str, data: Any) -> None:
        """The verb's answer (or one record of a stream): ``human`` or, with --json, ``data`` as one JSON
        document on one line."""
        self._write(self.stdout, json.dumps(data, sort_keys=True) if self.as_json else human)

    def progress(self, text: str) -> None:
        if not self.quiet:
            self._write(self.stderr, f"... {text}")

    def error(self, text: str) -> None:
        self._write(self.stderr, f"swarmkeeper: error: {text}")

    def _write(self, stream: IO[str], text: str) -> None:
        stream.write(text.rstrip("\n") + "\n")
        stream.flush()


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as an ISO 8601 UTC time to the second; None stays None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172_800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86_400}d"


def table(rows: list[list[str]]) -> str:
    """Rows as left-aligned columns (the first row is the header)."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
