"""For every figure that missed its goal, the reason, from this run's own evidence (the prose is in
bench/report.md.tmpl, blocks ``why.*``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from bench.figures import ORDER, Results, format_or_dash, format_share, format_value, ratio
from bench.static import STAGES
from bench.template import blocks, fill


def misses(res: Results) -> str:
    out = []
    for name in ORDER:
        f = res.figures.get(name)
        troubled = name == "burst_50_join_s" and any(b.get("abandoned") for b in res.extra.get("burst") or [])
        if f is None or (f.met is not False and not troubled):
            continue
        why = WHY.get(name)
        reason = why(res) if why else fill("why.not_analysed")
        out.append(fill("miss", name=name, value=format_value(f.value), goal=f.goal or "none", reason=reason))
    return "\n".join(out) if out else fill("misses.none")


def _why_join(res: Results) -> str:
    x = res.extra
    poll, cmds, direct = x.get("agent_poll_s"), x.get("commands_s"), x.get("direct_s")
    return fill(
        "why.join_overhead_ratio",
        commands=format_value(cmds),
        direct=format_value(direct),
        commands_ratio=format_value(ratio(cmds, direct)),
        poll=format_value(poll),
    )


def _why_import(res: Results) -> str:
    c = res.extra.get("cold_import", {})
    st = c.get("stages_ms", {})
    boto = st.get(STAGES[0]) or 1
    pt, tracer, own = (st.get(k, 0) / boto for k in STAGES[1:])
    return fill(
        "why.cold_import_ratio",
        heaviest=c.get("heaviest"),
        stages="; ".join(f"{k}: {v:.0f} ms" for k, v in st.items()),
        powertools=f"{pt:.2f}",
        tracer=f"{tracer:.2f}",
        own=f"{own:.2f}",
        above_boto3=f"{pt + tracer + own:.2f}",
        without_tracer=f"{1 + pt + own:.2f}",
        handler_ms=f"{(c.get('handler_s') or 0) * 1000:.0f}",
    )


def _why_burst(res: Results) -> str:
    """Why the 50-burst misses ``burst_50_vs_single_ratio``, from this run's evidence (the burst section)."""
    x = (res.extra.get("burst") or [{}])[0]
    d = (res.extra.get("direct_burst") or [{}])[0]
    fig = {k: (f.value if f else None) for k, f in ((k, res.figures.get(k)) for k in ORDER)}
    burst, direct = fig.get("burst_50_join_s"), fig.get("burst_50_direct_s")
    single, direct_one = res.extra.get("single_join_s"), res.extra.get("direct_s")
    ph = x.get("phases") or {}

    def med(key: str) -> Any:
        return format_value((ph.get(key) or {}).get("median"))

    dc = d.get("cpu") or {}
    parts = []
    if direct is not None:
        dcpu = dc.get("cpu_s") or {}
        parts.append(
            fill(
                "why.burst.machine",
                direct=format_value(direct),
                cpus=dc.get("cpus") or os.cpu_count(),
                direct_vs_one=format_value(ratio(direct, direct_one)),
                direct_one=format_value(direct_one),
                busy=format_share(dc.get("busy_share")),
                runnable=format_or_dash((dc.get("runnable") or {}).get("median")),
                cpu_seconds=format_value(sum(v for v in dcpu.values())),
                scripts=format_value(dcpu.get("scripts and CLIs (reaped children)")),
                daemons=format_value(
                    (dcpu.get("other nodes' daemons") or 0) + (dcpu.get("manager daemons") or 0)
                ),
                created_span=format_value((d.get("swarm") or {}).get("created_span_s")),
            )
        )
    if burst is not None and direct is not None:
        parts.append(_control_plane(res, x, burst, direct, med))
    parts.append(_neigh_table(res, x))
    if direct is None:
        parts.append(fill("why.burst.no_direct"))
        return "\n\n  ".join(parts)
    within = (ratio(burst, direct) or 99) <= 3
    parts.append(
        fill(
            "why.burst.goal",
            direct_vs_one=format_value(ratio(direct, direct_one)),
            single=format_value(single),
            burst_vs_direct=format_value(ratio(burst, direct)),
            within=fill("why.burst.goal.within" if within else "why.burst.goal.over"),
        )
    )
    verifiers = x.get("verifiers") or {}
    if verifiers:
        parts.append(
            fill(
                "why.burst.verifiers",
                top=max(verifiers.values()),
                verifies=sum(verifiers.values()),
                longest_queue=format_value((ph.get("verify_queue_s") or {}).get("max")),
            )
        )
    if x.get("failed_join_attempts"):
        parts.append(fill("why.burst.join_attempts", attempts=x["failed_join_attempts"]))
    return "\n\n  ".join(parts)


def _control_plane(res: Results, x: dict, burst: float, direct: float, med: Callable[[str], str]) -> str:
    """What the control plane added to the burst: the waits for the lab's functions, and their cost."""
    lam = x.get("lambda") or {}
    c = x.get("cpu") or {}
    busiest = max(lam.items(), key=lambda kv: kv[1].get("longest_all_busy_s") or 0, default=None)
    busiest_text = ""
    if busiest:
        name, v = busiest
        why = f"why.burst.busiest.{name}"
        busiest_text = fill(
            "why.burst.busiest",
            function=name,
            longest=format_value(v.get("longest_all_busy_s")),
            why=fill(why) if why in blocks() else "",
        )
    return fill(
        "why.burst.control_plane",
        burst=format_value(burst),
        burst_vs_direct=format_value(ratio(burst, direct)),
        join=med("join_s"),
        bootstrap=med("bootstrap_s"),
        poll=med("poll_s"),
        to_verify=med("to_verify_s"),
        to_continue=med("to_continue_s"),
        concurrency=(res.extra.get("lab_knobs") or {}).get("lambda_concurrency", "?"),
        busiest=busiest_text,
        busy=format_share(c.get("busy_share")),
        lambda_cpu=format_value((c.get("cpu_s") or {}).get("lambda workers")),
        moto_cpu=format_value((c.get("cpu_s") or {}).get("lab process (moto, lab threads)")),
        cpu_seconds=format_value(sum((c.get("cpu_s") or {}).values())),
    )


def _neigh_table(res: Results, x: dict) -> str:
    """The kernel neighbour table's part in the burst, and what this run saw of it."""
    neigh = res.extra.get("neigh_table") or {}
    n = (x.get("cpu") or {}).get("neigh") or {}
    this_run = ""
    if neigh.get("set"):
        this_run = fill(
            "why.burst.neigh.raised",
            entries=format_value(n.get("max_entries")),
            fulls=format_value(n.get("table_fulls")),
            abandoned=x.get("abandoned", 0),
        )
    elif n.get("table_fulls"):
        this_run = fill(
            "why.burst.neigh.kept",
            limit=n.get("limit"),
            fulls=n["table_fulls"],
            abandoned=x.get("abandoned", 0),
        )
    return fill("why.burst.neigh", this_run=this_run)


WHY: dict[str, Callable[[Results], str]] = {
    "burst_50_join_s": lambda res: fill("why.burst_50_join_s"),
    "join_overhead_ratio": _why_join,
    "cold_import_ratio": _why_import,
    "burst_50_vs_single_ratio": _why_burst,
}
