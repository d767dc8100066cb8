"""The scenario of a leave that overlaps a join: a worker is terminated right after ``docker swarm join``
returned on it, while the bootstrap-node's status is still on its way (the lab's agent holds it back,
``SsmAgents.hold``), once by Auto Scaling (the terminate hook holds the instance) and once by hand (no
hook, the instance dies). Checked on the real swarm: the node that joined is gone before the terminate
action's CONTINUE, or within seconds of the late status; the timeline has Node Join Started then
Node Join Cancelled for it, and never Node Joined."""

from __future__ import annotations

import time
from collections.abc import Callable

from lab.cluster import Lab, settle
from lab.holds import Hold
from lab.scenarios.report import Report
from lab.scenarios.swarm import back_to_size, form_swarm, node_id_of, published, terminate_action
from lab.scenarios.watcher import Watcher

BOOTSTRAP = "bootstrap-node"
LIVE = ("Pending", "Pending:Wait", "InService")
JOIN_ENDS = ("Node Joined", "Node Join Failed", "Node Join Cancelled")
HELD_SECONDS = 5.0  # how long the status stays held after the termination
REMOVED_WITHIN = 15.0  # seconds from the late status to the node out of the swarm (before `scale`)


def terminate_joining(lab: Lab, r: Report, scale: float) -> None:
    form_swarm(lab, r, 300 * scale)
    if not r.ok:
        r.notes.append("bootstrap failed: the rest of the scenario was not run")
        return
    assert lab.agents is not None and lab.fleet is not None
    for graceful in (True, False):
        hold = lab.agents.hold(BOOTSTRAP, _first_new(set(lab.instances("worker", LIVE))))
        lab.set_desired("worker", 4)
        if not _overlap(lab, r, hold, graceful, scale):
            return
        # Scaled in, the group is back to 3 workers; the instance that died is replaced (4 then).
        back_to_size(lab, r, 3, 3 if graceful else 4, 150 * scale, [hold.held[0].instance_id])


def _first_new(known: set[str]) -> Callable[[str], bool]:
    """Selects the first instance not in ``known`` that asks, and only that one."""
    chosen: list[str] = []

    def which(instance_id: str) -> bool:
        if instance_id in known:
            return False
        if not chosen:
            chosen.append(instance_id)
        return instance_id == chosen[0]

    return which


def _overlap(lab: Lab, r: Report, hold: Hold, graceful: bool, scale: float) -> bool:
    how = "Auto Scaling" if graceful else "by hand"
    caught = settle(lambda: hold.held, 240 * scale, every=0.5)
    if not r.check(
        f"[{how}] a new worker ran bootstrap-node; its status is held",
        caught,
        str(hold),
    ):
        hold.release()
        return False
    result = caught[0]
    iid, node_id = result.instance_id, result.node_id
    r.check(
        f"[{how}] `docker swarm join` returned on it: bootstrap-node succeeded with a node id",
        result.status == "Success" and bool(node_id),
        f"{result.status} {node_id or '(no node id)'}",
    )
    with Watcher(lab, every=0.5) as w:
        listed = settle(lambda: w.samples[-1].node(node_id), 30 * scale, every=0.5)
        r.check(f"[{how}] its node {node_id} is in the swarm", listed, str(listed))
        if graceful:
            lab.client("autoscaling").terminate_instance_in_auto_scaling_group(
                InstanceId=iid, ShouldDecrementDesiredCapacity=True
            )
        else:
            assert lab.fleet is not None
            lab.fleet.machines[iid].node.kill_dockerd()
            lab.client("ec2").terminate_instances(InstanceIds=[iid])
        terminated = time.time()
        cancelled = settle(lambda: published(lab, iid, "Node Join Cancelled"), 30 * scale, every=0.5)
        r.check(
            f"[{how}] Node Join Cancelled published when the instance left",
            cancelled,
            str(cancelled),
        )
        time.sleep(HELD_SECONDS)
        if graceful:
            r.check(
                f"[{how}] the terminate action waits for the bootstrap-node's result",
                terminate_action(lab, iid) is None,
                str(terminate_action(lab, iid)),
            )
        released = hold.release()
        gone = settle(lambda: w.gone_at(node_id), 120 * scale, every=0.5)
        done = settle(lambda: terminate_action(lab, iid), 120 * scale) if graceful else None
        w.sample()
    seconds = f"{gone - released:.1f}s after the late status" if gone else "still listed"
    r.notes.append(f"[{how}] node {node_id} out of the swarm {seconds} (terminated {terminated:.0f})")
    if graceful:
        r.check(
            f"[{how}] the terminate action completed with CONTINUE, by the control plane",
            done and done.result == "CONTINUE" and done.how == "complete",
            str(done),
        )
        r.check(
            f"[{how}] the node was gone from `docker node ls` when CONTINUE came",
            done and w.listed_at_completion(iid, node_id) is False,
            f"listed at CONTINUE: {w.listed_at_completion(iid, node_id)}; {seconds}",
        )
    else:
        bound = REMOVED_WITHIN * scale
        r.check(
            f"[{how}] the node was gone from the swarm within {bound:.0f}s of the late status",
            gone is not None and gone - released <= bound,
            seconds,
        )
    _timeline(lab, r, how, iid, scale)
    return r.ok


def _timeline(lab: Lab, r: Report, how: str, iid: str, scale: float) -> None:
    def removal() -> list[float]:
        return published(lab, iid, "Node Removed") + published(lab, iid, "Dead Node Removed")

    removed = settle(removal, 30 * scale, every=0.5)  # published once remove-node's status is in
    started = published(lab, iid, "Node Join Started")
    ends = {kind: published(lab, iid, kind) for kind in JOIN_ENDS}
    r.check(
        f"[{how}] timeline: Node Join Started, then Node Join Cancelled, then the node's removal",
        len(started) == 1
        and len(ends["Node Join Cancelled"]) == 1
        and started[0] <= ends["Node Join Cancelled"][0]
        and bool(removed),
        f"started {started}, ends {ends}, removed {removed}",
    )
    r.check(
        f"[{how}] no Node Joined and no Node Join Failed for it, no node-id tag",
        not ends["Node Joined"] and not ends["Node Join Failed"] and not node_id_of(lab, iid),
        str(ends),
    )
