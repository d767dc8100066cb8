"""`make lint` as a test: ruff (lint and format) and shellcheck are clean on the whole tree, and the type
checker (mypy, strict; what it checks is in pyproject.toml) on the Lambda layer and the handlers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the project's virtualenv (ruff, mypy and shellcheck come from it)


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
        [
            "shellcheck",
            *sorted(str(p.relative_to(REPO)) for p in REPO.glob("infra/documents/*.sh")),
            *sorted(str(p.relative_to(REPO)) for p in REPO.glob("lab/images/srv/**/*") if p.is_file()),
            ".ci/run",
        ],
    ],
    ids=["ruff-check", "ruff-format", "mypy", "shellcheck"],
)
def test_lint_is_clean(command):
    # Given the tree as committed / When the linter runs / Then it reports nothing
    tool = BIN / command[0]
    assert tool.exists(), f"{tool} missing: run `make venv`"
    proc = subprocess.run([str(tool), *command[1:]], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
