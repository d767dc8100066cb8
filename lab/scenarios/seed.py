"""The seed's cluster, the lab's main demo: one manager and three workers, and the six services of
``examples/seed-stack.yml`` deployed by putting that file into the stacks bucket as a user would.
Then what Swarm promises, checked against the real swarm: the services talk over their overlay
network, a killed container is replaced, web_service scales to 6 and back, a rolling update to a
broken version rolls back by itself, a lost worker's tasks are rescheduled, and the nodes carry
the labels of their instances with the tasks spread over the zones; the operators' timeline shows
the stack's events beside the nodes'. Every wait is bounded and scaled.
"""

from __future__ import annotations

import re
import time
from typing import Any

import yaml

from lab.cluster import REPO, Lab, settle
from lab.images import load_service_images
from lab.scenarios.join import check_labels
from lab.scenarios.report import Report, timeline
from lab.scenarios.swarm import (
    back_to_size,
    form_swarm,
    json_lines,
    node_id_of,
    published,
    service_tasks,
    swarm_view,
)

EXAMPLE = REPO / "examples" / "seed-stack.yml"
STACK = "seed"
KEY = f"stacks/{STACK}.yml"
WEB = f"{STACK}_web_service"
GOOD, BROKEN = "swarmkeeper/web:1", "swarmkeeper/web:2-broken"
ZONE_LABEL = "swarmkeeper.az"
# What a request to web_service brings back when web, api, db and cache all answered.
CHAIN = re.compile(r"web 1 on \S+ -> api 1 on \S+ -> db 1 on \S+; cache 1 on \S+: hits=\d+")


def replicas_in(text: str) -> dict[str, int]:
    """Service name -> replicas, as the Compose file asks."""
    services = yaml.safe_load(text)["services"]
    return {name: int(spec["deploy"]["replicas"]) for name, spec in services.items()}


# -- the stacks bucket, as a user sees it ---------------------------------------------------------------
def stacks_bucket(lab: Lab) -> str:
    assert lab.stack is not None
    found = [b for b in lab.stack.buckets if "-stacksbucket" in b]
    if len(found) != 1:
        raise RuntimeError(f"no single stacks bucket among {lab.stack.buckets}")
    return found[0]


def put_stack(lab: Lab, text: str) -> tuple[float, str]:
    """PutObject of the Compose file at stacks/<name>.yml; (when, the object's version id)."""
    at = time.time()
    out = lab.client("s3").put_object(Bucket=stacks_bucket(lab), Key=KEY, Body=text.encode())
    return at, str(out.get("VersionId", ""))


def stack_events(lab: Lab, detail_type: str, since: float = 0.0) -> list[tuple[float, dict]]:
    return [
        (at, e.get("detail") or {})
        for at, e in lab.operator_events()
        if e.get("detail-type") == detail_type
        and (e.get("detail") or {}).get("stack") == STACK
        and at >= since
    ]


def wait_deployed(lab: Lab, r: Report, since: float, what: str, timeout: float) -> bool:
    deployed = settle(lambda: stack_events(lab, "Stack Deployed", since), timeout, every=1.0)
    failed = stack_events(lab, "Stack Deploy Failed", since)
    return r.check(
        f"Stack Deployed published for {what}",
        deployed,
        f"after {deployed[0][0] - since:.1f}s" if deployed else f"deploy failed: {failed}" if failed else "",
    )


# -- the swarm, as the seed's services see it ---------------------------------------------------------
def worker_hosts(lab: Lab) -> dict[str, Any]:
    """Hostname -> machine of every worker in service."""
    assert lab.fleet is not None
    return {lab.fleet.machines[i].hostname: lab.fleet.machines[i] for i in lab.instances("worker")}


