"""The demo scenarios, asserted against the real swarm, and the operators' timeline.

Each scenario drives the stack the way AWS and an operator would (desired capacity, EC2 calls, AWS
events) and then checks the swarm itself with ``docker`` on the nodes. Every wait is bounded.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.cluster import Lab, settle

log = logging.getLogger("lab.scenarios")

SERVICE_IMAGE = "swarmkeeper/busybox:lab"


class NotImplementedScenario(Exception):
    pass


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    scenario: str
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, ok: Any, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        (log.info if ok else log.error)("%s: %s %s", "PASS" if ok else "FAIL", name, detail)
        return bool(ok)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)


# -- the swarm, seen from the nodes ---------------------------------------------------------------------
def _json_lines(text: str) -> list[dict]:
    return [json.loads(x) for x in text.splitlines() if x.strip().startswith("{")]


def swarm_view(lab: Lab) -> dict[str, Any]:
    """Ask every running manager instance; the one that says it is Leader answers for the swarm."""
    assert lab.fleet is not None
    managers = set(lab.instances("manager", ("InService", "Pending:Wait", "Terminating:Wait")))
    view: dict[str, Any] = {"leader": None, "nodes": [], "cluster_ids": set()}
    for m in lab.fleet.running():
        node = m.node
        info = node.docker("info", "--format", "{{json .Swarm}}", timeout=15)
        if info.returncode != 0:
            continue
        swarm = json.loads(info.stdout or "{}")
        cid = (swarm.get("Cluster") or {}).get("ID")
        if cid:
            view["cluster_ids"].add(cid)
        if m.instance_id in managers and swarm.get("ControlAvailable") and view["leader"] is None:
            ls = node.docker("node", "ls", "--format", "{{json .}}", timeout=15)
            if ls.returncode == 0:
                nodes = _json_lines(ls.stdout)
                if any(n.get("Self") and n.get("ManagerStatus") == "Leader" for n in nodes):
                    view["leader"] = m
                    view["nodes"] = nodes
    return view


def node_ls(lab: Lab) -> str:
    view = swarm_view(lab)
    if view["leader"] is None:
        return "(no leader answers)"
    return view["leader"].node.docker("node", "ls", timeout=15).stdout


def swarm_ok(view: dict, managers: int, workers: int) -> bool:
    nodes = view["nodes"]
    ready = [n for n in nodes if n.get("Status") == "Ready"]
    mgr = [n for n in ready if n.get("ManagerStatus") in ("Leader", "Reachable")]
    leaders = [n for n in ready if n.get("ManagerStatus") == "Leader"]
    return (
        len(ready) == managers + workers
        and len(nodes) == managers + workers
        and len(mgr) == managers
        and len(leaders) == 1
    )


# -- scenarios ----------------------------------------------------------------------------------------------
def _progress(lab: Lab, what: str) -> Callable[[], None]:
    last = [0.0]

    def tick() -> None:
        if time.monotonic() - last[0] < 15:
            return
        last[0] = time.monotonic()
        assert lab.autoscaling is not None and lab.lambdas is not None and lab.agents is not None
        snap = lab.autoscaling.snapshot()
        states = {g: sorted({s for _, s, _ in v}) for g, v in snap.items()}
        errors = sum(1 for r in lab.lambdas.records if not r.ok)
        log.info(
            "waiting for %s: groups %s; %d invocations (%d failed), %d commands run",
            what,
            states,
            len(lab.lambdas.records),
            errors,
            len(lab.agents.history),
        )

    return tick


def _wait_swarm(lab: Lab, managers: int, workers: int, timeout: float) -> dict:
    progress = _progress(lab, f"{managers} managers + {workers} workers")

    def ready() -> dict | None:
        progress()
        in_service = len(lab.instances("manager")) == managers and len(lab.instances("worker")) == workers
        view = swarm_view(lab)
        return view if in_service and swarm_ok(view, managers, workers) else None

    return settle(ready, timeout, every=2.0) or swarm_view(lab)


def _bootstrap(lab: Lab, r: Report, timeout: float) -> dict:
    lab.set_desired("manager", 3)
    lab.set_desired("worker", 3)
    view = _wait_swarm(lab, 3, 3, timeout)
    nodes = view["nodes"]
    r.check(
        "all six instances InService (lifecycle actions completed)",
        len(lab.instances("manager")) == 3 and len(lab.instances("worker")) == 3,
        str(lab.autoscaling.snapshot() if lab.autoscaling else ""),
    )
    r.check("a leader answers", view["leader"] is not None)
    r.check(
        "six nodes Ready",
        sum(1 for n in nodes if n.get("Status") == "Ready") == 6,
        f"{[(n.get('Hostname'), n.get('Status')) for n in nodes]}",
    )
    r.check(
        "three managers Reachable, one of them Leader",
        sum(1 for n in nodes if n.get("ManagerStatus") in ("Leader", "Reachable")) == 3
        and sum(1 for n in nodes if n.get("ManagerStatus") == "Leader") == 1,
    )
    r.check(
        "exactly one swarm (one swarm init)",
        len(view["cluster_ids"]) == 1 and _inits(lab) == 1,
        f"cluster ids {view['cluster_ids']}, successful init commands {_inits(lab)}",
    )
    return view


def _inits(lab: Lab) -> int:
    """Instances on which a bootstrap-node command with Mode=init succeeded."""
    assert lab.agents is not None
    return len(
        {
            h["instance_id"]
            for h in lab.agents.history
            if h["document"].endswith("bootstrap-node")
            and h["exit_code"] == 0
            and (h.get("parameters") or {}).get("Mode") in (["init"], "init")
        }
    )


def _service(lab: Lab, r: Report, view: dict) -> None:
    leader = view["leader"]
    if leader is None:
        r.check("3-replica service answers across nodes", False, "no leader")
        return
    d = leader.node.docker
    d("network", "create", "-d", "overlay", "--attachable", "appnet", timeout=30)
    d("service", "rm", "web", timeout=30)
    made = d(
        "service",
        "create",
        "--detach",
        "--name",
        "web",
        "--replicas",
        "3",
        "--network",
        "appnet",
        "--endpoint-mode",
        "dnsrr",
        SERVICE_IMAGE,
        "sh",
        "-c",
        'echo "ok from $(hostname)" > /tmp/index.html; exec busybox httpd -f -p 8080 -h /tmp',
        timeout=60,
    )
    if not r.check("service created", made.returncode == 0, made.stderr.strip()):
        return

    def running() -> list[str]:
        ps = d(
            "service", "ps", "web", "--filter", "desired-state=running", "--format", "{{json .}}", timeout=20
        )
        tasks = [t for t in _json_lines(ps.stdout) if t.get("CurrentState", "").startswith("Running")]
        return [t["Node"] for t in tasks] if len(tasks) == 3 else []

    hosts = settle(running, 90, every=2.0)
    r.check("3 replicas running", hosts, f"on {hosts}")
    r.check("replicas spread over more than one node", hosts and len(set(hosts)) > 1)
    # From a container on a worker, ask every task through the overlay (dnsrr: the name has 3 A records).
    assert lab.fleet is not None
    workers = [m for m in lab.fleet.running() if m.instance_id in lab.instances("worker")]
    probe_host = workers[0] if workers else leader
    # busybox-static's wget segfaults on this image (glibc static build), so each task is asked by
    # address with nc; nslookup uses busybox's own resolver against the swarm's embedded DNS.
    probe = (
        "for ip in $(busybox nslookup web 2>/dev/null | busybox awk '/^Address: /{print $2}'); do "
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 \"$ip\" 8080; done"
    )

    def ask() -> str | None:
        out = probe_host.node.docker(
            "run", "--rm", "--network", "appnet", SERVICE_IMAGE, "sh", "-c", probe, timeout=90
        )
        return out.stdout if "ok from" in out.stdout else None

    answer = settle(ask, 60, every=3.0) or ""
    answering = {line.split("ok from ", 1)[1].strip() for line in answer.splitlines() if "ok from " in line}
    r.check(
        "the service answers across nodes from another node over the overlay",
        len(answering) >= 2,
        f"answered by {sorted(answering)} (probe on {probe_host.hostname})",
    )


def bootstrap(lab: Lab, r: Report, scale: float) -> None:
    view = _bootstrap(lab, r, 300 * scale)
    if not r.ok:
        r.check("3-replica service answers across nodes", False, "not tried: the swarm did not form")
        return
    _service(lab, r, view)


def burst(lab: Lab, r: Report, scale: float) -> None:
    view = _bootstrap(lab, r, 300 * scale)
    if not r.ok:
        r.notes.append("bootstrap failed: the rest of the scenario was not run")
        return
    lab.set_desired("worker", 20)
    view = _wait_swarm(lab, 3, 20, 420 * scale)
    nodes = view["nodes"]
    r.check(
        "23 nodes Ready", sum(1 for n in nodes if n.get("Status") == "Ready") == 23, f"{len(nodes)} listed"
    )
    hostnames = [n.get("Hostname") for n in nodes]
    r.check("no node joined twice", len(hostnames) == len(set(hostnames)), str(sorted(hostnames)))
    assert lab.autoscaling is not None
    r.check(
        "no lifecycle action left",
        settle(lambda: not lab.autoscaling.pending, 60 * scale),
        str(list(lab.autoscaling.pending)),
    )


def rotate(lab: Lab, r: Report, scale: float) -> None:
    view = _bootstrap(lab, r, 300 * scale)
    if not r.ok:
        r.notes.append("bootstrap failed: the rest of the scenario was not run")
        return
    leader = view["leader"].node
    old = leader.docker("swarm", "join-token", "-q", "worker", timeout=20).stdout.strip()
    lab.fire_schedule("rotate")
    new = settle(
        lambda: (t := leader.docker("swarm", "join-token", "-q", "worker", timeout=20).stdout.strip()) != old
        and t,
        120 * scale,
    )
    r.check("worker join token rotated", bool(new) and new != old)
    if not lab.wait_quiet(60 * scale):
        r.notes.append("control plane still busy after rotation")
    lab.set_desired("worker", 4)
    view = _wait_swarm(lab, 3, 4, 300 * scale)
    r.check(
        "a node that joins afterwards joins (with the new token)",
        view["leader"] is not None and sum(1 for n in view["nodes"] if n.get("Status") == "Ready") == 7,
    )
    # The old token is refused: a fresh daemon outside the swarm tries it.
    assert lab.network is not None
    leader_ip = view["leader"].ip if view["leader"] else ""
    probe = lab.network.add_node("probe", _free_ip(lab), "probe-old-token")
    try:
        probe.start_dockerd(wait=True)
        out = probe.docker("swarm", "join", "--token", old, f"{leader_ip}:2377", timeout=60)
        r.check("the old token is refused", out.returncode != 0, (out.stderr or out.stdout).strip()[:200])
    finally:
        probe.destroy()


def _free_ip(lab: Lab) -> str:
    import ipaddress

    assert lab.fleet is not None and lab.network is not None
    used = {m.ip for m in lab.fleet.machines.values()} | {lab.network.gateway_ip}
    for host in reversed(list(ipaddress.IPv4Network(lab.config.subnet).hosts())):
        if str(host) not in used:
            return str(host)
    raise RuntimeError("no free address")


def _exit_scenario(name: str) -> Callable[[Lab, Report, float], None]:
    """The exit-flow scenarios live in lab.exit_scenarios (which builds on the helpers above)."""

    def run_exit_scenario(lab: Lab, r: Report, scale: float) -> None:
        from lab import exit_scenarios

        getattr(exit_scenarios, name)(lab, r, scale)

    run_exit_scenario.__name__ = name
    return run_exit_scenario


SCENARIOS: dict[str, Callable[[Lab, Report, float], None]] = {
    "bootstrap": bootstrap,
    "burst": burst,
    "scale-in": _exit_scenario("scale_in"),
    "crash": _exit_scenario("crash"),
    "spot": _exit_scenario("spot"),
    "manager-rollover": _exit_scenario("manager_rollover"),
    "rotate": rotate,
    "alarm": _exit_scenario("alarm"),
}


def run(lab: Lab, name: str, scale: float = 1.0) -> Report:
    r = Report(name)
    started = time.monotonic()
    try:
        SCENARIOS[name](lab, r, scale)
    except NotImplementedScenario:
        r.error = "not implemented"
    except Exception as e:
        log.exception("scenario %s", name)
        r.error = f"{type(e).__name__}: {e}"
    r.seconds = time.monotonic() - started
    return r


# -- what an operator sees ------------------------------------------------------------------------------
def timeline(lab: Lab) -> str:
    lines = []
    for at, e in lab.operator_events():
        d = e.get("detail") or {}
        who = " ".join(
            x
            for x in (
                d.get("instanceId"),
                f"({d['role']})" if d.get("role") else None,
                f"node={d['nodeId'][:12]}" if d.get("nodeId") else None,
            )
            if x
        )
        reason = f" — {d['reason']}" if d.get("reason") else ""
        lines.append(f"  +{at - lab.started:7.1f}s  {e.get('detail-type', '?'):<22} {who}{reason}")
    return "\n".join(lines) if lines else "  (no swarmkeeper events on the operators' bus)"


def diagnostics(lab: Lab) -> str:
    out = []
    if lab.lambdas:
        failed = [r for r in lab.lambdas.records if not r.ok]
        out.append(
            f"function invocations: {len(lab.lambdas.records)}, failed: {len(failed)}, "
            f"dead-lettered: {len(lab.lambdas.dead_lettered)}"
        )
        for rec in failed[-5:]:
            out.append(f"  {rec.function} [{rec.detail_type}] attempt {rec.attempt}: {rec.error}")
    if lab.agents:
        out.append(f"run commands executed: {len(lab.agents.history)}")
        for h in [h for h in lab.agents.history if h["exit_code"] != 0][-5:]:
            out.append(
                f"  {h['document']} on {h['instance_id']}: exit {h['exit_code']}: "
                f"{h['stderr'][-300:].strip()}"
            )
    if lab.autoscaling:
        out.append(
            f"lifecycle actions pending: {len(lab.autoscaling.pending)}, "
            f"completed: {len(lab.autoscaling.completed)} "
            f"({sum(1 for c in lab.autoscaling.completed if c.how == 'timeout')} by heartbeat timeout)"
        )
    if lab.fleet and lab.fleet.errors:
        out.append("node errors: " + "; ".join(lab.fleet.errors[-5:]))
    if lab.router and lab.router.unmatched:
        kinds = sorted({e.get("detail-type", "?") for e in lab.router.unmatched})
        out.append(f"AWS events no rule matched: {kinds}")
    return "\n".join(out)
