"""The blocks of bench/report.md.tmpl (the document's prose), filled in with ``string.Template``."""

from __future__ import annotations

import functools
import re
from string import Template

from bench.paths import REPORT_TEMPLATE

_MARKER = re.compile(r"^<!-- block (\S+) -->\n", re.M)


def parse_blocks(text: str) -> dict[str, Template]:
    """Block name -> its text: from its marker line to the next one, less the last line break."""
    parts = _MARKER.split(text)
    names, bodies = parts[1::2], parts[2::2]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"blocks defined twice: {duplicated}")
    return {name: Template(body.removesuffix("\n")) for name, body in zip(names, bodies, strict=True)}


@functools.cache
def blocks() -> dict[str, Template]:
    return parse_blocks(REPORT_TEMPLATE.read_text())


def fill(block: str, /, **values: object) -> str:
    """The block with every ``$placeholder`` replaced (a missing value is an error, not a blank)."""
    return blocks()[block].substitute({k: str(v) for k, v in values.items()})
