"""Scenario ``ingress``: traffic in through the load balancer, which follows the swarm's published ports.

A host-mode web service on every worker (busybox httpd; no IPVS here, so no routing mesh) publishes
one port; a reconcile pass gives it a listener, and a client namespace on the lab bridge reaches the
service through the load balancer's lab address (lab.forwarder). A second published port appears as
a second listener. A worker scaled in is deregistered (and waits out the deregistration delay) before
its terminate hook fires, while a bounded loop of requests runs: every request is counted and none
may fail. A port no longer published loses its listener. A UDP port published with the second one is
rejected, and announced once across the passes that follow (``Listener Rejected`` once per cause).
"""

from __future__ import annotations

import threading
import time

from lab.cluster import Lab, settle
from lab.scenarios.report import Report
from lab.scenarios.swarm import SERVICE_IMAGE, form_swarm, free_ip, published, swarm_view, terminate_action

WEB = "web_service"
FIRST_PORT, SECOND_PORT = 18080, 18081
MAX_REQUESTS = 400  # the loop during the scale-in stops here at the latest
# Docker 20.10 removes a published port by its target port, protocol and mode: the whole spec is given.
SECOND_SPEC = f"mode=host,published={SECOND_PORT},target=81"
UDP_PORT = 18082  # the load balancer forwards TCP only: rejected, with no listener
UDP_SPEC = f"mode=host,published={UDP_PORT},target=82,protocol=udp"
RECONCILE_EVERY = 8.0  # seconds between the scenario's reconcile passes (the schedule's, compressed)
# Each task answers with its own hostname (the task's container), so an answer says who served it.
# One container port per published port (two host-mode publications of one target port keep one).
SERVE = (
    "mkdir -p /tmp/www && hostname > /tmp/www/index.html && busybox httpd -p 81 -h /tmp/www"
    " && exec busybox httpd -f -p 80 -h /tmp/www"
)


def _listener_ports(lab: Lab) -> set[int]:
    arn = lab.forwarder.load_balancer_arn if lab.forwarder else ""
    found = lab.client("elbv2").describe_listeners(LoadBalancerArn=arn)["Listeners"] if arn else []
    return {int(item["Port"]) for item in found}


def _get(client: object, lab: Lab, port: int) -> bool:
    url = f"http://{lab.load_balancer_address}:{port}/"
    done = client.run(["curl", "-sf", "-m", "3", url], timeout=10)  # type: ignore[attr-defined]
    return done.returncode == 0 and bool(done.stdout.strip())


def _converge(lab: Lab, client: object, port: int, present: bool, timeout: float) -> float | None:
    """Seconds from the change to the listener being there (and answering) or gone, with a reconcile
    pass every RECONCILE_EVERY seconds as the schedule would run them; None: never."""
    started = time.monotonic()

    def settled() -> bool:
        listed = port in _listener_ports(lab) and port in (lab.forwarder.ports if lab.forwarder else [])
        if not present:
            return not listed and port not in _listener_ports(lab)
        return listed and _get(client, lab, port)

    while time.monotonic() - started < timeout:
        lab.fire_schedule("reconcile")
        if settle(settled, RECONCILE_EVERY, every=1.0):
            return time.monotonic() - started
    return None


def ingress(lab: Lab, r: Report, scale: float) -> None:
    if lab.forwarder is None:
        r.check("the stack has a load balancer the lab plays", False, "no load balancer in the template")
        return
    form_swarm(lab, r, 300 * scale)
    leader = swarm_view(lab)["leader"]
    if not r.ok or leader is None:
        r.notes.append("bootstrap failed: the rest of the scenario was not run")
        return
    made = leader.node.docker(
        "service", "create", "--detach", "--name", WEB, "--mode", "global",
        "--constraint", "node.role==worker", "--endpoint-mode", "dnsrr", "--stop-grace-period", "3s",
        "--publish", f"mode=host,published={FIRST_PORT},target=80",
        SERVICE_IMAGE, "sh", "-c", SERVE,
        timeout=60,
    )  # fmt: skip
    if not r.check(
        f"{WEB} created with a host-mode published port", made.returncode == 0, made.stderr.strip()
    ):
        return
    assert lab.network is not None
    client = lab.network.add_node("client", free_ip(lab), "client")
    try:
        _scenario(lab, r, scale, leader, client)
    finally:
        lab.network.remove_node("client")


