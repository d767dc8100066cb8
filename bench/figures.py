"""A benchmark figure, the results of a run, and the arithmetic every part uses on them."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

ORDER = (
    "join_overhead_ratio",
    "burst_50_join_s",
    "burst_50_vs_single_ratio",
    "burst_50_direct_s",
    "burst_50_vs_direct_ratio",
    "removal_latency_s",
    "api_calls_per_join",
    "api_calls_per_removal",
    "reconcile_1000_s",
    "reconcile_1000_api_calls",
    "cold_import_ratio",
    "package_mb",
)


@dataclass
class Figure:
    name: str
    value: float | None
    goal: str = ""  # e.g. "<= 1.5"
    method: str = ""
    detail: str = ""

    @property
    def met(self) -> bool | None:
        return goal_met(self.value, self.goal)


@dataclass
class Results:
    figures: dict[str, Figure] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # per-part details for the document
    started: float = field(default_factory=time.monotonic)

    def add(self, fig: Figure) -> None:
        self.figures[fig.name] = fig
        print(f"{fig.name}: {format_value(fig.value)}", flush=True)


def median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def format_value(v: float | None) -> str:
    if v is None:
        return "n/a"
    if float(v).is_integer() and abs(v) >= 1:
        return str(int(v))
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"


def goal_met(value: float | None, goal: str) -> bool | None:
    """``"<= 1.5"`` / ``"< 3"`` against a value; None when there is no goal or no value."""
    if value is None or not goal:
        return None
    op, _, limit = goal.partition(" ")
    try:
        bound = float(limit)
    except ValueError:
        return None
    return value <= bound if op == "<=" else value < bound if op == "<" else None


def durations(values: list[float]) -> dict[str, float]:
    """Median, 90th percentile and maximum of some durations (seconds)."""
    d = sorted(v for v in values if v is not None)
    if not d:
        return {}
    return {"median": statistics.median(d), "p90": d[int(len(d) * 0.9)], "max": d[-1]}


def format_or_dash(v: Any) -> str:
    return format_value(v) if v is not None else "-"


def format_seconds(v: Any) -> str:
    """Seconds in the burst's tables: two decimals below 10 s, one below 100 s."""
    if v is None:
        return "-"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}"


def format_share(v: Any) -> str:
    return f"{100 * v:.0f}%" if v is not None else "-"
