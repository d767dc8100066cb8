"""docs/benchmarks.md from a run's results: the tables come from the figures, the prose from the blocks
of bench/report.md.tmpl."""

from __future__ import annotations

import argparse
import datetime
import time
from typing import Any

from bench.figures import (
    ORDER,
    Results,
    format_or_dash,
    format_seconds,
    format_share,
    format_value,
    median,
    ratio,
)
from bench.machine import machine
from bench.reasons import misses
from bench.records import PHASES
from bench.template import fill

CPU_KINDS = (
    "scripts and CLIs (reaped children)",
    "other nodes' daemons",
    "manager daemons",
    "lambda workers",
    "lab process (moto, lab threads)",
    "other",
)
QUIET_LOAD_PER_CPU = 0.5  # a 1-minute load average below this, per CPU, at the start: a quiet machine


def render_doc(res: Results, args: argparse.Namespace, chart_ok: bool) -> str:
    return (
        fill(
            "document",
            arguments=f" {' '.join(args.argv)}" if args.argv else "",
            date=f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M}",
            minutes=f"{(time.monotonic() - res.started) / 60:.1f}",
            figure_rows="\n".join(_figure_row(res, name) for name in ORDER),
            methods="\n".join(
                fill(
                    "method",
                    name=name,
                    value=format_value(f.value),
                    method=f.method,
                    detail=f.detail,
                )
                for name in ORDER
                if (f := res.figures.get(name)) is not None
            ),
            machine="\n".join(machine_lines(res, args)),
            sizes=_section(sizes_section(res, args, chart_ok)),
            burst=_section(burst_section(res, args)),
            calls=_section(calls_section(res)),
            misses=misses(res),
        ).rstrip()
        + "\n"
    )


def _section(text: str) -> str:
    return f"\n\n{text.rstrip()}" if text else ""


def _figure_row(res: Results, name: str) -> str:
    f = res.figures.get(name)
    if f is None:
        return f"| `{name}` | not measured | | |"
    met = {True: "yes", False: "**no**", None: "-"}[f.met]
    if f.goal == "minimum":
        met = "see below"
    return f"| `{name}` | {format_value(f.value)} | {f.goal or '-'} | {met} |"


def machine_lines(res: Results, args: argparse.Namespace) -> list[str]:
    """What the machine is, and how quiet it was: load average, other labs, the neighbour table."""
    lines = [f"- {k}: {v}" for k, v in machine().items()]
    load = res.extra.get("load") or {}
    if load.get("start"):
        start, cpus = load["start"], load.get("cpus") or 1
        quiet = start[0] < QUIET_LOAD_PER_CPU * cpus
        lines.append(
            fill(
                "machine.load",
                start=" / ".join(f"{x:.2f}" for x in start),
                end=" / ".join(f"{x:.2f}" for x in load.get("end") or ()) or "-",
                verdict=fill("machine.load.quiet")
                if quiet
                else fill("machine.load.busy", load=f"{start[0]:.2f}", cpus=cpus),
            )
        )
    q = res.extra.get("quiet")
    if q:
        extra = res.extra
        noisy = q["dockerd_at_start"] or extra.get("dockerd_before_lab") or extra.get("dockerd_during_lab")
        lines.append(
            fill(
                "machine.other_labs",
                first_look=q["dockerd_at_first_look"],
                at_start=q["dockerd_at_start"],
                waited=f"{q['waited_s']:.0f}",
                before_lab=res.extra.get("dockerd_before_lab", "?"),
                during_lab=res.extra.get("dockerd_during_lab", "?"),
            )
            + (fill("machine.other_labs.noisy") if noisy else "")
        )
    neigh = res.extra.get("neigh_table") or {}
    if neigh.get("before"):
        before = neigh["before"].get("gc_thresh3")
        if neigh.get("set"):
            lines.append(
                fill(
                    "machine.neigh.raised",
                    before=before,
                    thresh3=neigh["set"].get("gc_thresh3"),
                    thresh2=neigh["set"].get("gc_thresh2"),
                    nodes=neigh.get("nodes", "?"),
                )
            )
        else:
            lines.append(fill("machine.neigh.kept", before=before))
    if args.lab:
        lines.append(
            fill(
                "machine.lab",
                prefix=args.prefix,
                bridge=args.bridge,
                subnet=args.subnet,
                managers=args.managers,
                registration_delay=args.registration_delay,
            )
        )
    return lines


