"""Scenarios of the join side: the first swarm and a service across it, a burst of workers, a token
rotation. Each checks the swarm itself with ``docker`` on the nodes; every wait is bounded."""

from __future__ import annotations

import json

from lab.cluster import Lab, settle
from lab.scenarios.operator import operator_view
from lab.scenarios.operator_acts import operator_actions
from lab.scenarios.report import Report
from lab.scenarios.swarm import SERVICE_IMAGE, form_swarm, free_ip, json_lines, wait_swarm


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
        "--placement-pref",  # the zone label verify-node set
        "spread=node.labels.swarmkeeper.az",
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
        tasks = [t for t in json_lines(ps.stdout) if t.get("CurrentState", "").startswith("Running")]
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


def expected_labels(lab: Lab) -> dict[str, dict[str, str]]:
    """node id -> the labels its instance should carry, from EC2 and the instance's group."""
    expected = {}
    for role in ("manager", "worker"):
        ids = lab.instances(role)
        if not ids:
            continue
        out = lab.client("ec2").describe_instances(InstanceIds=ids)
        for inst in (i for res in out["Reservations"] for i in res["Instances"]):
            tags = {t["Key"]: t["Value"] for t in inst.get("Tags") or []}
            expected[tags.get("swarmkeeper:node-id", inst["InstanceId"])] = {
                "swarmkeeper.az": inst["Placement"]["AvailabilityZone"],
                "swarmkeeper.instance-type": inst["InstanceType"],
                "swarmkeeper.lifecycle": "spot" if inst.get("InstanceLifecycle") == "spot" else "on-demand",
                "swarmkeeper.role": role,
            }
    return expected


def check_labels(lab: Lab, r: Report, view: dict) -> None:
    """Every node, as the leader sees it, carries the four labels of its instance."""
    leader = view["leader"]
    expected = expected_labels(lab)
    seen = {}
    if leader is not None and expected:
        out = leader.node.docker("node", "inspect", "-f", "{{.ID}} {{json .Spec.Labels}}", *expected)
        seen = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in out.stdout.splitlines()}
    wrong = {node: seen.get(node) for node, labels in expected.items() if seen.get(node) != labels}
    zones = sorted({labels["swarmkeeper.az"] for labels in expected.values()})
    r.check(
        f"every node labelled with its instance's zone, type, lifecycle and role ({len(expected)} nodes)",
        bool(expected) and not wrong,
        f"not as expected: {wrong}" if wrong else f"zones {zones}",
    )


def bootstrap(lab: Lab, r: Report, scale: float) -> None:
    view = form_swarm(lab, r, 300 * scale)
    if not r.ok:
        r.check("3-replica service answers across nodes", False, "not tried: the swarm did not form")
        return
    check_labels(lab, r, view)
    _service(lab, r, view)
    operator_view(lab, r, managers=3, workers=3, scale=scale)
    operator_actions(lab, r, scale)


def burst(lab: Lab, r: Report, scale: float) -> None:
    view = form_swarm(lab, r, 300 * scale)
    if not r.ok:
        r.notes.append("bootstrap failed: the rest of the scenario was not run")
        return
    lab.set_desired("worker", 20)
    view = wait_swarm(lab, 3, 20, 420 * scale)
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
    view = form_swarm(lab, r, 300 * scale)
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
    view = wait_swarm(lab, 3, 4, 300 * scale)
    r.check(
        "a node that joins afterwards joins (with the new token)",
        view["leader"] is not None and sum(1 for n in view["nodes"] if n.get("Status") == "Ready") == 7,
    )
    # The old token is refused: a fresh daemon outside the swarm tries it.
    assert lab.network is not None
    leader_ip = view["leader"].ip if view["leader"] else ""
    probe = lab.network.add_node("probe", free_ip(lab), "probe-old-token")
    try:
        probe.start_dockerd(wait=True)
        out = probe.docker("swarm", "join", "--token", old, f"{leader_ip}:2377", timeout=60)
        r.check("the old token is refused", out.returncode != 0, (out.stderr or out.stdout).strip()[:200])
    finally:
        probe.destroy()
