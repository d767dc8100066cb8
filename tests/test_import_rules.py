"""The rules of the house about imports, read from the source (no module is imported):

- the domain imports the standard library and the domain only: no boto3, no Powertools, no adapters,
  no flows, no wiring;
- adapters import no flows and no wiring (``runtime``, ``handling``);
- flows reach AWS through adapters only (no boto3 / botocore) and import no wiring;
- a handler imports, of swarmkeeper, only ``handling``, ``inputs``, ``runtime`` and the kernel
  (``domain.kernel``), and no boto3;
- the operators' CLI (``swarmkeeper_cli``, outside the layer) uses, of the layer, only the domain and
  the state table's adapters (its typed items, the stacks' records), never the flows, the wiring or
  the other adapters;
  nothing in the layer or the handlers imports it;
- nothing in the Lambda layer, and nothing in the lab, the bench or the CLI, imports in a circle;
- no module of the layer, the handlers, the infrastructure, the lab, the bench or the CLI is over 600
  lines.

Every import counts, also one inside a function or under ``TYPE_CHECKING``."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYER = REPO / "layers/swarmkeeper/python"
PACKAGE = LAYER / "swarmkeeper"
HANDLERS = sorted(REPO.glob("functions/*/handler.py"))
MAX_LINES = 600

AWS_SDK = ("boto3", "botocore")
WIRING = ("swarmkeeper.runtime", "swarmkeeper.handling")
CLI = "swarmkeeper_cli"
CLI_MAY_USE = ("swarmkeeper.domain", "swarmkeeper.adapters.state", "swarmkeeper.adapters.stack_records")
HANDLER_MAY_USE = (
    "swarmkeeper.handling",
    "swarmkeeper.inputs",
    "swarmkeeper.runtime",
    "swarmkeeper.domain.kernel",
)


def module_of(path: Path) -> str:
    parts = path.relative_to(LAYER).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


LAYER_MODULES = {module_of(p): p for p in sorted(PACKAGE.rglob("*.py"))}
CLI_MODULES = {
    ".".join(p.relative_to(REPO).with_suffix("").parts[: -1 if p.name == "__init__.py" else None]): p
    for p in sorted((REPO / CLI).rglob("*.py"))
}
LAB_MODULES = {
    ".".join(p.relative_to(REPO).with_suffix("").parts[: -1 if p.name == "__init__.py" else None]): p
    for folder in ("lab", "bench")
    for p in sorted((REPO / folder).rglob("*.py"))
}


def imports(name: str, path: Path, known: dict[str, Path] = LAYER_MODULES) -> Iterator[str]:
    """Every module the module ``name`` (at ``path``) imports; ``from package import name`` is the
    submodule when there is one among ``known``."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's own package upwards
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if sub in known else base


def under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in prefixes)


def stdlib(module: str) -> bool:
    return module.split(".")[0] in sys.stdlib_module_names or module == "__future__"


def broken_rules(paths: dict[str, Path]) -> list[str]:
    """Each import that breaks a rule, as "<module> imports <module> (<rule>)"."""
    broken = []
    for name, path in paths.items():
        for imported in imports(name, path):
            if under(name, (CLI,)):
                if under(imported, ("swarmkeeper",)) and not under(imported, CLI_MAY_USE):
                    broken.append(
                        f"{name} imports {imported} (the CLI uses, of the layer, {', '.join(CLI_MAY_USE)})"
                    )
                continue
            if under(imported, (CLI,)):
                broken.append(
                    f"{name} imports {imported} (nothing in the layer or the handlers imports the CLI)"
                )
            elif under(name, ("swarmkeeper.domain",)):
                if not (stdlib(imported) or under(imported, ("swarmkeeper.domain",))):
                    broken.append(
                        f"{name} imports {imported} (the domain imports only the stdlib and the domain)"
                    )
            elif under(name, ("swarmkeeper.adapters",)):
                if under(imported, ("swarmkeeper.flows", *WIRING)):
                    broken.append(f"{name} imports {imported} (adapters import no flows and no wiring)")
            elif under(name, ("swarmkeeper.flows",)) and under(imported, (*AWS_SDK, *WIRING)):
                broken.append(f"{name} imports {imported} (flows reach AWS through adapters, no wiring)")
            elif name.startswith("functions."):
                others = under(imported, ("swarmkeeper",)) and not under(imported, HANDLER_MAY_USE)
                if others or under(imported, AWS_SDK):
                    broken.append(f"{name} imports {imported} (a handler uses {', '.join(HANDLER_MAY_USE)})")
    return broken