def sizes_section(res: Results, args: argparse.Namespace, chart_ok: bool) -> str:
    """Join and removal latency against cluster size: one row per size."""
    sizes = res.extra.get("sizes")
    if not sizes:
        return ""
    rows = []
    for size, by_kind in sizes.items():
        j = median([x["join_s"] for x in by_kind["join"]])
        d = median([x["direct_s"] for x in by_kind["baseline"]])
        r = median([x["removal_s"] for x in by_kind["removal"]])
        bt = median([x["boot_s"] for x in by_kind["join"]])
        poll = median([x["agent_poll_s"] for x in by_kind["join"]])
        samples = f"{len(by_kind['join'])}/{len(by_kind['baseline'])}/{len(by_kind['removal'])}"
        rows.append(
            f"| {size} | {format_value(j)} | {format_value(poll)} | {format_value(d)} | "
            f"{format_value(ratio(j, d))} | {format_value(r)} | {format_value(bt)} | {samples} |"
        )
    return fill(
        "sizes",
        managers=args.managers,
        runs=args.runs,
        chart=f"\n{fill('sizes.chart')}\n" if chart_ok else "",
        rows="\n".join(rows),
        boot=format_value(res.extra.get("boot_s")),
    )


def burst_section(res: Results, args: argparse.Namespace) -> str:
    """The burst's evidence: its steps, the machine during it and during the direct burst, the lab's
    Lambda service."""
    bursts, directs = res.extra.get("burst") or [], res.extra.get("direct_burst") or []
    if not bursts or "phases" not in bursts[0]:
        return ""
    x, d = bursts[0], (directs[0] if directs else {})
    knobs = res.extra.get("lab_knobs") or {}
    phases = x.get("phases") or {}

    def step(key: str) -> dict:
        return phases.get(key) or {}

    steps = [
        f"| {what} | {format_seconds(step(key).get('median'))} | {format_seconds(step(key).get('p90'))} | "
        f"{format_seconds(step(key).get('max'))} |"
        for key, what in PHASES
    ]
    c, dc = x.get("cpu") or {}, d.get("cpu") or {}
    cpu_rows = [
        f"| CPU s: {kind} | {format_or_dash((c.get('cpu_s') or {}).get(kind))} | "
        f"{format_or_dash((dc.get('cpu_s') or {}).get(kind))} |"
        for kind in CPU_KINDS
    ]
    return fill(
        "burst",
        concurrency=knobs.get("lambda_concurrency", "?"),
        pollers=knobs.get("sqs_pollers", "?"),
        registration_delay=knobs.get("registration_delay", "?"),
        nodes=x.get("nodes"),
        steps="\n".join(steps),
        join_median=format_seconds(step("join_s").get("median")),
        join_p90=format_seconds(step("join_s").get("p90")),
        join_max=format_seconds(step("join_s").get("max")),
        created=format_or_dash((x.get("to_node_created_s") or {}).get("median")),
        direct_created=format_or_dash((d.get("to_node_created_s") or {}).get("median")),
        failed_attempts=x.get("failed_join_attempts", 0),
        direct_failed_attempts=d.get("failed_join_attempts", 0),
        abandoned=x.get("abandoned", 0),
        **_machine_cells(c, ""),
        **_machine_cells(dc, "direct_"),
        cpu_rows="\n".join(cpu_rows),
        functions=_section(_functions(x)),
    )


def _machine_cells(cpu: dict, prefix: str) -> dict[str, str]:
    """One column of the burst's machine table (``prefix``: which column)."""
    runnable = cpu.get("runnable") or {}
    neigh = cpu.get("neigh") or {}
    cells = {
        "window": format_seconds(cpu.get("window_s")),
        "busy": format_share(cpu.get("busy_share")),
        "cpu_pressure": format_share(cpu.get("cpu_pressure_some")),
        "runnable": f"{format_or_dash(runnable.get('median'))} / {format_or_dash(runnable.get('max'))}",
        "io_pressure": format_share(cpu.get("io_pressure_some")),
        "neigh_entries": format_or_dash(neigh.get("max_entries")),
        "neigh_fulls": format_or_dash(neigh.get("table_fulls")),
    }
    return {prefix + k: v for k, v in cells.items()}


def _functions(x: dict) -> str:
    """The lab's Lambda service during the burst: one row per function that ran."""
    lam = x.get("lambda") or {}
    if not lam:
        return ""
    rows = [
        f"| {name} | {v['capacity']} | {v['invocations']} | {v['mean_busy']:.2f} | "
        f"{format_share(v['all_busy'])} | {format_seconds(v.get('longest_all_busy_s'))} |"
        for name, v in sorted(lam.items())
        if v.get("invocations")
    ]
    return fill("burst.functions", rows="\n".join(rows))


def calls_section(res: Results) -> str:
    """The API calls per join and per removal, event by event, and what they are for."""
    world = res.extra.get("world")
    if not world:
        return ""
    per_kind = []
    for kind in ("join", "removal"):
        c: dict[str, Any] = world["counts"][kind]
        rows = [
            f"| {row['event']} | {row['calls']} | "
            + ", ".join(f"{k} {v}" for k, v in sorted(row["ops"].items()))
            + " |"
            for row in c["rows"]
        ]
        per_kind.append(fill("calls.kind", kind=kind, total=c["total"], rows="\n".join(rows)))
    return fill("calls", per_kind="\n\n".join(per_kind))
