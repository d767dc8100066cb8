"""What an operator sees of a lab cluster through the CLI: ``swarmkeeper status``, ``nodes`` and
``events`` run as their own process against the embedded region, pointed at it by the variables the
lab's instances get (AWS_ENDPOINT_URL, AWS_REGION, the lab's fake keys), and checked against the
swarm the scenario formed. Their output goes into the report's notes, which the lab prints."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from lab.cluster import REPO, Lab, settle
from lab.scenarios.report import Report

LAYER = REPO / "layers" / "swarmkeeper" / "python"


def swarmkeeper(lab: Lab, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``swarmkeeper ARGS`` (the console script's entry point, from this checkout)."""
    assert lab.region is not None and lab.stack is not None
    cluster = next(iter(lab.stack.functions.values())).environment["CLUSTER_NAME"]
    env = {
        **lab.region.environment(lab.region.local_url),
        "SWARMKEEPER_CLUSTER": cluster,
        # Lambda's Invoke is the lab's own (lab/invoke.py), not the moto server's
        **({"AWS_ENDPOINT_URL_LAMBDA": lab.invoke.url} if lab.invoke else {}),
        "PYTHONPATH": f"{REPO}:{LAYER}",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        [sys.executable, "-m", "swarmkeeper_cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def operator_view(lab: Lab, r: Report, managers: int, workers: int, scale: float) -> None:
    """After a reconcile pass has seen the whole swarm: status, nodes and events as the CLI shows
    them, and their exit codes."""
    asked = time.time()
    lab.fire_schedule("reconcile")

    def seen() -> dict[str, Any] | None:
        answer = swarmkeeper(lab, "status", "--json")
        data = json.loads(answer.stdout) if answer.stdout.strip() else {}
        age = data.get("reconcile", {}).get("lastPassAgeSeconds")
        fresh = age is not None and age <= time.time() - asked + 1
        return data if fresh and data.get("healthy") else None

    data = settle(seen, 60 * scale, every=2.0)
    status = swarmkeeper(lab, "status")
    r.check("swarmkeeper status: healthy (exit 0)", status.returncode == 0, status.stderr.strip())
    r.check(
        f"swarmkeeper status: {managers} managers, {workers} workers, margin 1",
        bool(data)
        and data["managers"]["ready"] == managers
        and data["workers"] == {"total": workers, "down": 0}
        and data["quorum"]["margin"] == 1,
        str(data)[:300],
    )
    nodes = swarmkeeper(lab, "nodes")
    listed = [line for line in nodes.stdout.splitlines()[1:] if line.startswith("i-")]
    r.check("swarmkeeper nodes: one line per instance", len(listed) == managers + workers, nodes.stderr)
    events = swarmkeeper(lab, "events", "--since", "1h")
    joined = [line for line in events.stdout.splitlines() if "Node Joined" in line]
    r.check(
        "swarmkeeper events: every join on the timeline",
        events.returncode == 0 and len(joined) == managers + workers,
        events.stderr.strip()[:300],
    )
    shown = ((("status",), status), (("nodes",), nodes), (("events", "--since", "1h"), events))
    for args, answer in shown:
        command = f"$ swarmkeeper {' '.join(args)}   (exit {answer.returncode})"
        r.notes.append(f"{command}\n{answer.stdout.rstrip()}")
