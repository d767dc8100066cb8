"""Single joins and crash removals at several cluster sizes, each join next to the direct baseline: the
figures ``join_overhead_ratio`` and ``removal_latency_s`` (and the chart's series)."""

from __future__ import annotations

import argparse
import logging
import time

from bench.figures import Figure, Results, durations, format_value, median, ratio
from bench.lab_driver import LabBench, lab_config, settings_for_baseline
from bench.paths import RUNS
from lab.cluster import Lab

log = logging.getLogger("bench")


def size_series(args: argparse.Namespace, res: Results) -> None:
    """At each size s: per run, one worker added (desired +1: a measured join at s, s+1, ...), the
    baseline on a fresh node, then that worker crashed (a measured removal). The instance moto's Auto
    Scaling launches in its place joins through the `running` fallback and is not measured (moto
    replaces it without a launch lifecycle action)."""
    sizes = [int(s) for s in args.sizes.split(",")]
    managers = args.managers
    per_size: dict[int, dict[str, list]] = {}
    t0 = time.monotonic()
    with Lab(lab_config(args)) as lab:
        res.extra["lab_setup_s"] = time.monotonic() - t0
        b = LabBench(lab, managers)
        lab.set_desired("manager", managers)
        if not b.wait_size(0, 300 * args.timeout_scale):
            raise RuntimeError("managers did not form a swarm")
        b.find_leader()
        settings = settings_for_baseline(lab)
        workers = 0
        for size in sizes:
            rows: dict[str, list] = {"join": [], "removal": [], "baseline": []}
            per_size[size] = rows
            if size - 1 > workers:
                workers = size - 1
                lab.set_desired("worker", workers)
                if not b.wait_size(workers, (120 + 10 * size) * args.timeout_scale):
                    log.error("could not grow to %d workers", workers)
                    break
            for _run in range(args.runs):
                before = b.group_members()
                workers += 1
                lab.set_desired("worker", workers)
                iid = b.new_worker(before)
                j = b.join_sample(iid, 180 * args.timeout_scale) if iid else None
                if j:
                    j["workers"] = workers
                    rows["join"].append(j)
                    print(
                        f"  {workers} workers: join {j['join_s']:.2f}s (boot {j['boot_s']:.2f}s)", flush=True
                    )
                if not b.wait_size(workers, 120 * args.timeout_scale):
                    log.error("%d workers did not settle", workers)
                    break
                base = b.baseline_sample(settings)
                if base:
                    rows["baseline"].append(base)
                    print(f"  {workers} workers: direct {base['direct_s']:.2f}s", flush=True)
                if not iid or not b.wait_size(workers, 60 * args.timeout_scale):
                    continue
                c = b.crash_sample(iid, 60 * args.timeout_scale)
                if c:
                    c["workers"] = workers
                    rows["removal"].append(c)
                    print(f"  {workers} workers: removal {c['removal_s']:.2f}s", flush=True)
                if not b.wait_size(workers, 120 * args.timeout_scale):  # the replacement joined
                    log.error("%d workers did not settle after the crash", workers)
                    break
        res.extra["lab_failed_invocations"] = sum(1 for r in lab.lambdas.records if not r.ok)
        res.extra["lab_invocations"] = len(lab.lambdas.records)
        res.extra["invocation_s"] = durations([r.duration for r in lab.lambdas.records])
        lab.dump(RUNS / "sizes")
    res.extra["sizes"] = {str(k): v for k, v in per_size.items()}


def size_figures(args: argparse.Namespace, res: Results) -> None:
    """The latency series, then its figures: join overhead and removal latency."""
    size_series(args, res)
    sizes = res.extra["sizes"]
    joins = [j["join_s"] for rows in sizes.values() for j in rows["join"]]
    boots = [j["boot_s"] for rows in sizes.values() for j in rows["join"]]
    bases = [b["direct_s"] for rows in sizes.values() for b in rows["baseline"]]
    removals = [c["removal_s"] for rows in sizes.values() for c in rows["removal"]]
    single = median(joins)
    res.extra["boot_s"] = median(boots)
    res.extra["agent_poll_s"] = median([j["agent_poll_s"] for r in sizes.values() for j in r["join"]])
    res.extra["commands_s"] = median([j["commands_s"] for r in sizes.values() for j in r["join"]])
    res.extra["direct_s"] = median(bases)
    res.extra["single_join_s"] = single
    res.add(
        Figure(
            "join_overhead_ratio",
            ratio(single, median(bases)),
            "<= 1.5",
            "median over every single worker join at every cluster size: launch lifecycle event -> lifecycle "
            "action CONTINUE with the node Ready, minus the simulated boot (until the SSM agent registered); "
            "divided by the median time bootstrap-node + verify-node take when run directly (same rendered "
            "scripts, same region) on a fresh node of the same lab with no control plane in between",
            f"join {format_value(single)} s vs direct {format_value(median(bases))} s; simulated boot "
            f"(excluded) {format_value(median(boots))} s; {len(joins)} joins, {len(bases)} direct runs",
        )
    )
    res.add(
        Figure(
            "removal_latency_s",
            median(removals),
            "<= 5",
            "median over crash removals at every cluster size: a worker's dockerd killed and its instance "
            "terminated (EC2 TerminateInstances, outside Auto Scaling); from the EC2 `shutting-down` state-"
            "change event to `docker node inspect` on the leader saying the node is gone (polled every 0.1 "
            "s)",
            f"{len(removals)} removals",
        )
    )
