"""The machine the bench runs on: what it is, how loaded it is, who used its CPUs while a burst ran,
its kernel neighbour table, and the other labs (foreign dockerds) sharing it."""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import math
import os
import platform
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.figures import durations


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _psi_total(text: str, kind: str) -> int | None:
    """``total=`` (microseconds) of the ``some``/``full`` line of a /proc/pressure file."""
    for line in text.splitlines():
        if line.startswith(kind + " "):
            return int(line.rsplit("total=", 1)[-1])
    return None


class CpuMeter:
    """Who used this machine's CPUs while a burst ran, sampled from /proc every ``every`` seconds:
    the whole machine (/proc/stat busy and iowait, runnable tasks, CPU and IO pressure stall), and CPU
    seconds by kind: the managers' and the other nodes' daemons (dockerd, containerd: processes whose
    command line names a node directory under ``root``), the Lambda workers (``lambda_pids``), this
    process (the embedded region's moto servers and the lab's threads, ``os.times``) and the
    short-lived children it reaped (the scripts the agents and the bench run: sh, aws, docker, curl;
    less the daemons and workers seen exit, whose time lands there too). ``other`` is the rest
    (kernel, other labs)."""

    DAEMONS = ("dockerd", "containerd")

    def __init__(self, root: Path, manager_dirs: Any, lambda_pids: Any, every: float = 2.0):
        self.root = str(root).rstrip("/") + "/"
        self.manager_dirs, self.lambda_pids, self.every = manager_dirs, lambda_pids, every
        self.tick = os.sysconf("SC_CLK_TCK")
        self.first: dict[int, tuple[str, float]] = {}  # pid -> (kind, CPU s when first seen)
        self.last: dict[int, tuple[str, float]] = {}
        self.samples: list[tuple[float, int, float, float]] = []  # (time, procs_running, busy, all)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-cpu")
        self._start: dict[str, Any] = {}
        self.result: dict[str, Any] = {}
        self.neigh_max = 0

    def _machine(self) -> dict[str, Any]:
        stat = _read("/proc/stat")
        cpu = [int(x) for x in stat.splitlines()[0].split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = (cpu + [0] * 8)[:8]
        t = os.times()
        return {
            "at": time.monotonic(),
            "busy": (user + nice + system + irq + softirq + steal) / self.tick,
            "iowait": iowait / self.tick,
            "all": (user + nice + system + irq + softirq + steal + idle + iowait) / self.tick,
            "cpu_some": _psi_total(_read("/proc/pressure/cpu"), "some"),
            "io_some": _psi_total(_read("/proc/pressure/io"), "some"),
            "io_full": _psi_total(_read("/proc/pressure/io"), "full"),
            "self": t.user + t.system,
            "children": t.children_user + t.children_system,
            **neigh_stats(_read("/proc/net/stat/arp_cache")),
        }

    def _sample(self, first: bool = False) -> None:
        managers = set(self.manager_dirs())
        lambdas = set(self.lambda_pids())
        seen: dict[int, tuple[str, float]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            stat = _read(f"/proc/{pid}/stat")
            if not stat:
                continue
            comm = stat[stat.find("(") + 1 : stat.rfind(")")]
            kind = None
            if pid in lambdas:
                kind = "lambda workers"
            elif comm.startswith(self.DAEMONS):
                cmd = _read(f"/proc/{pid}/cmdline").replace("\0", " ")
                at = cmd.find(self.root)
                if at >= 0:
                    node_dir = cmd[at + len(self.root) :].split("/", 1)[0]
                    kind = "manager daemons" if node_dir in managers else "other nodes' daemons"
            if kind is None:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            # utime + stime + the children it reaped (dockerd runs iptables, containerd, ...)
            seen[pid] = (kind, sum(int(x) for x in fields[11:15]) / self.tick)
        for pid, value in seen.items():
            self.first.setdefault(pid, value if first else (value[0], 0.0))
        self.last.update(seen)
        stat = _read("/proc/stat").splitlines()
        procs = next((int(x.split()[1]) for x in stat if x.startswith("procs_running")), 0)
        cpu = [int(x) for x in stat[0].split()[1:]]
        busy = sum(cpu[:3]) + sum(cpu[5:8])
        self.samples.append((time.monotonic(), procs, busy / self.tick, (busy + cpu[3] + cpu[4]) / self.tick))
        entries = neigh_stats(_read("/proc/net/stat/arp_cache")).get("neigh_entries")
        if entries is not None:
            self.neigh_max = max(self.neigh_max, entries)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(Exception):
                self._sample()

    def __enter__(self) -> CpuMeter:
        self._start = self._machine()
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        with contextlib.suppress(Exception):
            self._sample()
        end = self._machine()
        self.result = cpu_report(self._start, end, self.first, self.last, self.samples, alive=_alive_pids())
        self.result["neigh"] = {
            "max_entries": self.neigh_max,
            "limit": _neigh_limit(),
            **{
                k.removeprefix("neigh_"): end[k] - self._start[k]
                for k in ("neigh_table_fulls", "neigh_forced_gc_runs", "neigh_res_failed")
                if k in end and k in self._start
            },
        }


def neigh_stats(text: str) -> dict[str, int]:
    """The kernel's IPv4 neighbour (ARP) table from /proc/net/stat/arp_cache: entries (one table for
    every network namespace) and, summed over the per-CPU lines, how often it was full, forced a
    garbage collection, failed a resolution."""
    lines = text.split("\n")
    if len(lines) < 2:
        return {}
    names = lines[0].split()
    rows = [dict(zip(names, (int(v, 16) for v in line.split()), strict=False)) for line in lines[1:] if line]
    if not rows or "entries" not in names:
        return {}
    return {
        "neigh_entries": rows[0]["entries"],
        "neigh_table_fulls": sum(r.get("table_fulls", 0) for r in rows),
        "neigh_forced_gc_runs": sum(r.get("forced_gc_runs", 0) for r in rows),
        "neigh_res_failed": sum(r.get("res_failed", 0) for r in rows),
    }


NEIGH = Path("/proc/sys/net/ipv4/neigh/default")


def _neigh_limit() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((NEIGH / "gc_thresh3").read_text())
    return None


def neigh_room(nodes: int) -> int:
    """Neighbour entries a swarm of ``nodes`` lab nodes can hold: every node talks to every other one
    on the lab bridge and again on the ingress overlay (each in a namespace of its own, all counted
    in the one kernel table), doubled for headroom; a power of two."""
    return 1 << math.ceil(math.log2(max(2, 4 * nodes * nodes)))


@contextlib.contextmanager
def roomy_neigh_table(nodes: int, enabled: bool = True) -> Any:
    """While the lab figures are measured: the kernel's neighbour table big enough for ``nodes`` (its
    default hard limit, gc_thresh3 = 1024, is reached by about 23 swarm nodes; past it new nodes cannot
    resolve the managers or the endpoint and their joins hang: "neighbor table overflow"). Raised only
    when smaller, restored afterwards; yields what was there and what was set."""
    names = ("gc_thresh2", "gc_thresh3")
    before: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError):
        before = {n: int((NEIGH / n).read_text()) for n in names}
    room = neigh_room(nodes)
    changed: dict[str, int] = {}
    if enabled and before and before["gc_thresh3"] < room:
        changed = {"gc_thresh3": room, "gc_thresh2": max(before["gc_thresh2"], room // 2)}
        for n, v in changed.items():  # the hard limit first: gc_thresh2 never above gc_thresh3
            (NEIGH / n).write_text(f"{v}\n")
    try:
        yield {"before": before, "set": changed, "needed": room, "nodes": nodes}
    finally:
        for n in reversed(list(changed)):
            with contextlib.suppress(OSError):
                (NEIGH / n).write_text(f"{before[n]}\n")


def _alive_pids() -> set[int]:
    return {int(e.name) for e in os.scandir("/proc") if e.name.isdigit()}


def cpu_report(
    start: dict, end: dict, first: dict, last: dict, samples: list[tuple], alive: set[int]
) -> dict:
    """What ``CpuMeter`` measured, as figures: shares of the window's CPU capacity (cpus x seconds)."""
    window = end["at"] - start["at"]
    cpus = os.cpu_count() or 1
    capacity = (end["all"] - start["all"]) or window * cpus
    by: dict[str, float] = {}
    exited = 0.0
    for pid, (kind, value) in last.items():
        used = max(0.0, value - first.get(pid, (kind, 0.0))[1])
        by[kind] = by.get(kind, 0.0) + used
        if pid not in alive:
            exited += value  # reaped by us (dockerd, Lambda workers): counted in ``children`` too
    by["lab process (moto, lab threads)"] = end["self"] - start["self"]
    by["scripts and CLIs (reaped children)"] = max(0.0, end["children"] - start["children"] - exited)
    busy = end["busy"] - start["busy"]
    by["other"] = max(0.0, busy - sum(by.values()))

    def psi(key: str) -> float | None:
        if start.get(key) is None or end.get(key) is None or window <= 0:
            return None
        return (end[key] - start[key]) / 1e6 / window

    runnable = [s[1] for s in samples]
    timeline = [  # seconds into the window, CPUs' busy share since the sample before, runnable tasks
        [round(b[0] - start["at"], 1), round((b[2] - a[2]) / ((b[3] - a[3]) or 1), 2), b[1]]
        for a, b in itertools.pairwise(samples)
        if len(a) >= 4 and len(b) >= 4
    ]
    return {
        "timeline": timeline,
        "window_s": window,
        "cpus": cpus,
        "busy_share": busy / capacity if capacity else None,
        "iowait_share": (end["iowait"] - start["iowait"]) / capacity if capacity else None,
        "cpu_pressure_some": psi("cpu_some"),
        "io_pressure_some": psi("io_some"),
        "io_pressure_full": psi("io_full"),
        "runnable": durations(runnable),
        "cpu_s": {k: round(v, 1) for k, v in sorted(by.items(), key=lambda kv: -kv[1])},
    }


def foreign_dockerds(own_prefix: str | None = None) -> int:
    """dockerd processes on this machine, not counting this lab's own (``own_prefix``)."""
    out = subprocess.run(["pgrep", "-a", "-x", "dockerd"], capture_output=True, text=True)
    own = f"/swarmkeeper-lab/{own_prefix}/" if own_prefix else None
    return sum(1 for line in out.stdout.splitlines() if line.strip() and not (own and own in line))


class ForeignWatch:
    """The most foreign dockerds seen while the lab figures were measured (sampled every 10 s)."""

    def __init__(self, prefix: str):
        self.prefix, self.most = prefix, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-foreign")

    def _run(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.most = max(self.most, foreign_dockerds(self.prefix))
            if self._stop.wait(10):
                return

    def __enter__(self) -> ForeignWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def wait_for_quiet(timeout: float) -> dict:
    start = time.monotonic()
    first = foreign_dockerds()
    n = first
    while n and time.monotonic() - start < timeout:
        print(f"bench: waiting for {n} other dockerd processes (other labs) to finish...", flush=True)
        time.sleep(15)
        n = foreign_dockerds()
    return {"dockerd_at_first_look": first, "dockerd_at_start": n, "waited_s": time.monotonic() - start}


def machine() -> dict[str, str]:
    mem = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next(
            (
                x.split(":", 1)[1].strip()
                for x in Path("/proc/cpuinfo").read_text().splitlines()
                if x.startswith("model name")
            ),
            "",
        )

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    docker = ""
    if shutil.which("dockerd"):
        with contextlib.suppress(Exception):
            docker = subprocess.run(
                ["dockerd", "--version"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "boto3": version("boto3"),
        "botocore": version("botocore"),
        "moto": version("moto"),
        "aws-lambda-powertools": version("aws-lambda-powertools"),
        "dockerd": docker or "-",
    }


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (tasks running or waiting to), or None where unknown."""
    with contextlib.suppress(OSError):
        return [round(x, 2) for x in os.getloadavg()]
    return None
