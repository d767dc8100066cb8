"""What an operator does to a lab cluster through the CLI's acting verbs, against the real swarm:
``swarmkeeper reconcile`` (a pass runs), ``rotate-tokens`` (the swarm's join tokens change, and the
Parameter Store values with them) and ``drain`` of a worker (Auto Scaling holds it in
Terminating:Wait while the control plane drains and removes its node). The verbs reach the control
plane's functions through the lab's Lambda Invoke (lab/invoke.py) and Auto Scaling through the
embedded region. Their output goes into the report's notes; join tokens never do."""

from __future__ import annotations

import subprocess
import threading

from lab.autoscaling import TERMINATING
from lab.cluster import Lab
from lab.scenarios.operator import swarmkeeper
from lab.scenarios.report import Report
from lab.scenarios.swarm import swarm_view
from swarmkeeper.domain.names import ClusterNames

NODE_ID_TAG = "swarmkeeper:node-id"


def _shown(r: Report, args: tuple[str, ...], answer: subprocess.CompletedProcess[str]) -> None:
    """The command, its progress (stderr) and its answer (stdout), as a terminal shows them."""
    shown = "\n".join(part.rstrip() for part in (answer.stderr, answer.stdout) if part.strip())
    r.notes.append(f"$ swarmkeeper {' '.join(args)}   (exit {answer.returncode})\n{shown}")


def _tokens(lab: Lab, names: ClusterNames) -> dict[str, tuple[str, str]]:
    """Each role's join token as a manager of the swarm says it, and as Parameter Store holds it."""
    leader = swarm_view(lab)["leader"]
    ssm = lab.client("ssm")
    tokens = {}
    for role, parameter in (
        ("worker", names.worker_token_parameter),
        ("manager", names.manager_token_parameter),
    ):
        asked = leader.node.docker("swarm", "join-token", "-q", role, timeout=20) if leader else None
        swarm = asked.stdout.strip() if asked and asked.returncode == 0 else ""
        stored = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
        tokens[role] = (swarm, stored)
    return tokens


def _swarm_node_ids(lab: Lab) -> set[str]:
    leader = swarm_view(lab)["leader"]
    if leader is None:
        return set()
    listed = leader.node.docker("node", "ls", "--format", "{{.ID}}", timeout=15)
    return set(listed.stdout.split())


def _node_id(lab: Lab, instance_id: str) -> str:
    reservations = lab.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    tags = {t["Key"]: t["Value"] for t in reservations[0]["Instances"][0].get("Tags", [])}
    return tags.get(NODE_ID_TAG, "")


def _reconcile(lab: Lab, r: Report, scale: float) -> None:
    args = ("reconcile",)
    answer = swarmkeeper(lab, *args, timeout=180 * scale)
    r.check(
        "swarmkeeper reconcile: a pass ran to its new swarm view (exit 0)",
        answer.returncode == 0 and "pass done at" in answer.stdout,
        (answer.stdout + answer.stderr).strip()[-300:],
    )
    _shown(r, args, answer)


def _rotate_tokens(lab: Lab, r: Report, names: ClusterNames, scale: float) -> None:
    before = _tokens(lab, names)
    args = ("rotate-tokens",)
    answer = swarmkeeper(lab, *args, timeout=180 * scale)
    after = _tokens(lab, names)
    r.check("swarmkeeper rotate-tokens: exit 0", answer.returncode == 0, answer.stderr.strip()[-300:])
    changed = all(after[role][0] and after[role][0] != before[role][0] for role in before)
    r.check("swarmkeeper rotate-tokens: `docker swarm join-token -q` changed, worker and manager", changed)
    r.check(
        "swarmkeeper rotate-tokens: Parameter Store holds the swarm's new tokens",
        all(swarm == stored for swarm, stored in after.values()),
    )
    secrets = {token for pair in (*before.values(), *after.values()) for token in pair if token}
    printed = answer.stdout + answer.stderr
    r.check("swarmkeeper rotate-tokens: no join token in its output", not any(t in printed for t in secrets))
    _shown(r, args, answer)


def _watch_lifecycle(lab: Lab, instance_id: str, stop: threading.Event, seen: list[str]) -> None:
    autoscaling = lab.client("autoscaling")
    while not stop.wait(0.5):
        found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
        state = found[0]["LifecycleState"] if found else "(not in the group)"
        if not seen or seen[-1] != state:
            seen.append(state)


def _drain(lab: Lab, r: Report, scale: float) -> None:
    worker = sorted(lab.instances("worker"))[0]
    node = _node_id(lab, worker)
    listed = node in _swarm_node_ids(lab)
    args = ("drain", worker, "--decrement")
    seen: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_lifecycle, args=(lab, worker, stop, seen), daemon=True)
    watcher.start()
    try:
        answer = swarmkeeper(lab, *args, timeout=300 * scale)
    finally:
        stop.set()
        watcher.join(timeout=5)
    r.check(
        "swarmkeeper drain: the worker drained and removed (exit 0)",
        answer.returncode == 0 and "drained and removed from the swarm" in answer.stdout,
        (answer.stdout + answer.stderr).strip()[-300:],
    )
    r.check(
        "swarmkeeper drain: Auto Scaling held the instance in Terminating:Wait for the leave",
        "Terminating:Wait" in seen,
        f"lifecycle states seen: {seen}",
    )
    terminate = [
        c
        for c in (lab.autoscaling.completed if lab.autoscaling else [])
        if c.instance_id == worker and c.transition == TERMINATING
    ]
    r.check(
        "swarmkeeper drain: the control plane completed the terminate action with CONTINUE",
        [(c.result, c.how) for c in terminate] == [("CONTINUE", "complete")],
        str([c.__dict__ for c in terminate]),
    )
    r.check(
        "swarmkeeper drain: the node is out of `docker node ls`",
        bool(node) and listed and node not in _swarm_node_ids(lab),
        f"node {node or '?'} listed before: {listed}",
    )
    _shown(r, args, answer)


def operator_actions(lab: Lab, r: Report, scale: float) -> None:
    """After operator_view: reconcile, rotate-tokens and drain of one worker, each checked on the swarm."""
    assert lab.stack is not None
    cluster = next(iter(lab.stack.functions.values())).environment["CLUSTER_NAME"]
    names = ClusterNames(cluster)
    _reconcile(lab, r, scale)
    _rotate_tokens(lab, r, names, scale)
    _drain(lab, r, scale)
