"""A burst of 50 workers through the control plane and the same 50 joins run directly (the machine's own
limit), each in a fresh lab, with the burst's evidence: per-node steps, CPU, the lab's functions, the
swarm's node objects. The figures ``burst_50_*``."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.figures import Figure, Results, durations, format_value, median, ratio
from bench.lab_driver import (
    LabBench,
    cpu_meter,
    fresh_swarm,
    keep_manager_logs,
    lab_config,
    nodes_or_none,
    settings_for_baseline,
)
from bench.paths import RUNS
from bench.records import boot_excluded_burst, burst_phases, direct_burst_figure, saturation, swarm_summary
from lab.cluster import Lab, settle

log = logging.getLogger("bench")


def _launch_burst(b: LabBench, n: int, scale: float) -> list[str]:
    """Desired workers 0 -> n at once; until every new instance's launch action completed."""
    before = b.group_members()
    b.lab.set_desired("worker", n)
    new = settle(lambda: len(b.group_members() - before) >= n and sorted(b.group_members() - before), 60)
    new = list(new or [])
    settle(lambda: all(b.launch_done(i) for i in new), (300 + 6 * n) * scale, every=1.0)
    return new


def measured_burst(args: argparse.Namespace, run: int, n: int) -> dict:
    """Desired workers 0 -> n at once through the control plane (fresh lab, managers formed first)."""
    where = RUNS / f"burst{run}"
    shutil.rmtree(where, ignore_errors=True)  # this run's records only
    with Lab(lab_config(args, parallel_starts=args.burst_parallel)) as lab:
        b = fresh_swarm(lab, args)
        began = time.time()
        with cpu_meter(lab) as cpu:
            new = _launch_burst(b, n, args.timeout_scale)
        ended = time.time()
        ready = b.wait_size(n, 120 * args.timeout_scale)
        launch = {i: b.launch_event_at(i) for i in new}
        reg = {i: b.registered_at(i) for i in new}
        done = {i: (d.at if (d := b.launch_done(i)) and d.result == "CONTINUE" else None) for i in new}
        fig = boot_excluded_burst(
            {k: v for k, v in launch.items() if v},
            {k: v for k, v in reg.items() if v},
            {k: v for k, v in done.items() if v},
        )
        records = list(lab.lambdas.records)
        fig["all_ready_in_service"] = ready and sum(1 for v in done.values() if v) == n
        fig["failed_invocations"] = sum(1 for r in records if not r.ok)
        fig["invocation_s"] = durations([r.duration for r in records if began <= r.started <= ended])
        fig["abandoned"] = sum(
            1 for i in new if (d := b.launch_done(i)) is not None and d.result != "CONTINUE"
        )
        fig["timed_out_commands"] = sum(
            1 for h in list(lab.agents.history) if h["exit_code"] != 0 and "timed out" in h["stderr"]
        )
        fig["window_s"] = ended - began
        fig["cpu"] = {k: v for k, v in cpu.result.items() if k != "timeline"}
        registered = {
            iid: a.registered_at.timestamp() for iid, a in list(lab.agents.agents.items()) if a.registered_at
        }
        events = [{"at": c.at, **c.event} for c in list(lab.router.aws_events)]
        completed = [dict(c.__dict__) for c in list(lab.autoscaling.completed)]
        phases = burst_phases(events, list(lab.agents.history), completed, registered)
        fig["phases"] = phases["summary"]
        fig["verifiers"] = phases["verifiers"]
        fig["failed_join_attempts"] = phases["failed_join_attempts"]
        fig["lambda"] = {}
        for name in lab.lambdas.specs:
            rs = [r for r in records if r.function == name]
            if not rs:
                continue
            cap = lab.lambdas.knobs.concurrency
            if all(r.kind == "sqs" for r in rs):  # one batch at a time per poller
                cap = min(cap, args.sqs_pollers)
            cluster = lab.lambdas.specs[name].environment.get("CLUSTER_NAME", "")
            short = name.removeprefix(f"swarmkeeper-{cluster}-")
            fig["lambda"][short] = {
                "capacity": cap,
                "invocations": sum(1 for r in rs if began <= r.started <= ended),
                **saturation([r.__dict__ for r in rs], began, ended, cap),
            }
        managers = set(lab.instances("manager", ("InService", "Pending:Wait", "Terminating:Wait")))
        hostnames = {m.hostname: iid for iid, m in lab.fleet.machines.items() if iid not in managers}
        swarm = swarm_summary(nodes_or_none(b), hostnames)
        for row in phases["rows"]:
            created = swarm["created"].get(row["instance"])
            if created and row.get("bootstrap_started"):
                row["node_created"] = created
                row["to_node_created_s"] = created - row["bootstrap_started"]
        fig["to_node_created_s"] = durations([r.get("to_node_created_s") for r in phases["rows"]])
        fig["swarm"] = {k: v for k, v in swarm.items() if k != "created"}
        print(
            f"  burst {run}: {fig.get('nodes')} joined, figure {fig.get('figure_s', 0):.1f}s "
            f"(after last boot {fig.get('after_last_boot_s', 0):.1f}s, slowest "
            f"{fig.get('slowest_join_s', 0):.1f}s, "
            f"with boot {fig.get('makespan_with_boot_s', 0):.1f}s)",
            flush=True,
        )
        lab.dump(where)
        (where / "registrations.json").write_text(json.dumps(registered, indent=1))
        (where / "phases.json").write_text(json.dumps(phases, indent=1, default=str))
        (where / "cpu.json").write_text(json.dumps(cpu.result, indent=1))
        keep_manager_logs(lab, where)
    return fig