def converged(leader: Any, lab: Lab, wanted: dict[str, int], avoid: str = "") -> dict[str, list[str]] | None:
    """Service -> the hosts of its running tasks, when every service runs what it should, on workers
    only (and not on ``avoid``); None otherwise."""
    workers = worker_hosts(lab)
    hosts = {}
    for name, replicas in wanted.items():
        tasks = service_tasks(leader, f"{STACK}_{name}")
        on = [t["Node"] for t in tasks]
        if len(on) != replicas or not set(on) <= set(workers) or avoid in on:
            return None
        hosts[name] = on
    return hosts


def zones(leader: Any, hosts: list[str]) -> dict[str, str | None]:
    """Hostname -> its swarmkeeper.az node label, as the leader has it."""
    out = leader.node.docker("node", "inspect", "--format", "{{json .}}", *hosts, timeout=20)
    nodes = json_lines(out.stdout) if out.returncode == 0 else []
    return {n["Description"]["Hostname"]: (n["Spec"].get("Labels") or {}).get(ZONE_LABEL) for n in nodes}


def per_zone(hosts: list[str], zone_of: dict[str, str | None]) -> dict[str | None, int]:
    counts: dict[str | None, int] = dict.fromkeys(set(zone_of.values()), 0)
    for host in hosts:
        counts[zone_of.get(host)] = counts.get(zone_of.get(host), 0) + 1
    return counts


def balanced(counts: dict[str | None, int]) -> bool:
    """Tasks over two zones or more, every host's zone known, no zone two tasks ahead of another."""
    return len(counts) > 1 and None not in counts and max(counts.values()) - min(counts.values()) <= 1


def ask_web(lab: Lab) -> str:
    """What web_service answers to a container on the stack's network, on a worker."""
    probe = next(iter(worker_hosts(lab).values()))
    out = probe.node.docker(
        "run", "--rm", "--network", f"{STACK}_appnet", "--entrypoint", "sh", GOOD,
        "-c", ". /srv/lib.sh; ask web_service 80 /cgi-bin/index", timeout=60,
    )  # fmt: skip
    return out.stdout.strip()


def logger_log(leader: Any) -> str:
    """The logger's tasks' output (it writes each line it gets to stderr)."""
    out = leader.node.docker("service", "logs", "--raw", f"{STACK}_logger_app", timeout=30)
    return out.stdout + out.stderr


def update_status(leader: Any) -> dict:
    """web_service's UpdateStatus (State, StartedAt, Message), {} before its first update."""
    out = leader.node.docker("service", "inspect", WEB, "--format", "{{json .UpdateStatus}}", timeout=20)
    rows = json_lines(out.stdout)
    return rows[0] if rows else {}


# -- the demo -------------------------------------------------------------------------------------------
def _deployed(lab: Lab, r: Report, wanted: dict[str, int], scale: float) -> Any:
    at, _version = put_stack(lab, EXAMPLE.read_text())
    if not wait_deployed(lab, r, at, f"{KEY} (put into the stacks bucket)", 180 * scale):
        return None
    leader = swarm_view(lab)["leader"]
    hosts = settle(lambda: converged(leader, lab, wanted), 120 * scale, every=2.0)
    r.check(
        f"the six services run their {sum(wanted.values())} replicas, on workers only",
        hosts,
        str(hosts) if hosts else str({n: len(service_tasks(leader, f"{STACK}_{n}")) for n in wanted}),
    )
    used = {h for on in (hosts or {}).values() for h in on}
    r.check("spread over all three workers", len(used) == 3, str(sorted(used)))
    answer = settle(lambda: CHAIN.search(ask_web(lab)), 60 * scale, every=3.0)
    r.check(
        "web answers over the overlay network, through api, db and cache",
        answer,
        answer.group(0) if answer else ask_web(lab)[:300],
    )
    logs = settle(lambda: "got: worker 1 on" in (log := logger_log(leader)) and log, 60 * scale, every=3.0)
    r.check(
        "logger_app received the lines worker_app read from cache_redis",
        logs,
        (logs or "").strip().splitlines()[-1][:200] if logs else "no line in the logger's log",
    )
    return leader if hosts else None


