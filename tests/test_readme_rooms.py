"""The README's room table ("Where each room of the code lives") matches the tree: every path it names
exists, and every module of the domain and the flows is named there."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "layers/swarmkeeper/python/swarmkeeper"


def rooms() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("### Where each room of the code lives")
    return text[start : text.index("<!-- CONTRACT:END -->", start)]


def test_every_path_in_the_room_table_exists():
    # Given the paths the table names (``layers/…/`` is the layer's python/ folder)
    paths = [p for p in re.findall(r"`([^`\s]+/[^`\s]*)`", rooms()) if not p.startswith("cdk.json")]

    # When each is looked up, from the repository or from the swarmkeeper package
    def exists(path: str) -> bool:
        pattern = path.replace("layers/…/", "layers/swarmkeeper/python/").replace("<name>", "*")
        return any(base.glob(pattern.rstrip("/")) for base in (REPO, PACKAGE))

    missing = [p for p in paths if not exists(p)]

    # Then none is missing
    assert paths and missing == []


def test_every_domain_and_flow_module_is_in_the_room_table():
    table = rooms()
    modules = [p for room in ("domain", "flows") for p in sorted((PACKAGE / room).glob("*.py"))]
    unnamed = [
        f"{p.parent.name}/{p.name}" for p in modules if p.name != "__init__.py" and p.name not in table
    ]
    assert unnamed == []
