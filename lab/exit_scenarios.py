"""Lab scenarios of the exit flow (issue 5): scale-in, crash, spot, manager-rollover, alarm.

Each drives the stack the way AWS would (desired capacity, EC2 TerminateInstances, a Spot warning, an
instance refresh, a dead daemon) and checks the real swarm: a ``Watcher`` samples the leader's
``docker node ls`` (and the service's tasks) in the background, so the checks can say what the swarm
looked like *before* an instance went or a lifecycle action completed. Every wait is bounded and
scaled by ``scale``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lab.autoscaling import TERMINATING
from lab.cluster import Lab, settle
from lab.scenarios import SERVICE_IMAGE, Report, _bootstrap, _json_lines, _wait_swarm, swarm_view

log = logging.getLogger("lab.exit")

SERVICE = "app"
DOWN_GRACE_SECONDS = 1  # RECONCILE_DOWN_GRACE_SECONDS for the alarm scenario (default 600)


# -- watching the swarm -------------------------------------------------------------------------------
@dataclass
class Sample:
    at: float  # time.time()
    leader: str | None  # instance id of the manager that answered as Leader; None: nobody did
    nodes: dict[str, dict] = field(default_factory=dict)  # node id -> `docker node ls` row
    tasks: dict[str, int] | None = None  # hostname -> running tasks of SERVICE (None: not asked)

    def node(self, node_id: str) -> dict | None:
        return self.nodes.get(node_id)

    def tasks_on(self, node_id: str) -> int | None:
        row = self.nodes.get(node_id)
        if row is None or self.tasks is None:
            return None
        return self.tasks.get(row.get("Hostname", ""), 0)

    def managers(self) -> tuple[int, int]:
        """(managers in the raft configuration, reachable ones) as the leader sees them."""
        managers = [n for n in self.nodes.values() if n.get("ManagerStatus")]
        reachable = [n for n in managers if n.get("ManagerStatus") in ("Leader", "Reachable")]
        return len(managers), len(reachable)


class Watcher:
    """Samples the leader's view about every ``every`` seconds until stopped."""

    def __init__(self, lab: Lab, service: str | None = None, every: float = 0.7):
        self.lab = lab
        self.service = service
        self.every = every
        self.samples: list[Sample] = []
        self.at_completion: dict[
            str, Sample
        ] = {}  # instance id -> the swarm when its terminate action completed
        self._leader: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-watcher", daemon=True)

    def __enter__(self) -> Watcher:
        self.sample()
        if self.lab.autoscaling is not None:
            self.lab.autoscaling.listeners.append(self._completed)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lab.autoscaling is not None and self._completed in self.lab.autoscaling.listeners:
            self.lab.autoscaling.listeners.remove(self._completed)
        self._stop.set()
        self._thread.join(timeout=30)

    def _completed(self, done: Any) -> None:
        """A terminate action completes: what does the leader list at this moment (before EC2 goes)?"""
        if done.transition == TERMINATING:
            self.at_completion[done.instance_id] = self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.sample()
            except Exception:
                log.debug("watcher sample failed", exc_info=True)

    def sample(self) -> Sample:
        at = time.time()
        s = self._ask(self._leader) if self._leader is not None else None
        if s is None:
            self._leader = swarm_view(self.lab)["leader"]
            s = self._ask(self._leader) if self._leader is not None else None
        s = s or Sample(at, None)
        self.samples.append(s)
        return s

    def _ask(self, machine: Any) -> Sample | None:
        if machine is None or machine.state != "running":
            return None
        at = time.time()
        ls = machine.node.docker("node", "ls", "--format", "{{json .}}", timeout=10)
        rows = _json_lines(ls.stdout) if ls.returncode == 0 else []
        if not any(n.get("Self") and n.get("ManagerStatus") == "Leader" for n in rows):
            return None
        tasks = None
        if self.service:
            ps = machine.node.docker(
                "service", "ps", self.service, "--filter", "desired-state=running", "--format", "{{json .}}",
                timeout=10,
            )  # fmt: skip
            if ps.returncode == 0:
                tasks = {}
                for t in _json_lines(ps.stdout):
                    if str(t.get("CurrentState", "")).startswith("Running"):
                        tasks[t.get("Node", "")] = tasks.get(t.get("Node", ""), 0) + 1
        return Sample(at, machine.instance_id, {n["ID"].rstrip(" *"): n for n in rows}, tasks)

    # -- questions about what was seen ------------------------------------------------------------
    def answered(self, since: float = 0.0, until: float = float("inf")) -> list[Sample]:
        return [s for s in self.samples if s.leader is not None and since <= s.at <= until]

    def listed_at_completion(self, instance_id: str, node_id: str) -> bool | None:
        """Whether the leader still listed the node when the instance's terminate action completed
        (None: no leader answered then)."""
        s = self.at_completion.get(instance_id)
        return None if s is None or s.leader is None else node_id in s.nodes

    def last_seen(self, node_id: str) -> float | None:
        seen = [s.at for s in self.answered() if node_id in s.nodes]
        return max(seen) if seen else None

    def gone_at(self, node_id: str) -> float | None:
        """The first sample, after the last one listing the node, that does not list it."""
        last = self.last_seen(node_id) or 0.0
        after = [s.at for s in self.answered(since=last) if node_id not in s.nodes]
        return min(after) if after else None

    def drained_empty(self, node_id: str, before: float) -> Sample | None:
        """A sample before ``before`` listing the node as Drain with no running task on it."""
        for s in self.answered(until=before):
            row = s.node(node_id)
            if row is not None and row.get("Availability") == "Drain" and s.tasks_on(node_id) == 0:
                return s
        return None

    def longest_leaderless(self, since: float, until: float) -> float:
        worst, start = 0.0, None
        for s in [x for x in self.samples if since <= x.at <= until]:
            if s.leader is None:
                start = s.at if start is None else start
                worst = max(worst, s.at - start)
            else:
                if start is not None:
                    worst = max(worst, s.at - start)
                start = None
        return worst