def _zones(lab: Lab, r: Report, leader: Any) -> dict[str, str | None]:
    check_labels(lab, r, {"leader": leader})
    zone_of = zones(leader, list(worker_hosts(lab)))
    r.check(
        f"every worker carries its {ZONE_LABEL} label (set at join)",
        zone_of and all(zone_of.values()),
        str(zone_of),
    )
    r.check("the workers are in more than one zone", len(set(zone_of.values())) > 1, str(zone_of))
    web = [t["Node"] for t in service_tasks(leader, WEB)]
    counts = per_zone(web, zone_of)
    r.check(
        "web_service's 3 tasks spread over the zones (spread: node.labels.swarmkeeper.az)",
        balanced(counts),
        str(counts),
    )
    return zone_of


def _self_healing(lab: Lab, r: Report, leader: Any, scale: float) -> None:
    victim = service_tasks(leader, WEB)[0]
    machine = worker_hosts(lab)[victim["Node"]]
    found = machine.node.docker(
        "ps", "-q", "--filter", f"label=com.docker.swarm.task.id={victim['ID']}", timeout=20
    ).stdout.strip()
    killed = machine.node.docker("kill", found, timeout=30) if found else None
    if not r.check(
        "a web_service container killed on its worker (docker kill on that node)",
        killed is not None and killed.returncode == 0,
        f"task {victim['ID'][:12]} on {victim['Node']}",
    ):
        return

    def replaced() -> list[dict] | None:
        tasks = service_tasks(leader, WEB)
        return tasks if len(tasks) == 3 and victim["ID"] not in {t["ID"] for t in tasks} else None

    back = settle(replaced, 60 * scale, every=1.0)
    state = leader.node.docker("inspect", "--format", "{{.Status.State}}", victim["ID"], timeout=20)
    r.check(
        "Swarm replaced it by itself: 3 tasks running again, a new one in the killed one's place",
        back,
        f"killed task now {state.stdout.strip()}",
    )


def _scaling(lab: Lab, r: Report, leader: Any, zone_of: dict[str, str | None], scale: float) -> None:
    workers = set(worker_hosts(lab))

    def running(n: int) -> list[str] | None:
        hosts = [t["Node"] for t in service_tasks(leader, WEB)]
        return hosts if len(hosts) == n and set(hosts) <= workers else None

    leader.node.docker("service", "scale", "--detach", f"{WEB}=6", timeout=30)
    six = settle(lambda: running(6), 90 * scale, every=1.0)
    r.check("web_service scaled to 6 replicas, all running on workers", six, str(six))
    counts = per_zone(six or [], zone_of)
    r.check(
        "... spread evenly over the zones, not over the workers",
        balanced(counts),
        f"tasks per zone {counts}, workers per zone {per_zone(list(workers), zone_of)}",
    )
    leader.node.docker("service", "scale", "--detach", f"{WEB}=3", timeout=30)
    r.check("... and back to 3", settle(lambda: running(3), 60 * scale, every=1.0))


