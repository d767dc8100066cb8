"""Pure helpers of the bench package (``make bench``): no timing, no lab, no AWS."""

from __future__ import annotations

import re
import struct
import types

import pytest

from bench import chart, cli, figures, machine, reasons, records, report, template
from bench.paths import REPO


def test_median_ratio_and_goals():
    assert figures.median([3.0, 1.0, None, 2.0]) == 2.0
    assert figures.median([]) is None
    assert (
        figures.ratio(3.0, 2.0) == 1.5 and figures.ratio(None, 2.0) is None and figures.ratio(1.0, 0) is None
    )
    assert figures.goal_met(1.5, "<= 1.5") is True
    assert figures.goal_met(3.0, "< 3") is False
    assert figures.goal_met(None, "<= 5") is None and figures.goal_met(2.0, "") is None
    assert figures.goal_met(10, "minimum") is None
    assert [figures.format_value(v) for v in (None, 61, 1.23456, 27.71)] == ["n/a", "61", "1.23", "27.7"]


def test_burst_figure_takes_the_boot_out():
    launch = {"a": 0.0, "b": 0.0}
    registered = {"a": 5.0, "b": 20.0}  # b booted late
    done = {"a": 9.0, "b": 23.0}
    fig = records.boot_excluded_burst(launch, registered, done)
    assert fig["makespan_with_boot_s"] == 23.0 and fig["boot_span_s"] == 20.0
    assert fig["after_last_boot_s"] == 3.0 and fig["slowest_join_s"] == 4.0
    assert fig["figure_s"] == 4.0 and fig["nodes"] == 2
    assert records.boot_excluded_burst({}, {}, {}) == {}