# -- helpers ------------------------------------------------------------------------------------------------
def _node_id(lab: Lab, instance_id: str) -> str:
    """The swarm node id of an instance: its swarmkeeper:node-id tag (set once it joined)."""
    out = lab.client("ec2").describe_instances(InstanceIds=[instance_id])
    for res in out.get("Reservations", []):
        for inst in res.get("Instances", []):
            for tag in inst.get("Tags") or []:
                if tag["Key"] == "swarmkeeper:node-id":
                    return tag["Value"]
    return ""


def _terminate_action(lab: Lab, instance_id: str) -> Any:
    assert lab.autoscaling is not None
    return next(
        (
            c
            for c in lab.autoscaling.completed
            if c.instance_id == instance_id and c.transition == TERMINATING
        ),
        None,
    )


def _events(lab: Lab, instance_id: str | None, detail_type: str) -> list[float]:
    """When swarmkeeper published ``detail_type`` for the instance (any instance: None)."""
    return [
        at
        for at, e in lab.operator_events()
        if e.get("detail-type") == detail_type
        and (instance_id is None or (e.get("detail") or {}).get("instanceId") == instance_id)
    ]


def _running_tasks(leader: Any) -> dict[str, int]:
    ps = leader.node.docker(
        "service", "ps", SERVICE, "--filter", "desired-state=running", "--format", "{{json .}}", timeout=20
    )
    out: dict[str, int] = {}
    for t in _json_lines(ps.stdout):
        if str(t.get("CurrentState", "")).startswith("Running"):
            out[t["Node"]] = out.get(t["Node"], 0) + 1
    return out


def _service_on_workers(lab: Lab, r: Report, replicas: int, timeout: float) -> bool:
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
        lambda: (t := _running_tasks(leader)) and sum(t.values()) == replicas and set(t) == workers and t,
        timeout,
        every=2.0,
    )
    return r.check(f"{replicas} replicas running, on every worker", spread, str(spread))


def _replicas_back(lab: Lab, r: Report, replicas: int, gone_host: str, timeout: float) -> None:
    def full() -> dict | None:
        leader = swarm_view(lab)["leader"]
        t = _running_tasks(leader) if leader else {}
        return t if sum(t.values()) == replicas and gone_host not in t else None

    back = settle(full, timeout, every=2.0)
    r.check(
        f"the service is back to {replicas} running replicas, none on the node that left", back, str(back)
    )