def _rollback(lab: Lab, r: Report, leader: Any, scale: float) -> None:
    good = EXAMPLE.read_text()
    broken = good.replace(f"image: {GOOD}", f"image: {BROKEN}")
    if not r.check("the broken version differs only in web_service's image", broken.count(BROKEN) == 1):
        return
    before = update_status(leader)
    at, _version = put_stack(lab, broken)
    if not wait_deployed(lab, r, at, f"the new version of {KEY} (web_service {BROKEN})", 120 * scale):
        return
    ended = ("rollback_completed", "rollback_paused", "paused", "completed")
    status = settle(
        lambda: (s := update_status(leader)) != before and s.get("State") in ended and s, 180 * scale
    )
    r.check(
        "the rolling update failed and Swarm rolled it back by itself (rollback_completed)",
        status and status.get("State") == "rollback_completed",
        f"update status {status or update_status(leader)}",
    )
    history = leader.node.docker("service", "ps", WEB, "--format", "{{json .}}", timeout=20)
    tried = [t for t in json_lines(history.stdout) if t.get("Image", "").startswith(BROKEN)]
    r.check(
        f"a {BROKEN} task was started and failed",
        tried and all(t.get("DesiredState") != "Running" for t in tried),
        str([(t.get("CurrentState"), t.get("Error")) for t in tried][:3]),
    )

    def running_good() -> tuple[str, list[str]] | None:
        """(the spec's image, the running tasks' images) once the spec is back at GOOD and its 3
        tasks run it (the rollback's start-first replacements take a moment to settle)."""
        spec = leader.node.docker(
            "service", "inspect", WEB, "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", timeout=20
        ).stdout.strip()
        images = sorted(t.get("Image", "") for t in service_tasks(leader, WEB))
        good_again = spec.startswith(GOOD) and len(images) == 3 and all(i.startswith(GOOD) for i in images)
        return (spec, images) if good_again else None

    good_again = settle(running_good, 60 * scale, every=1.0)
    r.check(
        f"web_service runs {GOOD} again, 3 tasks, and answers",
        good_again and settle(lambda: CHAIN.search(ask_web(lab)), 30 * scale, every=3.0),
        f"spec and task images {good_again}" if good_again else "not back at the good version",
    )
    at, _version = put_stack(lab, good)
    wait_deployed(lab, r, at, f"{KEY} put back at {GOOD}", 120 * scale)


def _worker_lost(lab: Lab, r: Report, leader: Any, wanted: dict[str, int], scale: float) -> None:
    """The busiest worker dies without warning (its dockerd killed, its instance terminated): no drain."""
    hosts = converged(leader, lab, wanted) or {}
    load = {h: sum(on.count(h) for on in hosts.values()) for h in worker_hosts(lab)}
    host = max(load, key=lambda h: load[h])
    machine = worker_hosts(lab)[host]
    iid = machine.instance_id
    machine.node.kill_dockerd()
    lab.client("ec2").terminate_instances(InstanceIds=[iid])
    lost = time.time()
    moved = settle(lambda: converged(leader, lab, wanted, avoid=host), 150 * scale, every=2.0)
    r.check(
        f"a worker lost ({iid}, {load[host]} tasks): its tasks rescheduled on the others, every "
        "service at its replicas",
        moved,
        f"after {time.time() - lost:.1f}s: {moved}" if moved else str(moved),
    )
    r.check(
        "operators' timeline: Dead Node Removed for the lost worker",
        settle(lambda: published(lab, iid, "Dead Node Removed"), 60 * scale),
        f"node {node_id_of(lab, iid)[:12]}",
    )
    back_to_size(lab, r, 1, 3, 180 * scale, [iid])


def _timeline(lab: Lab, r: Report) -> None:
    """What an operator reads: the stack's events on the swarmkeeper bus beside the nodes'."""
    lines = timeline(lab).splitlines()
    stack = [line for line in lines if f"stack={STACK}" in line]
    nodes = [line for line in lines if "Node Joined" in line or "Dead Node Removed" in line]
    r.check(
        "the operators' timeline shows the stack's Stack Deployed events beside the nodes' events",
        len([line for line in stack if "Stack Deployed" in line]) >= 3 and nodes,
        f"{len(stack)} stack lines, {len(nodes)} node lines",
    )


def seed(lab: Lab, r: Report, scale: float) -> None:
    assert lab.fleet is not None
    lab.fleet.image_loaders.append(load_service_images)
    form_swarm(lab, r, 300 * scale, managers=1, workers=3)
    wanted = replicas_in(EXAMPLE.read_text())
    if not r.ok:
        r.notes.append("the swarm did not form: the stack was not deployed")
        return
    leader = _deployed(lab, r, wanted, scale)
    if leader is None:
        r.notes.append("the stack did not come up: the rest of the scenario was not run")
        return
    zone_of = _zones(lab, r, leader)
    _self_healing(lab, r, leader, scale)
    _scaling(lab, r, leader, zone_of, scale)
    _rollback(lab, r, leader, scale)
    _worker_lost(lab, r, leader, wanted, scale)
    _timeline(lab, r)
