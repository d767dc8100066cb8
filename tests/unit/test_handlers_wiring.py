"""What a function imports in its cold start: the flows it names and what they are built from, and no
other flow (each in a fresh interpreter, as Lambda imports it). Given / When / Then."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from join_world import ENV, ROOT

from swarmkeeper import runtime

LAYER = ROOT / "layers" / "swarmkeeper" / "python"
FLOWS = (runtime.JOIN, runtime.LEAVE, runtime.RECONCILE, runtime.ROTATION, runtime.COMMANDS)


def _fresh(code: str, path: list[str], **env: str) -> Any:
    """Run ``code`` in a fresh interpreter on ``path``; it leaves its answer in ``out``."""
    probe = f"import json, sys\nsys.path[:0] = {path!r}\n{code}\nprint(json.dumps(out))"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", probe], env={**ENV, **env}, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("flow", FLOWS)
def test_a_loaded_flow_is_built_without_importing_anything_more(flow):
    # Given a fresh interpreter that loaded one flow, as its function's import does
    code = f"""
import boto3
from swarmkeeper import runtime
from swarmkeeper.settings import RuntimeSettings
runtime.load({flow!r})
before = set(sys.modules)
session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
# When the first invocation builds it
getattr(runtime.Runtime.build(RuntimeSettings.from_env(), session), {flow!r})
out = sorted(m for m in set(sys.modules) - before if m.startswith("swarmkeeper"))
"""
    # Then every swarmkeeper module it is made of was imported by the load, in the init phase
    assert _fresh(code, [str(LAYER)]) == []


@pytest.mark.parametrize(
    ("function", "unused"),
    [
        ("reconcile", ("join", "leave", "rotation", "commands")),
        ("alarm", ("join", "leave", "rotation", "commands")),
        ("rotate_tokens", ("join", "leave", "reconcile", "commands")),
        ("interruption", ("join", "rotation", "commands")),
        ("lifecycle_action", ("rotation", "commands")),
    ],
)
def test_a_function_imports_only_the_flows_it_uses_and_no_http_library(function, unused):
    # Given a function's code and the layer, in Lambda (where the Tracer patches) / When it is imported
    code = "import handler\nout = sorted(sys.modules)"
    task_root = str(ROOT / "functions" / function)
    modules = set(_fresh(code, [task_root, str(LAYER)], LAMBDA_TASK_ROOT=task_root))
    # Then the flows it does not use stay unimported, and so does requests (X-Ray patches botocore only)
    assert not {f"swarmkeeper.flows.{flow}" for flow in unused} & modules
    assert "requests" not in modules
