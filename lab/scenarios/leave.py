"""Scenarios of the leave flow: scale-in, crash, spot, manager-rollover, alarm.

Each drives the stack the way AWS would (desired capacity, EC2 TerminateInstances, a Spot warning, an
instance refresh, a dead daemon) and checks the real swarm: a ``Watcher`` samples the leader's
``docker node ls`` (and the service's tasks) in the background, so the checks can say what the swarm
looked like *before* an instance went or a lifecycle action completed. Every wait is bounded and
scaled by ``scale``.
"""

from __future__ import annotations

import time

from lab.cluster import Lab, settle
from lab.scenarios.report import Report
from lab.scenarios.swarm import (
    SERVICE,
    back_to_size,
    form_swarm,
    node_id_of,
    published,
    replicas_back,
    service_on_workers,
    terminate_action,
    victim,
)
from lab.scenarios.watcher import Watcher

DOWN_GRACE_SECONDS = 1  # RECONCILE_DOWN_GRACE_SECONDS for the alarm scenario (default 600)


# -- scenarios ----------------------------------------------------------------------------------------------
def scale_in(lab: Lab, r: Report, scale: float) -> None:
    form_swarm(lab, r, 300 * scale)
    if not r.ok or not service_on_workers(lab, r, 6, 90 * scale):
        r.notes.append("bootstrap or the service failed: the rest of the scenario was not run")
        return
    with Watcher(lab, SERVICE) as w:
        before = set(lab.instances("worker"))
        lab.set_desired("worker", 2)
        leaving = [i for i in before if i not in lab.instances("worker")]
        if not r.check("Auto Scaling picked one worker to terminate", len(leaving) == 1, str(leaving)):
            return
        iid = leaving[0]
        node_id = node_id_of(lab, iid)
        ran = w.samples[0].tasks_on(node_id)
        r.check("the chosen worker ran tasks of the service", (ran or 0) > 0, f"{ran} tasks on {node_id}")
        r.check(
            "the worker waits in Terminating:Wait (terminate hook)",
            iid in lab.instances("worker", ("Terminating:Wait",)),
        )
        done = settle(lambda: terminate_action(lab, iid), 150 * scale)
        w.sample()
    if not r.check("the terminate lifecycle action completed", done, str(lab.autoscaling.snapshot())):
        return
    r.check(
        "... with CONTINUE, by the control plane (not by timeout)",
        done.result == "CONTINUE" and done.how == "complete",
        f"{done}",
    )
    draining, removed = published(lab, iid, "Node Draining"), published(lab, iid, "Node Removed")
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
    back_to_size(lab, r, 3, 2, 90 * scale, [iid])
    replicas_back(lab, r, 6, lab.fleet.machines[iid].hostname if lab.fleet else "", 60 * scale)


def crash(lab: Lab, r: Report, scale: float) -> None:
    form_swarm(lab, r, 300 * scale)
    if not r.ok or not service_on_workers(lab, r, 3, 90 * scale):
        r.notes.append("bootstrap or the service failed: the rest of the scenario was not run")
        return
    assert lab.fleet is not None
    iid, node_id, host = victim(lab)
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
        settle(lambda: published(lab, iid, "Dead Node Removed"), 30 * scale, every=0.5),
    )
    replicas_back(lab, r, 3, host, 60 * scale)
    back_to_size(lab, r, 3, 3, 150 * scale, [iid])


def spot(lab: Lab, r: Report, scale: float) -> None:
    form_swarm(lab, r, 300 * scale)
    if not r.ok or not service_on_workers(lab, r, 3, 90 * scale):
        r.notes.append("bootstrap or the service failed: the rest of the scenario was not run")
        return
    assert lab.fleet is not None and lab.factory is not None
    iid, node_id, host = victim(lab)
    with Watcher(lab, SERVICE) as w:
        warned = time.time()
        lab.emit(lab.factory.spot_interruption(iid))
        # Two minutes later EC2 takes the instance back; compressed: as soon as the node is out.
        out = settle(lambda: w.gone_at(node_id) and published(lab, iid, "Node Removed"), 100 * scale)
        lab.client("ec2").terminate_instances(InstanceIds=[iid])
        terminated = time.time()
        w.sample()
    draining = published(lab, iid, "Node Draining")
    r.check("Node Draining published on the warning", draining and min(draining) >= warned, str(draining))
    r.check(
        "Node Removed published before the instance was terminated",
        out and max(published(lab, iid, "Node Removed")) < terminated,
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
        settle(lambda: lab.wait_quiet(5), 30 * scale) and not published(lab, iid, "Dead Node Removed"),
    )
    replicas_back(lab, r, 3, host, 60 * scale)
    back_to_size(lab, r, 3, 3, 150 * scale, [iid])


def _roll_one(lab: Lab, r: Report, w: Watcher, n: int, iid: str, scale: float) -> bool:
    """An instance refresh step (max batch 1, min in service 3): one more manager, then one old out."""
    node_id = node_id_of(lab, iid)
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
            terminate_action(lab, iid) is not None
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
    action = terminate_action(lab, iid)
    return r.check(
        f"rollover {n}/3: the old manager was out of `docker node ls` when its CONTINUE came",
        action.how == "complete" and w.listed_at_completion(iid, node_id) is False,
        f"{action}; listed at CONTINUE: {w.listed_at_completion(iid, node_id)}",
    )


def manager_rollover(lab: Lab, r: Report, scale: float) -> None:
    form_swarm(lab, r, 300 * scale)
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
    view = back_to_size(lab, r, 3, 3, 60 * scale, old)
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
    form_swarm(lab, r, 300 * scale)
    if not r.ok or not service_on_workers(lab, r, 3, 90 * scale):
        r.notes.append("bootstrap or the service failed: the rest of the scenario was not run")
        return
    assert lab.fleet is not None and lab.alarms is not None and lab.autoscaling is not None
    iid, node_id, host = victim(lab)
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
        raised = settle(lambda: published(lab, None, "Alarm Raised"), 30 * scale)
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
        done = settle(lambda: terminate_action(lab, iid), 120 * scale)
        w.sample()
    r.check(
        "replaced through its group by the graceful path (terminate hook, CONTINUE by the control plane)",
        done is not None and done.how == "complete" and done.result == "CONTINUE",
        str(done),
    )
    r.check("Node Removed published (not a dead-node cleanup)", published(lab, iid, "Node Removed"))
    r.check(
        "the down node was out of `docker node ls` when the terminate action's CONTINUE came",
        w.listed_at_completion(iid, node_id) is False,
        f"listed at CONTINUE: {w.listed_at_completion(iid, node_id)}",
    )
    replicas_back(lab, r, 3, host, 60 * scale)
    back_to_size(lab, r, 3, 3, 150 * scale, [iid])
