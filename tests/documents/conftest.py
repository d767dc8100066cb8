"""The documents tier: the SSM documents' shell scripts, run for real on real dockerd lab nodes.

Tests marked ``lab`` need root and dockerd. Without them they are skipped with a loud reason, except
under CI (``CI=true``), where a missing lab is a failure: CI must run this tier.
"""

from __future__ import annotations

import os
import shutil

import pytest

_SKIPPED: list[str] = []


def _lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "not root (the lab needs network namespaces, iptables and dockerd)"
    missing = [
        c for c in ("dockerd", "docker", "containerd", "iptables", "ip", "nsenter") if not shutil.which(c)
    ]
    if missing:
        return f"missing {', '.join(missing)} (sudo make lab-prereqs installs them)"
    if not os.path.isfile("/bin/busybox"):
        return "missing /bin/busybox (apt-get install busybox-static)"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("lab") is None:
        return
    reason = _lab_unavailable()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"LAB TIER CANNOT RUN UNDER CI: {reason}", pytrace=False)
    _SKIPPED.append(item.nodeid)
    pytest.skip(f"LAB TIER SKIPPED — the shell documents were NOT tested: {reason}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SKIPPED:
        terminalreporter.write_sep(
            "!",
            f"{len(_SKIPPED)} lab tests SKIPPED: SSM documents untested on real dockerd",
            red=True,
            bold=True,
        )