def _victim(lab: Lab) -> tuple[str, str, str]:
    """A worker that runs tasks of the service: (instance id, node id, hostname)."""
    assert lab.fleet is not None
    leader = swarm_view(lab)["leader"]
    tasks = _running_tasks(leader) if leader else {}
    workers = sorted(
        lab.instances("worker"),
        key=lambda i: -tasks.get(lab.fleet.machines[i].hostname, 0) if lab.fleet else 0,
    )
    iid = workers[0]
    return iid, _node_id(lab, iid), lab.fleet.machines[iid].hostname


def _joined(lab: Lab, r: Report, managers: int, workers: int, timeout: float, gone: list[str]) -> dict:
    view = _wait_swarm(lab, managers, workers, timeout)
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


# -- scenarios ----------------------------------------------------------------------------------------------
def scale_in(lab: Lab, r: Report, scale: float) -> None:
    _bootstrap(lab, r, 300 * scale)
    if not r.ok or not _service_on_workers(lab, r, 6, 90 * scale):
        r.notes.append("bootstrap or the service failed: the rest of the scenario was not run")
        return
    with Watcher(lab, SERVICE) as w:
        before = set(lab.instances("worker"))
        lab.set_desired("worker", 2)
        leaving = [i for i in before if i not in lab.instances("worker")]
        if not r.check("Auto Scaling picked one worker to terminate", len(leaving) == 1, str(leaving)):
            return
        iid = leaving[0]
        node_id = _node_id(lab, iid)
        ran = w.samples[0].tasks_on(node_id)
        r.check("the chosen worker ran tasks of the service", (ran or 0) > 0, f"{ran} tasks on {node_id}")
        r.check(
            "the worker waits in Terminating:Wait (terminate hook)",
            iid in lab.instances("worker", ("Terminating:Wait",)),
        )
        done = settle(lambda: _terminate_action(lab, iid), 150 * scale)
        w.sample()
    if not r.check("the terminate lifecycle action completed", done, str(lab.autoscaling.snapshot())):
        return
    r.check(
        "... with CONTINUE, by the control plane (not by timeout)",
        done.result == "CONTINUE" and done.how == "complete",
        f"{done}",
    )
    draining, removed = _events(lab, iid, "Node Draining"), _events(lab, iid, "Node Removed")
    r.check(
        "operators' timeline: Node Draining, then Node Removed",
        draining and removed and min(draining) <= min(removed),
        f"draining {draining}, removed {removed}",
    )
    empty = w.drained_empty(node_id, before=done.at)
    r.check(
        "its tasks moved first: the node was Drain with no running task while still in the swarm",
        empty is not None,
        f"at +{empty.at - lab.started:.1f}s" if empty else "never seen drained and empty",
    )
    last = w.last_seen(node_id)
    r.check(
        "the node was gone from `docker node ls` when the terminate action's CONTINUE came",
        w.listed_at_completion(iid, node_id) is False and last is not None and last < done.at,
        f"last listed +{(last or 0) - lab.started:.1f}s, CONTINUE +{done.at - lab.started:.1f}s, "
        f"listed at CONTINUE: {w.listed_at_completion(iid, node_id)}",
    )
    _joined(lab, r, 3, 2, 90 * scale, [iid])
    _replicas_back(lab, r, 6, lab.fleet.machines[iid].hostname if lab.fleet else "", 60 * scale)


def crash(lab: Lab, r: Report, scale: float) -> None:
    _bootstrap(lab, r, 300 * scale)
    if not r.ok or not _service_on_workers(lab, r, 3, 90 * scale):
        r.notes.append("bootstrap or the service failed: the rest of the scenario was not run")
        return
    assert lab.fleet is not None
    iid, node_id, host = _victim(lab)
    with Watcher(lab, SERVICE, every=0.5) as w:
        lab.fleet.machines[iid].node.kill_dockerd()
        lab.client("ec2").terminate_instances(InstanceIds=[iid])
        terminated = time.time()
        settle(lambda: w.gone_at(node_id), 60 * scale, every=0.5)
    gone = w.gone_at(node_id)
    bound = 15 * scale
    r.check(
        f"the dead node is gone from the swarm within {bound:.0f}s of the termination",
        gone is not None and gone - terminated <= bound,
        f"after {gone - terminated:.1f}s" if gone else "still listed",
    )
    r.check(
        "Dead Node Removed published",
        settle(lambda: _events(lab, iid, "Dead Node Removed"), 30 * scale, every=0.5),
    )
    _replicas_back(lab, r, 3, host, 60 * scale)
    _joined(lab, r, 3, 3, 150 * scale, [iid])


