"""The lab tier: unit tests of the lab's parts run anywhere; ``lab``-marked scenario tests need root and
dockerd. Without them the tier is skipped with a loud reason — except under CI=true, where it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.__main__ import cannot_run

REPO = Path(__file__).resolve().parents[2]
LAB_PREFIX = "skl"  # everything the lab tier creates is named skl*; lab.nodes.leftovers() sees it too
LAB_BRIDGE = "sklbr0"
LAB_SUBNET = "10.97.0.0/24"
_SKIPPED: list[str] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def lab_machine() -> None:
    """Skip (loudly) when this machine cannot run the lab; under CI=true, fail instead."""
    why = cannot_run()
    if why is None:
        return
    if _in_ci():
        pytest.fail(f"CI=true but the lab tier cannot run: {why}")
    _SKIPPED.append(why)
    pytest.skip(f"LAB TIER SKIPPED: {why}")


@pytest.fixture(scope="session")
def lab_template(lab_machine: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack as synthesized now (app.py into a temp cdk.out), so the tier tests the current infra/."""
    out = tmp_path_factory.mktemp("cdk.out")
    env = {
        **os.environ,
        "CDK_OUTDIR": str(out),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_CLI_TELEMETRY": "1",
    }
    proc = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        pytest.fail(f"synth failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    found = sorted(out.glob("swarmkeeper-*.template.json"))
    if not found:
        pytest.fail(f"synth wrote no swarmkeeper-*.template.json into {out}")
    return found[0]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SKIPPED:
        terminalreporter.write_sep("!", "LAB TIER SKIPPED", red=True, bold=True)
        terminalreporter.write_line(f"The lab scenarios did not run: {_SKIPPED[0]}", red=True, bold=True)
