"""Helpers every scenario shares: the swarm as its nodes see it, bounded waits for a swarm of a given
size, forming the first swarm, a service on the workers, and what the lab recorded about an instance."""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from lab.autoscaling import TERMINATING
from lab.cluster import Lab, settle
from lab.scenarios.report import Report

log = logging.getLogger("lab.scenarios")

SERVICE_IMAGE = "swarmkeeper/busybox:lab"
SERVICE = "app"  # the service on the workers that scale-in, crash and spot take nodes from


# -- the swarm, seen from the nodes ---------------------------------------------------------------------
def json_lines(text: str) -> list[dict]:
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
                nodes = json_lines(ls.stdout)
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


# -- waiting for a swarm of a given size ------------------------------------------------------------------
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


def wait_swarm(lab: Lab, managers: int, workers: int, timeout: float) -> dict:
    progress = _progress(lab, f"{managers} managers + {workers} workers")

    def ready() -> dict | None:
        progress()
        in_service = len(lab.instances("manager")) == managers and len(lab.instances("worker")) == workers
        view = swarm_view(lab)
        return view if in_service and swarm_ok(view, managers, workers) else None

    return settle(ready, timeout, every=2.0) or swarm_view(lab)


def form_swarm(lab: Lab, r: Report, timeout: float, managers: int = 3, workers: int = 3) -> dict:
    """A swarm of ``managers`` + ``workers`` from empty groups, checked: the start of every scenario."""
    lab.set_desired("manager", managers)
    lab.set_desired("worker", workers)
    view = wait_swarm(lab, managers, workers, timeout)
    nodes = view["nodes"]
    r.check(
        f"all {managers + workers} instances InService (lifecycle actions completed)",
        len(lab.instances("manager")) == managers and len(lab.instances("worker")) == workers,
        str(lab.autoscaling.snapshot() if lab.autoscaling else ""),
    )
    r.check("a leader answers", view["leader"] is not None)
    r.check(
        f"{managers + workers} nodes Ready",
        sum(1 for n in nodes if n.get("Status") == "Ready") == managers + workers,
        f"{[(n.get('Hostname'), n.get('Status')) for n in nodes]}",
    )
    r.check(
        f"{managers} managers Reachable, one of them Leader",
        sum(1 for n in nodes if n.get("ManagerStatus") in ("Leader", "Reachable")) == managers
        and sum(1 for n in nodes if n.get("ManagerStatus") == "Leader") == 1,
    )
    r.check(
        "exactly one swarm (one swarm init)",
        len(view["cluster_ids"]) == 1 and init_count(lab) == 1,
        f"cluster ids {view['cluster_ids']}, successful init commands {init_count(lab)}",
    )
    return view


def init_count(lab: Lab) -> int:
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


def back_to_size(lab: Lab, r: Report, managers: int, workers: int, timeout: float, gone: list[str]) -> dict:
    """The swarm is whole again after the instances in ``gone`` left (their groups replace them)."""
    view = wait_swarm(lab, managers, workers, timeout)
    nodes = view["nodes"]
    ready = [n for n in nodes if n.get("Status") == "Ready"]
    r.check(
        f"the swarm is back to {managers} managers + {workers} workers, all Ready",
        len(ready) == len(nodes) == managers + workers
        and len(lab.instances("manager")) == managers
        and len(lab.instances("worker")) == workers,
        f"{[(n.get('Hostname'), n.get('Status'), n.get('ManagerStatus')) for n in nodes]}",
    )
    r.check(
        "the instances that left are out of their groups",
        not any(i in lab.instances(role) for i in gone for role in ("manager", "worker")),
    )
    return view


def free_ip(lab: Lab) -> str:
    """An address on the lab subnet no machine (nor the bridge) holds."""
    assert lab.fleet is not None and lab.network is not None
    used = {m.ip for m in lab.fleet.machines.values()} | {lab.network.gateway_ip}
    for host in reversed(list(ipaddress.IPv4Network(lab.config.subnet).hosts())):
        if str(host) not in used:
            return str(host)
    raise RuntimeError("no free address")


