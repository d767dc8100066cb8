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
    out = bench.burst_phases(events, history, completed, {"i-w": 103.0})
    # Then the steps add up to the join, and the verifier and the given-up join attempt are counted
    (row,) = out["rows"]
    assert row["poll_s"] == 2.0 and row["bootstrap_queue_s"] == 0.5 and row["bootstrap_s"] == 10.0
    assert row["to_verify_s"] == 1.5 and row["verify_queue_s"] == 3.0 and row["verify_s"] == 0.5
    assert row["to_continue_s"] == 1.0 and row["join_s"] == 18.5
    assert sum(row[k] for k, _ in bench.PHASES) == row["join_s"]
    assert out["verifiers"] == {"i-m": 1} and out["failed_join_attempts"] == 1
    assert out["summary"]["bootstrap_s"]["max"] == 10.0
    # a worker whose agent never registered has no row
    assert bench.burst_phases(events, history, completed, {})["rows"] == []


def test_saturation_counts_the_time_every_worker_was_busy():
    records = [
        {"started": 0.0, "duration": 6.0},
        {"started": 2.0, "duration": 2.0},
        {"started": 9.0, "duration": 5.0},
    ]
    s = bench.saturation(records, 0.0, 10.0, capacity=2)
    assert s["mean_busy"] == 0.9  # 6 + 2 + 1 busy seconds over 10
    assert s["all_busy"] == 0.2  # both busy from 2 to 4
    assert s["longest_all_busy_s"] == 2.0
    assert bench.saturation(records, 5.0, 5.0, 2)["all_busy"] == 0.0
    # one worker kept busy by back-to-back invocations: a single stretch despite the hand-over pauses
    chain = [{"started": 10.0 + 1.1 * k, "duration": 1.0} for k in range(5)]
    assert round(bench.saturation(chain, 0.0, 20.0, 1)["longest_all_busy_s"], 6) == 5.4


def test_direct_burst_figure_is_booted_to_last_ready():
    rows = [
        {"ok": True, "boot_start": 10.0, "boot_end": 14.0, "verify_start": 14.0, "verify_end": 15.0},
        {"ok": True, "boot_start": 10.0, "boot_end": 140.0, "verify_start": 140.0, "verify_end": 141.0},
        {"ok": False, "boot_start": 10.0, "boot_end": 20.0, "join_attempts_failed": 2},
    ]
    fig = bench.direct_burst_figure(rows, booted=10.0)
    assert fig["figure_s"] == 131.0 and fig["ok"] == 2 and fig["nodes"] == 3
    assert fig["over_120_s"] == 1 and fig["failed_join_attempts"] == 2
    assert fig["bootstrap_s"]["max"] == 130.0
    assert bench.direct_burst_figure([], 0.0)["figure_s"] is None


def test_join_attempts_and_docker_times_parse():
    err = (
        "bootstrap-node: join via 10.94.0.4:2377 failed (round 1): HTTP 503 {...}\n"
        "bootstrap-node: join via 10.94.0.5:2377 failed (round 1): HTTP 503 {...}\n"
        "something else failed\n"
    )
    assert bench.join_attempts_failed(err) == 2 and bench.join_attempts_failed("") == 0
    assert bench._parse_go_time('"1970-01-01T00:01:00.5Z"') == 60.5
    assert bench._parse_go_time("1970-01-01T00:01:00+01:00") == -3540.0
    assert bench._parse_go_time("garbage") is None


def test_cpu_report_splits_the_machine_by_kind():
    start = {"at": 0.0, "busy": 0.0, "iowait": 0.0, "all": 0.0, "self": 1.0, "children": 0.0}
    start |= {"cpu_some": 0, "io_some": 0, "io_full": 0}
    end = {"at": 10.0, "busy": 18.0, "iowait": 1.0, "all": 20.0, "self": 5.0, "children": 7.0}
    end |= {"cpu_some": 9_000_000, "io_some": 1_000_000, "io_full": 0}
    first = {1: ("manager daemons", 2.0)}
    last = {1: ("manager daemons", 4.0), 2: ("other nodes' daemons", 3.0), 3: ("lambda workers", 1.0)}
    samples = [(0.0, 4, 0.0, 0.0), (2.0, 8, 3.0, 4.0)]
    r = bench.cpu_report(start, end, first, last, samples, alive={1, 2})
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
    assert bench.neigh_stats(text) == {
        "neigh_entries": 1024,
        "neigh_table_fulls": 11,
        "neigh_forced_gc_runs": 7,
        "neigh_res_failed": 3,
    }
    assert bench.neigh_stats("") == {}
    assert bench.neigh_room(58) == 16384 and bench.neigh_room(2) == 16


def _burst_results() -> bench.Results:
    res = bench.Results()
    phases = {k: {"median": 1.0, "p90": 2.0, "max": 3.0} for k, _ in (*bench.PHASES, ("join_s", ""))}
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
        res.figures[name] = bench.Figure(name, value, goal, "m", "d")
    return res


def test_burst_evidence_and_explanation_render():
    res = _burst_results()
    section = "\n".join(bench.burst_section(res, bench.parse([])))
    assert "## The 50-worker burst: where the time goes" in section
    assert "| **the join** (agent registered -> CONTINUE) | 1.00 | 2.00 | 3.00 |" in section
    assert "| instance-state | 2 | 100 | 1.50 | 70% | 63.0 |" in section
    assert "| kernel neighbour table: most entries | 5706 | 5706 |" in section
    why = bench.misses(res)
    assert "`burst_50_vs_single_ratio`" in why and "1.17, within 3" in why
    assert "every verify-node of the burst (50 of 50) ran on one manager" in why
    assert "2 `docker swarm join` attempts" in why
    # a run without the burst's records renders no section, and an empty burst does not crash
    assert bench.burst_section(bench.Results(), bench.parse([])) == []
    res.extra["burst"], res.extra["direct_burst"] = [{}], []
    assert "`burst_50_vs_single_ratio`" in bench.misses(res)


def test_only_full_runs_and_burst_flags_parse():
    args = bench.parse(["--only", "burst"])
    assert args.part == "burst" and args.sizes == "1" and args.burst and args.direct_burst
    args = bench.parse(["--no-direct-burst", "--lambda-concurrency", "10", "--sqs-pollers", "5"])
    assert args.part == "all" and args.sizes == "1,5,10,20" and not args.direct_burst
    assert (args.lambda_concurrency, args.sqs_pollers, args.keep_neigh_table) == (10, 5, False)
    assert bench.parse(["--quick"]).burst is False