def cycles(paths: dict[str, Path]) -> list[list[str]]:
    """The layer's import cycles (strongly connected components of more than one module, or a
    module importing itself), by Tarjan's algorithm."""
    edges = {
        name: sorted({i for i in imports(name, path, paths) if i in paths}) for name, path in paths.items()
    }
    selfloops = [[name] for name, out in edges.items() if name in out]
    edges = {name: [i for i in out if i != name] for name, out in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found + selfloops


def checked_modules() -> dict[str, Path]:
    handlers = {f"functions.{p.parent.name}.handler": p for p in HANDLERS}
    return {**LAYER_MODULES, **handlers, **CLI_MODULES}


def test_every_import_follows_the_rules():
    # Given the layer and the handlers as committed / When their imports are read
    broken = broken_rules(checked_modules())

    # Then none breaks a rule
    assert broken == []


def test_nothing_in_the_layer_imports_in_a_circle():
    # Given the layer's modules / When the import graph is walked / Then it has no cycle
    assert cycles(LAYER_MODULES) == []


def test_nothing_in_the_lab_or_the_bench_imports_in_a_circle():
    # Given the lab's and the bench's modules / When the import graph is walked / Then it has no cycle
    assert cycles(LAB_MODULES) == []


def test_nothing_in_the_cli_imports_in_a_circle():
    # Given the CLI's modules / When the import graph is walked / Then it has no cycle
    assert CLI_MODULES and cycles(CLI_MODULES) == []


def test_the_cli_is_not_in_the_lambda_layer():
    # Given the layer's asset directory (everything under it is deployed) / Then the CLI is not there
    assert not list(LAYER.rglob(f"{CLI}*")) and (REPO / CLI / "main.py").is_file()


def test_no_module_is_over_600_lines():
    # Given the layer, the handlers, the infrastructure, the lab and the bench / When their lines are counted
    paths = [
        *PACKAGE.rglob("*.py"),
        *HANDLERS,
        *REPO.glob("infra/**/*.py"),
        REPO / "app.py",
        *LAB_MODULES.values(),
        *CLI_MODULES.values(),
    ]
    long = {str(p.relative_to(REPO)): n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES}

    # Then none is longer than one sitting's reading
    assert long == {}


# --- the checks themselves can fail ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "source", "rule"),
    [
        ("swarmkeeper.domain.sample", "import boto3", "the domain imports only"),
        (
            "swarmkeeper.domain.sample",
            "from swarmkeeper.adapters.state import StateTable",
            "the domain imports only",
        ),
        ("swarmkeeper.domain.sample", "from swarmkeeper.flows import flow", "the domain imports only"),
        (
            "swarmkeeper.adapters.sample",
            "from swarmkeeper.flows.join import JoinFlow",
            "adapters import no flows",
        ),
        ("swarmkeeper.flows.sample", "from botocore.exceptions import ClientError", "flows reach AWS"),
        ("functions.sample.handler", "from swarmkeeper.domain.join import JoinStepDue", "a handler uses"),
        ("functions.sample.handler", "from swarmkeeper import adapters", "a handler uses"),
        ("functions.sample.handler", "import boto3", "a handler uses"),
        ("swarmkeeper_cli.sample", "from swarmkeeper.flows.leave import LeaveFlow", "the CLI uses"),
        ("swarmkeeper_cli.sample", "from swarmkeeper import runtime", "the CLI uses"),
        ("swarmkeeper_cli.sample", "from swarmkeeper.adapters.commands import RunCommands", "the CLI uses"),
        ("swarmkeeper.flows.sample", "from swarmkeeper_cli import main", "nothing in the layer"),
        ("functions.sample.handler", "import swarmkeeper_cli.status", "nothing in the layer"),
    ],
)
def test_a_broken_rule_is_reported(tmp_path, module, source, rule):
    # Given a module that breaks a rule
    path = tmp_path / "sample.py"
    path.write_text(f"def later():\n    {source}\n")

    # When its imports are checked / Then the rule is named
    (broken,) = broken_rules({module: path})
    assert rule in broken


def test_the_rules_allow_what_the_house_does(tmp_path):
    # Given modules importing what their room may import
    allowed = {
        "swarmkeeper.domain.sample": "import re\nfrom swarmkeeper.domain.kernel import Decision",
        "swarmkeeper.adapters.sample": "from botocore.exceptions import ClientError\n"
        "from swarmkeeper import inputs",
        "swarmkeeper.flows.sample": "from swarmkeeper.adapters.state import StateTable",
        "functions.sample.handler": "from swarmkeeper import inputs, runtime\n"
        "from swarmkeeper.domain.kernel import Decision",
        "swarmkeeper_cli.sample": "import boto3\nfrom swarmkeeper.domain.models import Role\n"
        "from swarmkeeper.adapters.state import StateTable\nfrom swarmkeeper_cli import aws",
    }
    paths = {}
    for n, (module, source) in enumerate(allowed.items()):
        paths[module] = tmp_path / f"sample{n}.py"
        paths[module].write_text(source + "\n")

    # When they are checked / Then nothing is reported
    assert broken_rules(paths) == []


def test_a_cycle_is_reported(tmp_path):
    # Given two modules that import each other (one of them only when called)
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text("from swarmkeeper.domain import join\n")
    second.write_text("def later():\n    import swarmkeeper.domain.kernel\n")

    # When the graph is walked / Then the cycle is found
    found = cycles({"swarmkeeper.domain.kernel": first, "swarmkeeper.domain.join": second})
    assert found == [["swarmkeeper.domain.join", "swarmkeeper.domain.kernel"]]
