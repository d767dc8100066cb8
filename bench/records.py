"""What the lab's records say about a burst, as figures: pure functions of the records (the shapes of
lab-run/bench/burst*/aws-events.json, commands.json, lifecycle.json), no lab, no timing."""

from __future__ import annotations

import datetime
import itertools
import re
import statistics
from typing import Any

from bench.figures import durations


def boot_excluded_burst(
    launch: dict[str, float], registered: dict[str, float], done: dict[str, float]
) -> dict:
    """A burst's figures with the simulated boot taken out (times: epoch seconds per instance).

    ``after_last_boot`` = last completion - last registration (the backlog left once every node could
    take commands); ``slowest_join`` = the longest any one node waited from registration to completion.
    The figure is the larger of the two."""
    common = [i for i in done if i in registered and i in launch]
    if not common:
        return {}
    after_last = max(done[i] for i in common) - max(registered[i] for i in common)
    slowest = max(done[i] - registered[i] for i in common)
    return {
        "nodes": len(common),
        "makespan_with_boot_s": max(done[i] for i in common) - min(launch[i] for i in common),
        "boot_span_s": max(registered[i] for i in common) - min(launch[i] for i in common),
        "after_last_boot_s": after_last,
        "slowest_join_s": slowest,
        "median_join_s": statistics.median(done[i] - registered[i] for i in common),
        "figure_s": max(after_last, slowest),
    }


_JOIN_FAILED = re.compile(r"^bootstrap-node: join via \S+ failed", re.M)
_NODE_ID = re.compile(r"node-id=(\S+)")
PHASES = (  # (key, what it is) of a burst join, in order: together they add up to the join
    ("poll_s", "agent registered -> bootstrap-node sent (the control plane noticing the agent)"),
    ("bootstrap_queue_s", "bootstrap-node sent -> started on the node"),
    ("bootstrap_s", "bootstrap-node running on the node (the swarm join itself)"),
    ("to_verify_s", "bootstrap-node finished -> verify-node sent (status event, command_status)"),
    ("verify_queue_s", "verify-node sent -> started on the manager (the agent's command slots)"),
    ("verify_s", "verify-node running on the manager"),
    ("to_continue_s", "verify-node finished -> CONTINUE (status event, command_status)"),
)


def join_attempts_failed(stderr: str) -> int:
    """How many `docker swarm join` attempts bootstrap-node gave up on (its ``join via ... failed``
    lines: each one a join that did not finish within dockerd's 20 s, then ``swarm leave --force``)."""
    return len(_JOIN_FAILED.findall(stderr or ""))


def burst_phases(
    events: list[dict], history: list[dict], completed: list[dict], registered: dict[str, float]
) -> dict:
    """Where each join of a burst spent its time, from the lab's own records (the shapes of
    lab-run/bench/burst*/aws-events.json, commands.json and lifecycle.json; ``registered``: epoch
    seconds each SSM agent registered). One row per worker whose launch lifecycle action and agent
    registration were seen, with the epoch times of each step and the ``PHASES`` durations of its
    first bootstrap-node and the verify-node of the same node; ``summary``: their median / p90 / max;
    ``verifiers``: how many verify-node commands each manager ran."""
    launch: dict[str, float] = {}
    cmds: dict[str, dict[str, Any]] = {}
    for e in events:
        d = e.get("detail") or {}
        kind = e.get("detail-type")
        if kind == "EC2 Instance-launch Lifecycle Action" and "worker" in str(d.get("AutoScalingGroupName")):
            launch.setdefault(d.get("EC2InstanceId"), e["at"])
        elif kind == "EC2 Command Invocation Status-change Notification":
            doc = str(d.get("document-name", ""))
            action = "bootstrap-node" if doc.endswith("bootstrap-node") else "verify-node"
            if not doc.endswith(("bootstrap-node", "verify-node")):
                continue
            c = cmds.setdefault(d.get("command-id"), {"action": action, "on": d.get("instance-id")})
            c.setdefault(d.get("status"), e["at"])
    runs = {h["command_id"]: h for h in history if h.get("command_id")}
    joiner_of_node: dict[str, str] = {}
    boots: dict[str, list[dict]] = {}
    verifies: dict[str, list[dict]] = {}
    for cid, c in cmds.items():
        h = runs.get(cid) or {}
        c["id"] = cid
        c["end"] = next((c[s] for s in ("Success", "Failed", "TimedOut", "Cancelled") if s in c), None)
        if c["action"] == "bootstrap-node":
            boots.setdefault(c["on"], []).append(c)
            c["failed_attempts"] = join_attempts_failed(h.get("stderr", ""))
            last = ((h.get("stdout") or "").strip().splitlines() or [""])[-1]
            if m := _NODE_ID.search(last):
                joiner_of_node[m.group(1)] = c["on"]
        else:
            node = (h.get("parameters") or {}).get("NodeId")
            c["node"] = node[0] if isinstance(node, list) and node else node
    for c in cmds.values():
        if c["action"] == "verify-node" and c.get("node") in joiner_of_node:
            verifies.setdefault(joiner_of_node[c["node"]], []).append(c)
    done = {
        c["instance_id"]: c
        for c in completed
        if c.get("transition", "").endswith("LAUNCHING") and c["instance_id"] in launch
    }
    rows = []
    for iid, at in sorted(launch.items(), key=lambda kv: kv[1]):
        reg = registered.get(iid)
        b = sorted(boots.get(iid, []), key=lambda c: c.get("Pending") or c.get("InProgress") or 0)
        if reg is None or not b:
            continue
        b0 = b[0]
        row: dict[str, Any] = {
            "instance": iid,
            "launch": at,
            "registered": reg,
            "bootstrap_sent": b0.get("Pending"),
            "bootstrap_started": b0.get("InProgress"),
            "bootstrap_ended": b0["end"],
            "bootstrap_ok": "Success" in b0,
            "failed_join_attempts": b0.get("failed_attempts", 0),
        }
        v = sorted(verifies.get(iid, []), key=lambda c: c.get("Pending") or 0)
        if v:
            row |= {
                "verifier": v[0]["on"],
                "verify_sent": v[0].get("Pending"),
                "verify_started": v[0].get("InProgress"),
                "verify_ended": v[0]["end"],
            }
        if iid in done:
            row["result"], row["completed"] = done[iid].get("result"), done[iid]["at"]
        steps = [
            "registered",
            "bootstrap_sent",
            "bootstrap_started",
            "bootstrap_ended",
            "verify_sent",
            "verify_started",
            "verify_ended",
            "completed",
        ]
        for (key, _), a, z in zip(PHASES, steps, steps[1:], strict=False):
            if row.get(a) is not None and row.get(z) is not None:
                row[key] = row[z] - row[a]
        if row.get("result") == "CONTINUE":
            row["join_s"] = row["completed"] - reg
        rows.append(row)
    verifiers: dict[str, int] = {}
    for r in rows:
        if r.get("verifier"):
            verifiers[r["verifier"]] = verifiers.get(r["verifier"], 0) + 1
    return {
        "rows": rows,
        "summary": {key: durations([r.get(key) for r in rows]) for key, _ in (*PHASES, ("join_s", ""))},
        "verifiers": verifiers,
        "failed_join_attempts": sum(r["failed_join_attempts"] for r in rows),
    }


