"""docs/benchmarks-latency.png: join, direct and removal latency against cluster size, drawn with
matplotlib's Agg backend (no display, the fonts matplotlib ships)."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as Plot

from bench.figures import Results, median
from bench.paths import CHART

SERIES = (  # (label, the sizes rows' key, the value in each sample, colour, line style)
    ("join", "join", "join_s", "#1f77b4", "-"),
    ("direct", "baseline", "direct_s", "#787878", "--"),
    ("removal", "removal", "removal_s", "#d62728", "-"),
)
SIZE_PX = (760, 440)
DPI = 100


def latency_points(sizes: dict[str, dict[str, list[dict]]]) -> dict[str, list[tuple[float, float]]]:
    """Label -> (workers, median seconds) of every size that has samples of that kind."""
    points: dict[str, list[tuple[float, float]]] = {label: [] for label, *_ in SERIES}
    for size, rows in sizes.items():
        for label, key, field, *_ in SERIES:
            value = median([x[field] for x in rows[key]])
            if value is not None:
                points[label].append((float(size), value))
    return points


def plot(points: dict[str, list[tuple[float, float]]], xlabel: str) -> Plot:
    """A line chart of each series; y from 0, a tick at every size measured."""
    fig = Plot(figsize=(SIZE_PX[0] / DPI, SIZE_PX[1] / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, _, _, colour, style in SERIES:
        xy = sorted(points.get(label, []))
        if xy:
            ax.plot(*zip(*xy, strict=True), style, color=colour, marker="o", linewidth=2, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("seconds (median)")
    ax.set_ylim(bottom=0)
    ax.set_xticks(sorted({x for xy in points.values() for x, _ in xy}))
    ax.grid(axis="y", color="#c8c8c8")
    if ax.lines:
        fig.legend(loc="outside upper center", ncols=len(ax.lines), frameon=False)
    return fig


def png(fig: Plot) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()


def write_chart(res: Results) -> bool:
    sizes = res.extra.get("sizes")
    if not sizes:
        return False
    CHART.parent.mkdir(parents=True, exist_ok=True)
    CHART.write_bytes(png(plot(latency_points(sizes), "workers in the cluster")))
    return True
