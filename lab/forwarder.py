"""The load balancer as the lab plays it: moto holds the load balancer, its listeners, target groups and
targets and forwards nothing; this module carries the bytes and plays the deregistration delay.

- ``Forwarder``: for every listener of the stack's load balancer (read from moto's backend each
  ``sync_seconds``), a TCP listening socket on the load balancer's lab address, an extra address on the
  lab bridge (never another interface: the lab's isolation rule drops anything forwarded off it).
  Each connection goes to one healthy registered target of the listener's target group, round robin;
  a target is healthy after ``HealthyThresholdCount`` TCP probes in a row succeeded at
  ``HealthCheckIntervalSeconds`` (scaled by ``interval_scale``), unhealthy after
  ``UnhealthyThresholdCount`` failed, as the target group says. A draining target gets no new
  connection. TLS listeners are forwarded as TCP (no certificate in the lab).
- ``Deregistrations``: Auto Scaling's scale-in as AWS orders it: the instance leaves its group's target
  groups first and stays ``draining`` (what DescribeTargetHealth says) for the target group's
  deregistration delay; only then does the terminate hook fire (``lab.autoscaling`` asks).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import selectors
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lab import patches

log = logging.getLogger("lab.forwarder")

CONNECT_TIMEOUT = 2.0
BUFFER = 65536


@dataclass
class _Health:
    healthy: bool = False
    streak: int = 0  # successes (healthy=False) or failures (healthy=True) in a row
    next_probe: float = 0.0


@dataclass
class Deregistrations:
    """Targets deregistered by the lab's Auto Scaling and still within their deregistration delay."""

    scale: float = 1.0  # the lab's time scale on the target groups' delays
    draining: dict[tuple[str, str], float] = field(default_factory=dict)  # (group arn, instance) -> until
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self) -> None:
        from moto.elbv2.models import FakeHealthStatus, FakeTargetGroup

        original = FakeTargetGroup.health_for

        def health_for(group: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
            if self.is_draining(group.arn, target["Id"]):
                return FakeHealthStatus(
                    target["Id"], target.get("Port", group.port), group.health_check_port, "draining",
                    "Target.DeregistrationInProgress", "Target deregistration is in progress",
                )  # fmt: skip
            return original(group, target, ec2_backend)

        patches.setattr(FakeTargetGroup, "health_for", health_for)

    def is_draining(self, group_arn: str, instance_id: str) -> bool:
        with self.lock:
            until = self.draining.get((group_arn, instance_id))
            return until is not None and time.monotonic() < until

    def begin(self, elbv2: Any, group_arns: list[str], instance_id: str) -> float:
        """Deregister the instance from those target groups; the seconds until every delay is over."""
        longest = 0.0
        for arn in group_arns:
            group = elbv2.target_groups.get(arn)
            if group is None or instance_id not in group.targets:
                continue
            group.deregister([{"Id": instance_id}])
            delay = float(group.attributes.get("deregistration_delay.timeout_seconds", 300)) * self.scale
            with self.lock:
                self.draining[(arn, instance_id)] = time.monotonic() + delay
            longest = max(longest, delay)
            log.info("%s: deregistered from %s, draining %.1fs", instance_id, arn.rsplit(":", 1)[-1], delay)
        return longest


class Forwarder:
    def __init__(
        self,
        region: Any,
        bridge: str,
        address: str,
        prefix_length: int,
        deregistrations: Deregistrations,
        interval_scale: float = 0.2,
        sync_seconds: float = 0.5,
    ):
        self.region = region
        self.bridge = bridge
        self.address = address
        self.prefix_length = prefix_length
        self.deregistrations = deregistrations
        self.interval_scale = interval_scale
        self.sync_seconds = sync_seconds
        self.load_balancer_arn = ""
        self._listening: dict[int, socket.socket] = {}
        self._group_of: dict[int, str] = {}
        self._health: dict[tuple[str, str], _Health] = {}
        self._turn = itertools.count()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self.connections = 0
        self.refused = 0

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, load_balancer_arn: str) -> None:
        self.load_balancer_arn = load_balancer_arn
        subprocess.run(
            ["ip", "addr", "add", f"{self.address}/{self.prefix_length}", "dev", self.bridge], check=True
        )
        for target in (self._sync_loop, self._accept_loop):
            thread = threading.Thread(target=target, daemon=True, name=f"forwarder-{target.__name__}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            for port in list(self._listening):
                self._close(port)
        subprocess.run(
            ["ip", "addr", "del", f"{self.address}/{self.prefix_length}", "dev", self.bridge],
            check=False,
            capture_output=True,
        )

    # -- listeners ----------------------------------------------------------------------------------
    @property
    def ports(self) -> list[int]:
        with self._lock:
            return sorted(self._listening)

    def _backend(self) -> Any:
        return self.region.backend("elbv2")

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_seconds):
            try:
                self._sync()
                self._probe()
            except Exception:
                log.exception("forwarder sync")

    def _sync(self) -> None:
        balancer = self._backend().load_balancers.get(self.load_balancer_arn)
        wanted: dict[int, str] = {}
        for listener in balancer.listeners.values() if balancer else ():
            forward = next((a for a in listener.default_actions if a.type == "forward"), None)
            group = forward.data.get("TargetGroupArn") if forward is not None else None
            if group:
                wanted[int(listener.port)] = str(group)
        with self._lock:
            for port in [p for p in self._listening if p not in wanted]:
                self._close(port)
                log.info("listener %s:%d closed", self.address, port)
            for port, group in wanted.items():
                self._group_of[port] = group
                if port not in self._listening:
                    server = socket.create_server((self.address, port), reuse_port=False)
                    server.setblocking(False)
                    self._listening[port] = server
                    self._selector.register(server, selectors.EVENT_READ, port)
                    log.info("listener %s:%d -> %s", self.address, port, group.rsplit(":", 1)[-1])

    def _close(self, port: int) -> None:
        server = self._listening.pop(port)
        self._group_of.pop(port, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(server)
        server.close()

    # -- health checks ------------------------------------------------------------------------------
    def _targets(self, group_arn: str) -> list[tuple[str, str, int]]:
        """(instance, private IP, port) of each target registered in the group."""
        group = self._backend().target_groups.get(group_arn)
        if group is None:
            return []
        ec2 = self.region.backend("ec2")
        out = []
        for target in list(group.targets.values()):
            instance = ec2.get_instance_by_id(target["Id"])
            if instance is not None and instance.private_ip_address:
                out.append((target["Id"], instance.private_ip_address, int(target.get("Port") or group.port)))
        return out

    def _probe(self) -> None:
        now = time.monotonic()
        with self._lock:
            groups = set(self._group_of.values())
        for arn in groups:
            group = self._backend().target_groups.get(arn)
            if group is None:
                continue
            interval = float(group.health_check_interval_seconds or 10) * self.interval_scale
            healthy_after = int(group.healthy_threshold_count or 3)
            unhealthy_after = int(group.unhealthy_threshold_count or 3)
            for instance_id, ip, port in self._targets(arn):
                health = self._health.setdefault((arn, instance_id), _Health())
                if now < health.next_probe:
                    continue
                health.next_probe = now + interval
                ok = _reachable(ip, port)
                if ok != health.healthy:
                    health.streak += 1
                    if health.streak >= (healthy_after if ok else unhealthy_after):
                        health.healthy, health.streak = ok, 0
                        log.info("target %s:%d %s", ip, port, "healthy" if ok else "unhealthy")
                else:
                    health.streak = 0

    def healthy_targets(self, group_arn: str) -> list[tuple[str, str, int]]:
        return [
            target
            for target in self._targets(group_arn)
            if self._health.get((group_arn, target[0]), _Health()).healthy
            and not self.deregistrations.is_draining(group_arn, target[0])
        ]

    # -- forwarding ---------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                empty = not self._listening
            if empty:
                time.sleep(0.1)
                continue
            try:
                ready = self._selector.select(timeout=0.2)
            except (OSError, ValueError):
                continue
            for key, _ in ready:
                try:
                    client, _address = key.fileobj.accept()  # type: ignore[union-attr]
                except (BlockingIOError, OSError):
                    continue
                client.setblocking(True)  # accepted from a non-blocking socket: non-blocking too
                port = key.data
                threading.Thread(target=self._serve, args=(client, port), daemon=True).start()

    def _serve(self, client: socket.socket, port: int) -> None:
        with self._lock:
            group = self._group_of.get(port, "")
        targets = self.healthy_targets(group)
        if not targets:
            self.refused += 1
            client.close()
            return
        _, ip, target_port = targets[next(self._turn) % len(targets)]
        try:
            upstream = socket.create_connection((ip, target_port), timeout=CONNECT_TIMEOUT)
        except OSError:
            self.refused += 1
            client.close()
            return
        self.connections += 1
        _pipe(client, upstream)


def _reachable(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes (then half-close the other)."""

    def copy(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(BUFFER):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=copy, args=(b, a), daemon=True)
    other.start()
    copy(a, b)
    other.join(timeout=30)
    a.close()
    b.close()
