"""``make bench`` (``python -m bench``): what to measure, in what order, and where the results go.

Prints one ``name: value`` line per figure and writes docs/benchmarks.md (method, machine, numbers)
and docs/benchmarks-latency.png (join and removal latency against cluster size). Figures are medians
of ``--runs`` runs, quoted as ratios against a baseline measured in the same run where one exists.
Nothing here is a timed test: a goal that is missed is reported, never an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from bench.burst import burst_figures
from bench.chart import write_chart
from bench.figures import Figure, Results
from bench.machine import ForeignWatch, foreign_dockerds, load_average, roomy_neigh_table, wait_for_quiet
from bench.paths import CHART, DOC, REPO, RESULTS
from bench.report import render_doc
from bench.sizes import size_figures
from bench.static import static_part
from bench.world import world_part
from lab.__main__ import cannot_run


def lab_part(args: argparse.Namespace, res: Results) -> None:
    res.extra["dockerd_before_lab"] = foreign_dockerds(args.prefix)
    res.extra["lab_knobs"] = {
        "lambda_concurrency": args.lambda_concurrency,
        "sqs_pollers": args.sqs_pollers,
        "registration_delay": args.registration_delay,
    }
    sizes = [int(s) for s in args.sizes.split(",")]
    nodes = args.managers + max([*sizes, args.burst_size if args.burst else 0]) + 5
    with roomy_neigh_table(nodes, not args.keep_neigh_table) as neigh, ForeignWatch(args.prefix) as watch:
        res.extra["neigh_table"] = neigh
        size_figures(args, res)
        if args.burst:
            burst_figures(args, res)
    res.extra["dockerd_during_lab"] = watch.most


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="swarmkeeper's benchmarks on the lab")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (medians); default 3")
    p.add_argument("--quick", action="store_true", help="a 1-run smoke: sizes 1,3, no burst")
    p.add_argument(
        "--part",
        choices=["all", "static", "world", "lab", "burst", "none"],
        default="all",
        help="what to measure; `burst`: the bursts and their baselines only (single joins at --sizes, "
        "default 1; the measured and the direct bursts). Only `all` rewrites docs/benchmarks.md; the "
        "others save lab-run/bench/results-<part>.json",
    )
    p.add_argument("--only", choices=["burst"], help="same as --part burst")
    p.add_argument("--no-lab", action="store_true", help="skip the lab figures (no root needed)")
    p.add_argument("--no-burst", action="store_true")
    p.add_argument(
        "--no-direct-burst", action="store_true", help="skip the direct burst (the burst's machine baseline)"
    )
    p.add_argument(
        "--burst-runs",
        type=int,
        default=None,
        help="bursts of 50 (each in a fresh lab, each followed by a direct burst); default 1",
    )
    p.add_argument("--burst-size", type=int, default=50, help="workers in the burst (the figure is for 50)")
    p.add_argument("--burst-parallel", type=int, default=4, help="node starts in parallel during the burst")
    p.add_argument(
        "--sizes", default=None, help="worker counts for the latency series; default 1,5,10,20 (burst: 1)"
    )
    p.add_argument("--managers", type=int, default=3)
    p.add_argument("--prefix", default="skb")
    p.add_argument("--bridge", default="skbbr0")
    p.add_argument("--subnet", default="10.94.0.0/24")
    p.add_argument("--registration-delay", type=float, default=3.0)
    p.add_argument(
        "--lambda-concurrency",
        type=int,
        default=2,
        help="warm workers per function in the lab (its default 2; AWS scales each function out)",
    )
    p.add_argument(
        "--sqs-pollers", type=int, default=1, help="concurrent step-queue batches (lab: 1; AWS starts at 5)"
    )
    p.add_argument(
        "--keep-neigh-table",
        action="store_true",
        help="leave the kernel's neighbour table limit as it is (by default the lab figures raise it "
        "when the swarm would not fit, and restore it afterwards)",
    )
    p.add_argument("--timeout-scale", type=float, default=1.0)
    p.add_argument("--quiet-timeout", type=float, default=900, help="wait at most this long for other labs")
    p.add_argument("--no-doc", action="store_true", help="print the figures only")
    p.add_argument("--render-from", type=Path, help="write the document from a saved results.json only")
    p.add_argument("--profile", type=Path, help="cProfile the first 1,000-node reconcile pass into this file")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.only:
        args.part = args.only
    if args.sizes is None:
        args.sizes = "1" if args.part == "burst" else "1,5,10,20"
    if args.quick:
        args.runs, args.sizes, args.no_burst = 1, "1,3", True
    if args.burst_runs is None:
        args.burst_runs = 1
    args.burst = not args.no_burst
    args.direct_burst = not args.no_direct_burst
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    why = cannot_run()
    lab_parts = ("all", "lab", "burst")
    args.lab = args.part in lab_parts and not args.no_lab and why is None
    if args.part == "burst" and not args.lab:
        print(f"bench: the burst needs the lab: {why or '--no-lab given'}", file=sys.stderr)
        return 2
    if args.part in lab_parts and not args.no_lab and why:
        print(f"bench: lab figures skipped: {why}", file=sys.stderr)
    res = Results()
    res.extra["load"] = {"start": load_average(), "cpus": os.cpu_count()}
    if args.render_from:
        args.part, args.lab = "none", bool(json.loads(args.render_from.read_text())["extra"].get("sizes"))
    if args.lab and not args.render_from:  # every figure measured on a quiet machine, when possible
        res.extra["quiet"] = wait_for_quiet(args.quiet_timeout)
    if args.part in ("all", "static"):
        static_part(res, args.runs)
    if args.part in ("all", "world"):
        world_part(res, args.runs, args.profile)
    if args.lab and not args.render_from:
        lab_part(args, res)
    if args.render_from:
        saved = json.loads(args.render_from.read_text())
        args.argv = saved.get("argv", [])
        res.extra = saved["extra"]
        res.figures = {k: Figure(**v) for k, v in saved["figures"].items()}
        res.started = time.monotonic() - saved.get("seconds", 0)
    else:
        res.extra["load"]["end"] = load_average()
        results = RESULTS if args.part == "all" else RESULTS.with_name(f"results-{args.part}.json")
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(
            json.dumps(
                {
                    "figures": {k: vars(f) for k, f in res.figures.items()},
                    "extra": res.extra,
                    "seconds": time.monotonic() - res.started,
                    "argv": args.argv,
                },
                default=str,
            )
        )
        if args.part != "all":
            print(f"bench: saved {results.relative_to(REPO)} (docs/benchmarks.md is written by full runs)")
    if not args.no_doc and (args.part == "all" or args.render_from):
        ok = write_chart(res)
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(render_doc(res, args, ok))
        print(
            f"bench: wrote {DOC.relative_to(REPO)}" + (f" and {CHART.relative_to(REPO)}" if ok else ""),
            flush=True,
        )
    print(f"bench: {(time.monotonic() - res.started) / 60:.1f} min", flush=True)
    return 0