def test_chart_draws_each_series_against_cluster_size():
    # Given the latency series of two sizes (direct measured at one of them only)
    sizes = {
        "1": {"join": [{"join_s": 2.0}], "baseline": [{"direct_s": 1.0}], "removal": [{"removal_s": 0.2}]},
        "5": {"join": [{"join_s": 3.0}, {"join_s": 4.0}], "baseline": [], "removal": [{"removal_s": 0.4}]},
    }
    # When the chart is drawn
    points = chart.latency_points(sizes)
    fig = chart.plot(points, "workers in the cluster")
    png = chart.png(fig)
    # Then each series is a line of its medians, y from 0, a tick at each size, in a 760x440 PNG
    assert points == {
        "join": [(1.0, 2.0), (5.0, 3.5)],
        "direct": [(1.0, 1.0)],
        "removal": [(1.0, 0.2), (5.0, 0.4)],
    }
    (ax,) = fig.axes
    drawn = {
        line.get_label(): list(zip(line.get_xdata(), line.get_ydata(), strict=True)) for line in ax.lines
    }
    assert drawn == points
    assert ax.get_ylim()[0] == 0 and list(ax.get_xticks()) == [1.0, 5.0]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["join", "direct", "removal"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (760, 440)


def test_misses_and_document_sections_render():
    res = figures.Results()
    res.figures["removal_latency_s"] = figures.Figure("removal_latency_s", 0.5, "<= 5", "m", "d")
    res.figures["package_mb"] = figures.Figure("package_mb", 27.7)
    assert reasons.misses(res).startswith("Every figure with a goal met it")
    res.figures["removal_latency_s"].value = 7.0
    assert "`removal_latency_s`" in reasons.misses(res)


def _status(at, command, document, instance, status):
    return {
        "at": at,
        "detail-type": "EC2 Command Invocation Status-change Notification",
        "detail": {
            "command-id": command,
            "document-name": f"swarmkeeper-demo-{document}",
            "instance-id": instance,
            "status": status,
        },
    }


def test_burst_phases_split_each_join_into_its_steps():
    # Given one worker's launch, its agent registration, both commands' status events and its CONTINUE
    events = [
        {
            "at": 100.0,
            "detail-type": "EC2 Instance-launch Lifecycle Action",
            "detail": {"EC2InstanceId": "i-w", "AutoScalingGroupName": "swarmkeeper-demo-workers"},
        },
        _status(105.0, "c-boot", "bootstrap-node", "i-w", "Pending"),
        _status(105.5, "c-boot", "bootstrap-node", "i-w", "InProgress"),
        _status(115.5, "c-boot", "bootstrap-node", "i-w", "Success"),
        _status(117.0, "c-ver", "verify-node", "i-m", "Pending"),
        _status(120.0, "c-ver", "verify-node", "i-m", "InProgress"),
        _status(120.5, "c-ver", "verify-node", "i-m", "Success"),
    ]
    history = [
        {
            "association_id": "a-1",
            "document": "agent-ready",
            "instance_id": "i-w",
            "stdout": "",
            "stderr": "",
        },
        {
            "command_id": "c-boot",
            "instance_id": "i-w",
            "parameters": {"Role": ["worker"]},
            "stdout": "node-id=n1 role=worker cluster-id=c\n",
            "stderr": "bootstrap-node: join via 10.0.0.4:2377 failed (round 1): HTTP 503 timeout\n",
        },
        {
            "command_id": "c-ver",
            "instance_id": "i-m",
            "parameters": {"NodeId": ["n1"]},
            "stdout": "",
            "stderr": "",
        },
    ]
    completed = [
        {
            "instance_id": "i-w",
            "transition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            "result": "CONTINUE",
            "at": 121.5,
        }
    ]
    # When the phases are taken from them
    out = records.burst_phases(events, history, completed, {"i-w": 103.0})
    # Then the steps add up to the join, and the verifier and the given-up join attempt are counted
    (row,) = out["rows"]
    assert row["poll_s"] == 2.0 and row["bootstrap_queue_s"] == 0.5 and row["bootstrap_s"] == 10.0
    assert row["to_verify_s"] == 1.5 and row["verify_queue_s"] == 3.0 and row["verify_s"] == 0.5
    assert row["to_continue_s"] == 1.0 and row["join_s"] == 18.5
    assert sum(row[k] for k, _ in records.PHASES) == row["join_s"]
    assert out["verifiers"] == {"i-m": 1} and out["failed_join_attempts"] == 1
    assert out["summary"]["bootstrap_s"]["max"] == 10.0
    # a worker whose agent never registered has no row
    assert records.burst_phases(events, history, completed, {})["rows"] == []


def test_saturation_counts_the_time_every_worker_was_busy():
    invocations = [
        {"started": 0.0, "duration": 6.0},
        {"started": 2.0, "duration": 2.0},
        {"started": 9.0, "duration": 5.0},
    ]
    s = records.saturation(invocations, 0.0, 10.0, capacity=2)
    assert s["mean_busy"] == 0.9  # 6 + 2 + 1 busy seconds over 10
    assert s["all_busy"] == 0.2  # both busy from 2 to 4
    assert s["longest_all_busy_s"] == 2.0
    assert records.saturation(invocations, 5.0, 5.0, 2)["all_busy"] == 0.0
    # one worker kept busy by back-to-back invocations: a single stretch despite the hand-over pauses
    chain = [{"started": 10.0 + 1.1 * k, "duration": 1.0} for k in range(5)]
    assert round(records.saturation(chain, 0.0, 20.0, 1)["longest_all_busy_s"], 6) == 5.4


def test_direct_burst_figure_is_booted_to_last_ready():
    rows = [
        {"ok": True, "boot_start": 10.0, "boot_end": 14.0, "verify_start": 14.0, "verify_end": 15.0},
        {"ok": True, "boot_start": 10.0, "boot_end": 140.0, "verify_start": 140.0, "verify_end": 141.0},
        {"ok": False, "boot_start": 10.0, "boot_end": 20.0, "join_attempts_failed": 2},
    ]
    fig = records.direct_burst_figure(rows, booted=10.0)
    assert fig["figure_s"] == 131.0 and fig["ok"] == 2 and fig["nodes"] == 3
    assert fig["over_120_s"] == 1 and fig["failed_join_attempts"] == 2
    assert fig["bootstrap_s"]["max"] == 130.0
    assert records.direct_burst_figure([], 0.0)["figure_s"] is None


def test_join_attempts_and_docker_times_parse():
    err = (
        "bootstrap-node: join via 10.94.0.4:2377 failed (round 1): HTTP 503 {...}\n"
        "bootstrap-node: join via 10.94.0.5:2377 failed (round 1): HTTP 503 {...}\n"
        "something else failed\n"
    )
    assert records.join_attempts_failed(err) == 2 and records.join_attempts_failed("") == 0
    assert records.parse_go_time('"1970-01-01T00:01:00.5Z"') == 60.5
    assert records.parse_go_time("1970-01-01T00:01:00+01:00") == -3540.0
    assert records.parse_go_time("garbage") is None


def test_cpu_report_splits_the_machine_by_kind():
    start = {"at": 0.0, "busy": 0.0, "iowait": 0.0, "all": 0.0, "self": 1.0, "children": 0.0}
    start |= {"cpu_some": 0, "io_some": 0, "io_full": 0}
    end = {"at": 10.0, "busy": 18.0, "iowait": 1.0, "all": 20.0, "self": 5.0, "children": 7.0}
    end |= {"cpu_some": 9_000_000, "io_some": 1_000_000, "io_full": 0}
    first = {1: ("manager daemons", 2.0)}
    last = {1: ("manager daemons", 4.0), 2: ("other nodes' daemons", 3.0), 3: ("lambda workers", 1.0)}
    samples = [(0.0, 4, 0.0, 0.0), (2.0, 8, 3.0, 4.0)]
    r = machine.cpu_report(start, end, first, last, samples, alive={1, 2})
    cpu = r["cpu_s"]
    assert (
        cpu["manager daemons"] == 2.0 and cpu["other nodes' daemons"] == 3.0 and cpu["lambda workers"] == 1.0
    )
    assert cpu["lab process (moto, lab threads)"] == 4.0
    assert cpu["scripts and CLIs (reaped children)"] == 6.0  # 7 reaped, less the worker seen exit
    assert cpu["other"] == 2.0  # 18 busy - 16 accounted
    assert r["busy_share"] == 0.9 and r["cpu_pressure_some"] == 0.9 and r["runnable"]["max"] == 8
    assert r["timeline"] == [[2.0, 0.75, 8]]


def test_neighbour_table_stats_and_room():
    text = (
        "entries  allocs   destroys hash_grows lookups  hits     res_failed rcv_probes_mcast "
        "rcv_probes_ucast periodic_gc_runs forced_gc_runs unresolved_discards table_fulls\n"
        "00000400 00000010 00000001 00000000 00000000 00000000 00000002 00000000 00000000 00000000 00000003 "
        "00000000 00000005\n"
        "00000400 00000010 00000001 00000000 00000000 00000000 00000001 00000000 00000000 00000000 00000004 "
        "00000000 00000006\n"
    )
    # entries is one number for the whole table; the counters are per CPU
    assert machine.neigh_stats(text) == {
        "neigh_entries": 1024,
        "neigh_table_fulls": 11,
        "neigh_forced_gc_runs": 7,
        "neigh_res_failed": 3,
    }
    assert machine.neigh_stats("") == {}
    assert machine.neigh_room(58) == 16384 and machine.neigh_room(2) == 16


def _burst_results() -> figures.Results:
    res = figures.Results()
    phases = {k: {"median": 1.0, "p90": 2.0, "max": 3.0} for k, _ in (*records.PHASES, ("join_s", ""))}
    cpu = {
        "window_s": 80.0,
        "cpus": 2,
        "busy_share": 0.99,
        "cpu_pressure_some": 0.98,
        "runnable": {"median": 28, "max": 49},
        "cpu_s": {"scripts and CLIs (reaped children)": 70.0, "lambda workers": 6.0},
        "neigh": {"max_entries": 5706, "table_fulls": 0},
    }
    res.extra = {
        "burst": [
            {
                "nodes": 50,
                "phases": phases,
                "cpu": cpu,
                "abandoned": 0,
                "failed_join_attempts": 2,
                "verifiers": {"i-m": 50},
                "lambda": {
                    "instance-state": {
                        "capacity": 2,
                        "invocations": 100,
                        "mean_busy": 1.5,
                        "all_busy": 0.7,
                        "longest_all_busy_s": 63.0,
                    }
                },
            }
        ],
        "direct_burst": [{"figure_s": 60.0, "cpu": cpu, "swarm": {"created_span_s": 8.5}}],
        "neigh_table": {"before": {"gc_thresh3": 1024}, "set": {"gc_thresh3": 16384}, "needed": 16384},
        "lab_knobs": {"lambda_concurrency": 2, "sqs_pollers": 1, "registration_delay": 3.0},
        "single_join_s": 1.0,
        "direct_s": 1.5,
    }
    for name, value, goal in (
        ("burst_50_join_s", 70.0, ""),
        ("burst_50_vs_single_ratio", 70.0, "<= 3"),
        ("burst_50_direct_s", 60.0, ""),
        ("burst_50_vs_direct_ratio", 70.0 / 60.0, ""),
    ):
        res.figures[name] = figures.Figure(name, value, goal, "m", "d")
    return res


def test_burst_evidence_and_explanation_render():
    res = _burst_results()
    section = report.burst_section(res, cli.parse([]))
    assert "## The 50-worker burst: where the time goes" in section
    assert "| **the join** (agent registered -> CONTINUE) | 1.00 | 2.00 | 3.00 |" in section
    assert "| instance-state | 2 | 100 | 1.50 | 70% | 63.0 |" in section
    assert "| kernel neighbour table: most entries | 5706 | 5706 |" in section
    why = reasons.misses(res)
    assert "`burst_50_vs_single_ratio`" in why and "1.17, within 3" in why
    assert "every verify-node of the burst (50 of 50) ran on one manager" in why
    assert "2 `docker swarm join` attempts" in why
    # a run without the burst's records renders no section, and an empty burst does not crash
    assert report.burst_section(figures.Results(), cli.parse([])) == ""
    res.extra["burst"], res.extra["direct_burst"] = [{}], []
    assert "`burst_50_vs_single_ratio`" in reasons.misses(res)


def test_only_full_runs_and_burst_flags_parse():
    args = cli.parse(["--only", "burst"])
    assert args.part == "burst" and args.sizes == "1" and args.burst and args.direct_burst
    args = cli.parse(["--no-direct-burst", "--lambda-concurrency", "10", "--sqs-pollers", "5"])
    assert args.part == "all" and args.sizes == "1,5,10,20" and not args.direct_burst
    assert (args.lambda_concurrency, args.sqs_pollers, args.keep_neigh_table) == (10, 5, False)
    assert cli.parse(["--quick"]).burst is False


def test_every_block_of_the_template_is_used_and_every_use_names_a_block():
    # Given the template's blocks and the bench's source
    names = set(template.blocks())
    source = "\n".join(p.read_text() for p in (REPO / "bench").glob("*.py"))
    # When the blocks the code fills are collected (literal names, and why.burst.busiest.<function>)
    used = set(re.findall(r"""fill\(\s*["']([^"']+)["']""", source))
    used |= set(re.findall(r'"(why\.burst\.goal\.\w+)"', source))
    # Then each exists, and every block is filled by some code path
    assert used - names == set()
    assert {n for n in names - used if not n.startswith("why.burst.busiest.")} == set()
    assert "why.burst.busiest.command-status" in names and "why.burst.busiest.instance-state" in names


def test_a_full_document_fills_every_placeholder():
    # Given the results of a run with every part, on a machine that was loaded when it started
    res = _burst_results()
    res.figures["cold_import_ratio"] = figures.Figure("cold_import_ratio", 1.6, "<= 1.5", "m", "d")
    res.extra["sizes"] = {
        "1": {
            "join": [{"join_s": 1.2, "boot_s": 3.4, "agent_poll_s": 0.04}],
            "baseline": [{"direct_s": 1.0}],
            "removal": [{"removal_s": 0.3}],
        }
    }
    res.extra["world"] = {
        "counts": {
            kind: {"total": 2, "rows": [{"event": "an event", "calls": 2, "ops": {"GetItem": 2}}]}
            for kind in ("join", "removal")
        }
    }
    res.extra["load"] = {"start": [3.5, 2.0, 1.0], "end": [4.0, 3.0, 2.0], "cpus": 2}
    args = cli.parse([])
    args.argv, args.lab = [], True
    # When the document is rendered
    doc = report.render_doc(res, args, chart_ok=True)
    # Then nothing is left unfilled and every section is there, in order
    assert "$" not in doc
    headings = [line for line in doc.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Figures",
        "## Method, per figure",
        "## Machine",
        "## Join and removal latency against cluster size",
        "## The 50-worker burst: where the time goes",
        "## API calls, explained",
        "## Where a goal is missed, and why",
    ]
    assert "![join and removal latency against cluster size](benchmarks-latency.png)" in doc
    assert "| 1 | 1.2 | 0.04 | 1 | 1.2 | 0.3 | 3.4 | 1/1/1 |" in doc
    assert "- load average (1, 5, 15 min): 3.50 / 2.00 / 1.00 when the run started, 4.00 / 3.00 / 2.00" in doc
    assert "**the machine was not quiet when the run started (3.50 runnable tasks" in doc
    assert "- **`cold_import_ratio`** = 1.6 (goal <= 1.5): the heaviest handler" in doc
    assert doc.endswith("\n") and not doc.endswith("\n\n")


def test_the_machine_is_called_quiet_below_half_a_task_per_cpu():
    args = types.SimpleNamespace(lab=False)
    res = figures.Results()
    res.extra["load"] = {"start": [0.9, 0.5, 0.4], "end": [1.5, 1.0, 0.5], "cpus": 2}
    (load,) = [line for line in report.machine_lines(res, args) if line.startswith("- load average")]
    assert load.endswith("— the machine was quiet when the run started")
    res.extra["load"]["start"] = [1.0, 0.5, 0.4]
    (load,) = [line for line in report.machine_lines(res, args) if line.startswith("- load average")]
    assert (
        "**the machine was not quiet when the run started (1.00 runnable tasks on average on 2 CPUs)" in load
    )
    del res.extra["load"]
    assert not [line for line in report.machine_lines(res, args) if line.startswith("- load average")]


def test_template_blocks_keep_their_text_exactly_and_are_defined_once():
    text = "preamble, not rendered\n<!-- block a -->\nline $x\n\nnext\n<!-- block a.tail -->\n (and more)\n"
    parsed = template.parse_blocks(text)
    assert parsed["a"].substitute(x=1) == "line 1\n\nnext"
    assert parsed["a.tail"].template == " (and more)"
    with pytest.raises(ValueError, match=r"defined twice: \['a'\]"):
        template.parse_blocks(text + "<!-- block a -->\nagain\n")


def test_the_direct_baseline_verifies_with_the_parameters_the_join_sends():
    # Given the bench's direct join (its baseline) / When it renders verify-node for a node
    from bench.lab_driver import direct_verify_script

    script = direct_verify_script("a" * 25)
    # Then every parameter verify-node requires is there (rendering refuses a missing one), labels too
    assert "us-east-1a" in script and "t4g.small" in script and "on-demand" in script
