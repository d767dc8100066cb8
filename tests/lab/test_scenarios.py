"""The lab tier: every scenario end to end — real dockerd nodes, the embedded region, the real handlers.

Needs root and dockerd (skipped loudly otherwise; under CI=true it must run). Scenario waits are
scaled down so the whole tier stays within 15 minutes on a 2-core machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cluster import Lab, LabConfig
from lab.events import Knobs
from lab.scenarios import diagnostics, run, timeline
from lab.scenarios.report import SCHEMA_CHECK
from tests.lab.conftest import LAB_BRIDGE, LAB_PREFIX, LAB_SUBNET

TIMEOUT_SCALE = 0.5

CASES = [
    "bootstrap",
    "burst",
    "rotate",
    "scale-in",
    "crash",
    "spot",
    "terminate-joining",
    "manager-rollover",
    "managers-replaced",
    "alarm",
    "seed",
    "ingress",
]


@pytest.mark.lab
@pytest.mark.parametrize("scenario", CASES)
def test_scenario(scenario: str, lab_template: Path, tmp_path: Path) -> None:
    config = LabConfig(
        template=lab_template,
        prefix=LAB_PREFIX,
        bridge=LAB_BRIDGE,
        subnet=LAB_SUBNET,
        log_dir=tmp_path,
        schedule_scale=0.0,
        events=Knobs(seed=7),
    )
    with Lab(config) as lab:
        report = run(lab, scenario, TIMEOUT_SCALE)
        summary = f"{timeline(lab)}\n{diagnostics(lab)}"
    failed = [f"{c.name}: {c.detail[:300]}" for c in report.checks if not c.ok]
    assert report.ok, f"{scenario}: {report.error or ''} {failed}\n{summary}"
    # and every event of its timeline matched the schema of its detail-type (schemas/)
    assert [c.ok for c in report.checks if c.name == SCHEMA_CHECK] == [True]
    # and nothing the lab recorded (function logs, commands with their parameters and output, AWS and
    # operators' events) holds a join token
    leaks = [str(f) for f in tmp_path.rglob("*") if f.is_file() and b"SWMTKN-" in f.read_bytes()]
    assert leaks == [], f"join token found in {leaks}"