def spot(lab: Lab, r: Report, scale: float) -> None:
    _bootstrap(lab, r, 300 * scale)
    if not r.ok or not _service_on_workers(lab, r, 3, 90 * scale):
        r.notes.append("bootstrap or the service failed: the rest of the scenario was not run")
        return
    assert lab.fleet is not None and lab.factory is not None
    iid, node_id, host = _victim(lab)
    with Watcher(lab, SERVICE) as w:
        warned = time.time()
        lab.emit(lab.factory.spot_interruption(iid))
        # Two minutes later EC2 takes the instance back; compressed: as soon as the node is out.
        out = settle(lambda: w.gone_at(node_id) and _events(lab, iid, "Node Removed"), 100 * scale)
        lab.client("ec2").terminate_instances(InstanceIds=[iid])
        terminated = time.time()
        w.sample()
    draining = _events(lab, iid, "Node Draining")
    r.check("Node Draining published on the warning", draining and min(draining) >= warned, str(draining))
    r.check(
        "Node Removed published before the instance was terminated",
        out and max(_events(lab, iid, "Node Removed")) < terminated,
    )
    empty = w.drained_empty(node_id, before=terminated)
    r.check(
        "the node was Drain with no running task before the termination",
        empty is not None,
        f"at +{empty.at - warned:.1f}s after the warning" if empty else "never seen drained and empty",
    )
    gone = w.gone_at(node_id)
    r.check(
        "the node left the swarm before the termination",
        gone is not None and gone < terminated,
        f"gone {gone - warned:.1f}s after the warning" if gone else "still listed",
    )
    r.check(
        "no Dead Node Removed afterwards (nothing was left to clean up)",
        settle(lambda: lab.wait_quiet(5), 30 * scale) and not _events(lab, iid, "Dead Node Removed"),
    )
    _replicas_back(lab, r, 3, host, 60 * scale)
    _joined(lab, r, 3, 3, 150 * scale, [iid])


def _roll_one(lab: Lab, r: Report, w: Watcher, n: int, iid: str, scale: float) -> bool:
    """An instance refresh step (max batch 1, min in service 3): one more manager, then one old out."""
    node_id = _node_id(lab, iid)
    lab.set_desired("manager", 4)

    def four() -> bool:
        return len(lab.instances("manager")) == 4 and w.samples[-1].managers() == (4, 4)

    joined = settle(four, 120 * scale)
    if not r.check(f"rollover {n}/3: a fourth manager joined", joined, f"{w.samples[-1].managers()}"):
        return False
    lab.client("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=iid, ShouldDecrementDesiredCapacity=True
    )

    def replaced() -> bool:
        s = w.samples[-1]
        return (
            _terminate_action(lab, iid) is not None
            and node_id not in s.nodes
            and s.managers() == (3, 3)
            and len(lab.instances("manager")) == 3
        )

    done = settle(replaced, 150 * scale)
    if not r.check(
        f"rollover {n}/3: {iid} demoted, removed and terminated; 3 managers reachable",
        done,
        f"{w.samples[-1].managers()} {lab.autoscaling.snapshot() if lab.autoscaling else ''}",
    ):
        return False
    action = _terminate_action(lab, iid)
    return r.check(
        f"rollover {n}/3: the old manager was out of `docker node ls` when its CONTINUE came",
        action.how == "complete" and w.listed_at_completion(iid, node_id) is False,
        f"{action}; listed at CONTINUE: {w.listed_at_completion(iid, node_id)}",
    )