def direct_burst(args: argparse.Namespace, run: int, n: int) -> dict:
    """The same burst without the control plane: a fresh lab, its managers formed as in the measured
    burst; ``n`` fresh nodes booted as the Fleet boots instances (same parallelism); once all are up,
    bootstrap-node + verify-node run directly on all of them at once (``LabBench.direct_join``)."""
    where = RUNS / f"direct-burst{run}"
    shutil.rmtree(where, ignore_errors=True)
    with Lab(lab_config(args, parallel_starts=args.burst_parallel)) as lab:
        b = fresh_swarm(lab, args)
        settings = settings_for_baseline(lab)
        ips = b.free_ips(n)

        def boot(k: int) -> Any:
            try:
                return b.boot_direct_node(f"d{k + 1}", ips[k], f"direct-{k + 1}")
            except Exception as e:
                log.error("direct burst: node %d did not boot: %s", k + 1, e)
                return None

        t0 = time.time()
        with ThreadPoolExecutor(args.burst_parallel, thread_name_prefix="direct-boot") as pool:
            nodes = [x for x in pool.map(boot, range(n)) if x is not None]
        booted = time.time()
        with cpu_meter(lab) as cpu, ThreadPoolExecutor(len(nodes) or 1, thread_name_prefix="direct") as pool:
            rows = list(pool.map(lambda x: b.direct_join(x, settings, f"mi-direct-{x.name}"), nodes))
        fig = direct_burst_figure(rows, booted)
        fig["boot_all_s"] = booted - t0
        fig["cpu"] = {k: v for k, v in cpu.result.items() if k != "timeline"}
        swarm = swarm_summary(nodes_or_none(b), {x.hostname: x.name for x in nodes})
        for r in rows:
            created = swarm["created"].get(r["node_name"])
            if created:
                r["to_node_created_s"] = created - r["boot_start"]
        fig["to_node_created_s"] = durations([r.get("to_node_created_s") for r in rows])
        fig["swarm"] = {k: v for k, v in swarm.items() if k != "created"}
        fig["ready_nodes"] = sum(
            1
            for x in b.node_ls()
            if x.get("Status") == "Ready" and x.get("Hostname", "").startswith("direct-")
        )
        print(
            f"  direct burst {run}: {fig['ok']}/{len(rows)} ready, figure "
            f"{format_value(fig['figure_s'])}s (bootstrap-node median "
            f"{format_value(fig['bootstrap_s'].get('median'))}s, "
            f"max {format_value(fig['bootstrap_s'].get('max'))}s)",
            flush=True,
        )
        lab.dump(where)
        (where / "direct.json").write_text(
            json.dumps({"booted": booted, "rows": rows}, indent=1, default=str)
        )
        (where / "cpu.json").write_text(json.dumps(cpu.result, indent=1))
        keep_manager_logs(lab, where)
    return fig


