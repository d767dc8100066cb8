"""Where the bench reads and writes."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
CHART = REPO / "docs" / "benchmarks-latency.png"
RUNS = REPO / "lab-run" / "bench"  # each lab run's records
RESULTS = RUNS / "results.json"  # the last run's numbers (--render-from)
STACK_TEMPLATE = REPO / "cdk.out" / "swarmkeeper-demo.template.json"
REPORT_TEMPLATE = Path(__file__).resolve().parent / "report.md.tmpl"