def _scenario(lab: Lab, r: Report, scale: float, leader: object, client: object) -> None:
    took = _converge(lab, client, FIRST_PORT, True, 90 * scale)
    r.check(
        f"a client namespace reaches {WEB} through the load balancer at {lab.load_balancer_address}",
        took is not None,
        f"converged in {took:.1f}s" if took is not None else f"listeners {sorted(_listener_ports(lab))}",
    )
    if took is None:
        return
    r.notes.append(f"first listener: {took:.1f}s from the reconcile pass to an answer")
    created = settle(lambda: published(lab, None, "Listener Created"), 20 * scale)
    r.check("Listener Created on the operators' bus", created, str(created))

    added = leader.node.docker(  # type: ignore[attr-defined]
        "service",
        "update",
        "--detach",
        "--publish-add",
        SECOND_SPEC,
        "--publish-add",
        UDP_SPEC,
        WEB,
        timeout=60,
    )
    r.check("a second port and a UDP port published", added.returncode == 0, added.stderr.strip())
    took = _converge(lab, client, SECOND_PORT, True, 120 * scale)
    r.check(
        "the second published port appears as a second listener",
        took is not None and {FIRST_PORT, SECOND_PORT} <= _listener_ports(lab),
        f"converged in {took:.1f}s" if took is not None else f"listeners {sorted(_listener_ports(lab))}",
    )
    if took is None:
        return
    r.notes.append(f"second listener: {took:.1f}s from the reconcile pass to an answer")
    _scale_in(lab, r, scale, client)

    removed = leader.node.docker(  # type: ignore[attr-defined]
        "service", "update", "--detach", "--publish-rm", SECOND_SPEC, WEB, timeout=60
    )
    r.check("the second port unpublished", removed.returncode == 0, removed.stderr.strip())
    took = _converge(lab, client, SECOND_PORT, False, 120 * scale)
    r.check(
        "the unpublished port loses its listener (the first keeps its own)",
        took is not None and FIRST_PORT in _listener_ports(lab),
        f"in {took:.1f}s" if took is not None else f"listeners {sorted(_listener_ports(lab))}",
    )
    gone = settle(lambda: published(lab, None, "Listener Removed"), 20 * scale)
    r.check("Listener Removed on the operators' bus", gone, str(gone))
    # The passes that gave the second port its listener and took it away both saw the UDP port.
    rejected = _rejections(lab, UDP_PORT)
    r.check(
        f"the UDP port {UDP_PORT} rejected, and announced once across those passes",
        len(rejected) == 1 and "TCP only" in rejected[0],
        str(rejected),
    )
    r.check("the UDP port has no listener", UDP_PORT not in _listener_ports(lab))


def _rejections(lab: Lab, port: int) -> list[str]:
    """The reasons of the Listener Rejected on the operators' timeline for ``port``."""
    return [
        str((event.get("detail") or {}).get("reason"))
        for _, event in lab.operator_events()
        if event.get("detail-type") == "Listener Rejected"
        and (event.get("detail") or {}).get("port") == str(port)
    ]


def _all_healthy(lab: Lab) -> bool:
    """Every worker a healthy target of every listener (the update of the service is over)."""
    assert lab.forwarder is not None
    workers = set(lab.instances("worker"))
    listeners = lab.client("elbv2").describe_listeners(LoadBalancerArn=lab.forwarder.load_balancer_arn)
    groups = [item["DefaultActions"][0]["TargetGroupArn"] for item in listeners["Listeners"]]
    healthy = [{t[0] for t in lab.forwarder.healthy_targets(arn)} for arn in groups]
    return bool(groups) and all(h == workers for h in healthy)


def _scale_in(lab: Lab, r: Report, scale: float, client: object) -> None:
    r.check(
        "every worker a healthy target before the scale-in", settle(lambda: _all_healthy(lab), 90 * scale)
    )
    counts = {"sent": 0, "failed": 0}
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set() and counts["sent"] < MAX_REQUESTS:
            ok = _get(client, lab, FIRST_PORT)
            counts["sent"] += 1
            counts["failed"] += 0 if ok else 1
            time.sleep(0.05)

    requests = threading.Thread(target=loop, daemon=True, name="ingress-requests")
    before = set(lab.instances("worker"))
    requests.start()
    time.sleep(1.0)
    lab.set_desired("worker", 2)
    leaving = settle(lambda: [i for i in before if i not in lab.instances("worker")], 10 * scale)
    iid = leaving[0] if leaving else ""
    done = settle(lambda: terminate_action(lab, iid), 150 * scale) if iid else None
    time.sleep(2.0)  # requests on after the node is gone too
    stop.set()
    requests.join(timeout=30)
    r.notes.append(f"during the scale-in: {counts['sent']} requests sent, {counts['failed']} failed")
    if not r.check("Auto Scaling picked one worker and completed its terminate action", done, str(leaving)):
        return
    assert lab.autoscaling is not None
    deregistered = [entry for entry in lab.autoscaling.deregistered if entry[0] == iid]
    draining = published(lab, iid, "Node Draining")
    r.check(
        "the worker was out of the targets (its deregistration delay over) before its leave began",
        deregistered and draining and deregistered[0][2] <= min(draining),
        f"deregistered {deregistered}, Node Draining {draining}",
    )
    r.check(
        "no request failed while the worker left",
        counts["sent"] > 0 and counts["failed"] == 0,
        f"{counts['sent']} sent, {counts['failed']} failed",
    )