def saturation(records: list[dict], start: float, end: float, capacity: int, gap: float = 0.25) -> dict:
    """Of the window ``start``..``end``: the mean number of invocations running, the share of the
    window during which all ``capacity`` workers were busy, and the longest stretch they stayed all
    busy (pauses shorter than ``gap``, a worker picking up its next event, do not break it);
    ``records``: started, duration."""
    window = end - start
    if window <= 0:
        return {"mean_busy": 0.0, "all_busy": 0.0, "longest_all_busy_s": 0.0}
    edges = []
    for r in records:
        a, z = max(r["started"], start), min(r["started"] + r["duration"], end)
        if z > a:
            edges += [(a, 1), (z, -1)]
    edges.sort()
    busy = full = longest = 0.0
    level, last = 0, start
    stretch: list[float] = []  # [begin, end] of the current all-busy stretch
    for t, step in edges:
        busy += level * (t - last)
        if level >= capacity:
            full += t - last
            if stretch and last - stretch[1] <= gap:
                stretch[1] = t
            else:
                stretch = [last, t]
            longest = max(longest, stretch[1] - stretch[0])
        level, last = level + step, t
    return {"mean_busy": busy / window, "all_busy": full / window, "longest_all_busy_s": longest}


def direct_burst_figure(rows: list[dict], booted: float) -> dict:
    """The direct burst: every node booted at ``booted`` (epoch s), then bootstrap-node + verify-node
    started on all of them at once; rows from ``LabBench.direct_join``. The figure is the time from
    ``booted`` to the last node seen Ready (over the nodes that made it; ``ok`` says how many did)."""
    ok = [r for r in rows if r.get("ok")]
    boot = [r["boot_end"] - r["boot_start"] for r in rows if r.get("boot_end")]
    verify = [r["verify_end"] - r["verify_start"] for r in ok]
    return {
        "nodes": len(rows),
        "ok": len(ok),
        "figure_s": (max(r["verify_end"] for r in ok) - booted) if ok else None,
        "bootstrap_s": durations(boot),
        "verify_s": durations(verify),
        "join_s": durations([r["verify_end"] - booted for r in ok]),
        "failed_join_attempts": sum(r.get("join_attempts_failed", 0) for r in rows),
        "over_120_s": sum(1 for b in boot if b > 120),
    }


def parse_go_time(text: str) -> float | None:
    """``2026-11-30T18:05:50.123456789Z`` (Docker's JSON times) -> epoch seconds."""
    m = re.fullmatch(r'"?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)"?', text.strip())
    if not m:
        return None
    base = datetime.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + float("0." + (m.group(2) or "0"))


def swarm_summary(nodes: list[dict], hostnames: dict[str, str]) -> dict:
    """Node objects per joining instance (more than one: a cancelled join left one behind) and when
    the first was created; ``hostnames``: hostname -> instance (or direct node)."""
    states: dict[str, int] = {}
    per: dict[str, list[float]] = {}
    for n in nodes:
        states[n["state"]] = states.get(n["state"], 0) + 1
        who = hostnames.get(n["hostname"])
        if who and n["created"]:
            per.setdefault(who, []).append(n["created"])
    created = sorted(min(v) for v in per.values())
    return {
        "node_objects": len(nodes),
        "states": states,
        "extra_node_objects": sum(len(v) - 1 for v in per.values()),
        "created": {k: min(v) for k, v in per.items()},
        "created_span_s": (created[-1] - created[0]) if created else None,
        "created_gaps_s": durations([b - a for a, b in itertools.pairwise(created)]),
    }