# -- a service on the workers ---------------------------------------------------------------------------
def service_tasks(leader: Any, service: str) -> list[dict]:
    """The running tasks of ``service`` as the leader lists them (`docker service ps` rows, full ids)."""
    ps = leader.node.docker(
        "service", "ps", service, "--no-trunc", "--filter", "desired-state=running", "--format", "{{json .}}",
        timeout=20,
    )  # fmt: skip
    return [t for t in json_lines(ps.stdout) if str(t.get("CurrentState", "")).startswith("Running")]


def running_tasks(leader: Any, service: str = SERVICE) -> dict[str, int]:
    """Hostname -> running tasks of ``service``, as the leader lists them."""
    out: dict[str, int] = {}
    for t in service_tasks(leader, service):
        out[t["Node"]] = out.get(t["Node"], 0) + 1
    return out


def service_on_workers(lab: Lab, r: Report, replicas: int, timeout: float) -> bool:
    """A service whose tasks run on workers only (what scale-in, crash and spot take away)."""
    leader = swarm_view(lab)["leader"]
    if leader is None:
        return r.check(f"{replicas}-replica service running on workers", False, "no leader")
    made = leader.node.docker(
        "service", "create", "--detach", "--name", SERVICE, "--replicas", str(replicas),
        "--constraint", "node.role==worker", "--endpoint-mode", "dnsrr", "--stop-grace-period", "1s",
        SERVICE_IMAGE, "sleep", "100000",
        timeout=60,
    )  # fmt: skip
    if not r.check("service created", made.returncode == 0, made.stderr.strip()):
        return False
    workers = {lab.fleet.machines[i].hostname for i in lab.instances("worker")} if lab.fleet else set()
    spread = settle(
        lambda: (t := running_tasks(leader)) and sum(t.values()) == replicas and set(t) == workers and t,
        timeout,
        every=2.0,
    )
    return r.check(f"{replicas} replicas running, on every worker", spread, str(spread))


def replicas_back(lab: Lab, r: Report, replicas: int, gone_host: str, timeout: float) -> None:
    def full() -> dict | None:
        leader = swarm_view(lab)["leader"]
        t = running_tasks(leader) if leader else {}
        return t if sum(t.values()) == replicas and gone_host not in t else None

    back = settle(full, timeout, every=2.0)
    r.check(
        f"the service is back to {replicas} running replicas, none on the node that left", back, str(back)
    )


# -- what the lab recorded about an instance --------------------------------------------------------------
def node_id_of(lab: Lab, instance_id: str) -> str:
    """The swarm node id of an instance: its swarmkeeper:node-id tag (set once it joined)."""
    out = lab.client("ec2").describe_instances(InstanceIds=[instance_id])
    for res in out.get("Reservations", []):
        for inst in res.get("Instances", []):
            for tag in inst.get("Tags") or []:
                if tag["Key"] == "swarmkeeper:node-id":
                    return tag["Value"]
    return ""


def victim(lab: Lab) -> tuple[str, str, str]:
    """A worker that runs tasks of the service: (instance id, node id, hostname)."""
    assert lab.fleet is not None
    leader = swarm_view(lab)["leader"]
    tasks = running_tasks(leader) if leader else {}
    workers = sorted(
        lab.instances("worker"),
        key=lambda i: -tasks.get(lab.fleet.machines[i].hostname, 0) if lab.fleet else 0,
    )
    iid = workers[0]
    return iid, node_id_of(lab, iid), lab.fleet.machines[iid].hostname


def terminate_action(lab: Lab, instance_id: str) -> Any:
    """The instance's completed terminate lifecycle action, or None."""
    assert lab.autoscaling is not None
    return next(
        (
            c
            for c in lab.autoscaling.completed
            if c.instance_id == instance_id and c.transition == TERMINATING
        ),
        None,
    )


def published(lab: Lab, instance_id: str | None, detail_type: str) -> list[float]:
    """When swarmkeeper published ``detail_type`` for the instance (any instance: None)."""
    return [
        at
        for at, e in lab.operator_events()
        if e.get("detail-type") == detail_type
        and (instance_id is None or (e.get("detail") or {}).get("instanceId") == instance_id)
    ]