def burst(args: argparse.Namespace, n: int) -> tuple[list[dict], list[dict]]:
    """``args.burst_runs`` measured bursts, each followed by a direct burst (both in fresh labs)."""
    measured, direct = [], []
    for run in range(1, args.burst_runs + 1):
        measured.append(measured_burst(args, run, n))
        if args.direct_burst:
            direct.append(direct_burst(args, run, n))
    return measured, direct


def burst_figures(args: argparse.Namespace, res: Results) -> None:
    """The bursts, then their figures against the single join and the direct burst of the same run."""
    single = res.extra.get("single_join_s")
    t0 = time.monotonic()
    bursts, directs = burst(args, args.burst_size)
    res.extra["burst"] = bursts
    res.extra["direct_burst"] = directs
    res.extra["burst_s"] = time.monotonic() - t0
    value = median([x.get("figure_s") for x in bursts])
    res.add(
        Figure(
            "burst_50_join_s",
            value,
            "",
            f"median of {len(bursts)} burst(s), each in a fresh lab with {args.managers} managers: "
            "desired "
            "workers 0 -> 50 at once; the boot-excluded makespan: the larger of (last CONTINUE - last "
            "agent "
            "registration) and (the slowest single node's CONTINUE - its registration)",
            "; ".join(
                f"{x.get('nodes')}/{args.burst_size} joined first time "
                f"({x.get('abandoned', 0)} abandoned after {x.get('timed_out_commands', 0)} timed-out "
                "commands), "
                f"with boot {x.get('makespan_with_boot_s', 0):.1f} s, boot span "
                f"{x.get('boot_span_s', 0):.1f} s, "
                f"after last boot {x.get('after_last_boot_s', 0):.1f} s, slowest "
                f"{x.get('slowest_join_s', 0):.1f} s, "
                f"median node {x.get('median_join_s', 0):.1f} s"
                for x in bursts
            ),
        )
    )
    res.add(
        Figure(
            "burst_50_vs_single_ratio",
            ratio(value, single),
            "<= 3",
            "burst_50_join_s / the single-join median of the same run",
            f"single join {format_value(single)} s",
        )
    )
    if directs:
        direct = median([x.get("figure_s") for x in directs])
        res.add(
            Figure(
                "burst_50_direct_s",
                direct,
                "",
                f"the machine's own limit, same run: median of {len(directs)} direct burst(s), each in a "
                f"fresh lab whose {args.managers} managers formed as in the measured burst; 50 fresh "
                "lab nodes booted as instances are (dockerd, image; same parallelism), then the same "
                "rendered bootstrap-node and verify-node run directly on all 50 at once (the single "
                "`direct` baseline's code path, no control plane, no Auto Scaling, no agent); from the "
                "moment all "
                "had booted to the last node Ready",
                "; ".join(
                    f"{x.get('ok')}/{x.get('nodes')} Ready, bootstrap-node median "
                    f"{format_value((x.get('bootstrap_s') or {}).get('median'))} s, max "
                    f"{format_value((x.get('bootstrap_s') or {}).get('max'))} s "
                    f"({x.get('over_120_s', 0)} over 120 s), {x.get('failed_join_attempts', 0)} join "
                    "attempts given up and retried"
                    for x in directs
                ),
            )
        )
        res.add(
            Figure(
                "burst_50_vs_direct_ratio",
                ratio(value, direct),
                "",
                "burst_50_join_s / burst_50_direct_s: what the control plane adds to a burst on top of "
                "what the same joins cost this machine anyway",
                f"burst {format_value(value)} s vs direct {format_value(direct)} s",
            )
        )