def manager_rollover(lab: Lab, r: Report, scale: float) -> None:
    _bootstrap(lab, r, 300 * scale)
    if not r.ok:
        r.notes.append("bootstrap failed: the rest of the scenario was not run")
        return
    old = sorted(lab.instances("manager"))
    started = time.time()
    with Watcher(lab) as w:
        for n, iid in enumerate(old, 1):
            if not _roll_one(lab, r, w, n, iid, scale):
                break
        ended = time.time()
    answered = w.answered(started, ended)
    bad = [
        (round(s.at - started, 1), s.managers())
        for s in answered
        if s.managers()[1] < s.managers()[0] // 2 + 1
    ]
    r.check(
        "quorum held throughout: reachable managers >= majority in every sample",
        answered and not bad,
        f"{len(answered)} samples; below majority: {bad[:5]}",
    )
    leaderless = w.longest_leaderless(started, ended)
    r.check(
        "never without a leader for long (only elections after a leader's demotion)",
        leaderless <= 10,
        f"longest stretch without a leader answering: {leaderless:.1f}s",
    )
    if not r.ok:
        return
    view = _joined(lab, r, 3, 3, 60 * scale, old)
    managers = [n for n in view["nodes"] if n.get("ManagerStatus") in ("Leader", "Reachable")]
    new = set(lab.instances("manager"))
    r.check(
        "three healthy managers on three new instances",
        len(managers) == 3 and len(new) == 3 and not new & set(old),
        f"old {old}, now {sorted(new)}",
    )


def alarm(lab: Lab, r: Report, scale: float) -> None:
    # What the stack sets in production is 600 s; the lab does not wait ten minutes.
    lab.set_function_env({"RECONCILE_DOWN_GRACE_SECONDS": str(DOWN_GRACE_SECONDS)})
    _bootstrap(lab, r, 300 * scale)
    if not r.ok or not _service_on_workers(lab, r, 3, 90 * scale):
        r.notes.append("bootstrap or the service failed: the rest of the scenario was not run")
        return
    assert lab.fleet is not None and lab.alarms is not None and lab.autoscaling is not None
    iid, node_id, host = _victim(lab)
    name = next(n for n in lab.alarms.states if n.endswith("-nodes-down"))
    with Watcher(lab, every=1.0) as w:
        lab.fleet.machines[iid].node.kill_dockerd()
        killed = time.time()
        down = settle(
            lambda: (row := w.samples[-1].node(node_id)) is not None and row.get("Status") == "Down",
            90 * scale,
        )
        r.check(
            "the leader sees the node Down (its instance still runs)",
            down,
            f"after {time.time() - killed:.0f}s",
        )
        lab.fire_schedule("reconcile")  # schedules fire on demand in the lab
        fired = settle(
            lambda: next(
                (t for t, a, _, new in lab.alarms.transitions if a == name and new == "ALARM"), None
            ),
            60 * scale,
        )
        r.check(f"{name} went to ALARM", fired, str(lab.alarms.transitions))
        raised = settle(lambda: _events(lab, None, "Alarm Raised"), 30 * scale)
        r.check("Alarm Raised published", raised)

        def unhealthy() -> bool:
            snap = dict(
                (i, (state, health))
                for i, state, health in lab.autoscaling.snapshot().get(lab.group_name("worker"), [])
            )
            state, health = snap.get(iid, ("gone", ""))
            return health == "Unhealthy" or state.startswith("Terminating") or state == "gone"

        # The alarm's own pass sees the node down for less than the grace; the next scheduled pass
        # (every reconcileMinutes in AWS, on demand here) finds it down past the grace and marks it.
        def marked_after_pass() -> bool:
            if unhealthy():
                return True
            lab.fire_schedule("reconcile")
            return bool(settle(unhealthy, 3, every=0.5))

        marked = settle(marked_after_pass, 60 * scale, every=0.5)
        r.check(
            "a reconcile pass past the down grace marked the instance Unhealthy",
            marked,
            str(lab.autoscaling.snapshot()),
        )
        done = settle(lambda: _terminate_action(lab, iid), 120 * scale)
        w.sample()
    r.check(
        "replaced through its group by the graceful path (terminate hook, CONTINUE by the control plane)",
        done is not None and done.how == "complete" and done.result == "CONTINUE",
        str(done),
    )
    r.check("Node Removed published (not a dead-node cleanup)", _events(lab, iid, "Node Removed"))
    r.check(
        "the down node was out of `docker node ls` when the terminate action's CONTINUE came",
        w.listed_at_completion(iid, node_id) is False,
        f"listed at CONTINUE: {w.listed_at_completion(iid, node_id)}",
    )
    _replicas_back(lab, r, 3, host, 60 * scale)
    _joined(lab, r, 3, 3, 150 * scale, [iid])
