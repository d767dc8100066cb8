"""Pure helpers of lab/bench.py (``make bench``): no timing, no lab, no AWS."""

from __future__ import annotations

import struct
import zlib

from lab import bench


def test_median_ratio_and_goals():
    assert bench.median([3.0, 1.0, None, 2.0]) == 2.0
    assert bench.median([]) is None
    assert bench.ratio(3.0, 2.0) == 1.5 and bench.ratio(None, 2.0) is None and bench.ratio(1.0, 0) is None
    assert bench.goal_met(1.5, "<= 1.5") is True
    assert bench.goal_met(3.0, "< 3") is False
    assert bench.goal_met(None, "<= 5") is None and bench.goal_met(2.0, "") is None
    assert bench.goal_met(10, "minimum") is None
    assert [bench.format_value(v) for v in (None, 61, 1.23456, 27.71)] == ["n/a", "61", "1.23", "27.7"]


def test_burst_figure_takes_the_boot_out():
    launch = {"a": 0.0, "b": 0.0}
    registered = {"a": 5.0, "b": 20.0}  # b booted late
    done = {"a": 9.0, "b": 23.0}
    fig = bench.boot_excluded_burst(launch, registered, done)
    assert fig["makespan_with_boot_s"] == 23.0 and fig["boot_span_s"] == 20.0
    assert fig["after_last_boot_s"] == 3.0 and fig["slowest_join_s"] == 4.0
    assert fig["figure_s"] == 4.0 and fig["nodes"] == 2
    assert bench.boot_excluded_burst({}, {}, {}) == {}


def test_chart_is_a_valid_png():
    png = bench.chart(
        [("join", (0, 0, 255), [(1, 2.0), (5, 3.5)], 0), ("direct", (9, 9, 9), [(1, 1.0)], 6)], "x"
    )
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (760, 440)
    # the image data inflates to one filter byte + RGB per pixel per row
    start = png.index(b"IDAT") + 4
    length = struct.unpack(">I", png[start - 8 : start - 4])[0]
    raw = zlib.decompress(png[start : start + length])
    assert len(raw) == height * (1 + 3 * width)


def test_misses_and_document_sections_render():
    res = bench.Results()
    res.figures["removal_latency_s"] = bench.Figure("removal_latency_s", 0.5, "<= 5", "m", "d")
    res.figures["package_mb"] = bench.Figure("package_mb", 27.7)
    assert bench.misses(res).startswith("Every figure with a goal met it")
    res.figures["removal_latency_s"].value = 7.0
    assert "`removal_latency_s`" in bench.misses(res)


def test_grid_steps_are_round():
    assert [bench.nice_step(x) for x in (3.5, 10, 0.04, 120)] == [1, 2, 0.01, 25]
