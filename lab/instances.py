"""EC2 instances as real nodes: every instance moto launches becomes a ``dockerd`` in its own network
namespace with the instance's private IP and hostname; every terminated one is torn down.

moto's RunInstances/TerminateInstances are wrapped (in-process) so the lab hears of each change the
moment it happens. The instance shows ``pending`` until its dockerd is up, then ``running``;
``shutting-down`` until its node is gone, then ``terminated`` — each change goes out as the
documented "EC2 Instance State-change Notification".
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lab import patches

log = logging.getLogger("lab.instances")

IMAGE = "swarmkeeper/busybox:lab"


@dataclass
class FleetKnobs:
    parallel_starts: int = 4
    node_start_timeout: float = 60.0


@dataclass
class Machine:
    instance_id: str
    ip: str
    hostname: str
    node_name: str
    node: Any = None
    state: str = "pending"
    started: threading.Event | None = None
    gone: threading.Event | None = None
    error: str | None = None


class Fleet:
    def __init__(
        self,
        region: Any,
        network: Any,
        agents: Any,
        factory: Any,
        emit: Callable[[dict], None],
        load_image: Callable[[Any, str], None] | None,
        knobs: FleetKnobs | None = None,
    ):
        self.region = region
        self.network = network
        self.agents = agents
        self.factory = factory
        self.emit = emit
        self.load_image = load_image
        # More images for every node started from now on (a scenario's own services), after IMAGE.
        self.image_loaders: list[Callable[[Any], None]] = []
        self.knobs = knobs or FleetKnobs()
        self.machines: dict[str, Machine] = {}
        self.errors: list[str] = []
        self._seq = 0
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(max_workers=self.knobs.parallel_starts, thread_name_prefix="node")
        self._stoppers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="node-stop")
        self._closed = False

    def install(self) -> None:
        from moto.ec2.models.instances import InstanceBackend
        from moto.ec2.models.instances import InstanceState as Ec2State

        fleet = self
        run_original = InstanceBackend.run_instances
        terminate_original = InstanceBackend.terminate_instances

        def run_instances(backend: Any, *args: Any, **kwargs: Any) -> Any:
            reservation = run_original(backend, *args, **kwargs)
            for instance in reservation.instances:
                instance._state = Ec2State("pending", 0)
                fleet.launched(instance)
            return reservation

        def terminate_instances(backend: Any, instance_ids: list[str]) -> Any:
            with fleet._lock:
                before = {i.id: i.state for i in backend.get_multi_instances_by_id(instance_ids)}
                result = terminate_original(backend, instance_ids)
                for instance, _previous in result:
                    if before.get(instance.id) in ("terminated", "shutting-down"):
                        instance._state = Ec2State(
                            before[instance.id], 48 if before[instance.id] == "terminated" else 32
                        )
                        continue
                    instance._state = Ec2State("shutting-down", 32)
                    fleet.terminating(instance)
                return result

        patches.setattr(InstanceBackend, "run_instances", run_instances)
        patches.setattr(InstanceBackend, "terminate_instances", terminate_instances)

    # -- launch ---------------------------------------------------------------------------------------
    def launched(self, instance: Any) -> None:
        with self._lock:
            self._seq += 1
            m = Machine(
                instance.id,
                instance.private_ip,
                f"ip-{instance.private_ip.replace('.', '-')}.{self.region.name}.compute.internal",
                f"n{self._seq}",
                started=threading.Event(),
                gone=threading.Event(),
            )
            previous = [x for x in self.machines.values() if x.ip == m.ip and x.gone and not x.gone.is_set()]
            self.machines[instance.id] = m
        self.emit(self.factory.ec2_state_change(instance.id, "pending"))
        if not self._closed:
            self._pool.submit(self._start, instance, m, previous)

    def _start(self, instance: Any, m: Machine, previous: list[Machine]) -> None:
        from moto.ec2.models.instances import InstanceState as Ec2State

        try:
            for old in previous:  # the same private IP, reused: wait until its old namespace is gone
                old.gone.wait(self.knobs.node_start_timeout)
            if self._closed or m.state != "pending":
                return
            node = self.network.add_node(m.node_name, m.ip, m.hostname)
            m.node = node
            node.start_dockerd(wait=True)
            if self.load_image:
                self.load_image(node, IMAGE)
            for load in self.image_loaders:
                load(node)
        except Exception as e:
            m.error = f"{type(e).__name__}: {e}"
            self.errors.append(f"{m.instance_id} ({m.ip}): node failed to start: {m.error}")
            log.error("%s: node failed to start: %s", m.instance_id, m.error)
            return
        with self._lock:
            if m.state != "pending" or self._closed:
                return
            m.state = "running"
            if instance.state == "pending":
                instance._state = Ec2State("running", 16)
        m.started.set()
        log.info("%s running as %s (%s)", m.instance_id, m.node_name, m.ip)
        self.emit(self.factory.ec2_state_change(m.instance_id, "running"))
        self.agents.attach(m.instance_id, node, m.ip, m.hostname)

    # -- termination ----------------------------------------------------------------------------------
    def terminating(self, instance: Any) -> None:
        m = self.machines.get(instance.id)
        self.emit(self.factory.ec2_state_change(instance.id, "shutting-down"))
        if m is None:
            return
        m.state = "shutting-down"
        self.agents.detach(instance.id)
        if self._closed:
            return
        self._stoppers.submit(self._stop, instance, m)

    def _stop(self, instance: Any, m: Machine) -> None:
        from moto.ec2.models.instances import InstanceState as Ec2State

        try:
            if m.node is not None:
                m.node.destroy()
        except Exception as e:
            self.errors.append(f"{m.instance_id}: teardown: {e}")
            log.error("%s: teardown failed: %s", m.instance_id, e)
        finally:
            m.state = "terminated"
            instance._state = Ec2State("terminated", 48)
            m.gone.set()
        self.emit(self.factory.ec2_state_change(m.instance_id, "terminated"))

    # -- queries --------------------------------------------------------------------------------------
    def node(self, instance_id: str) -> Any:
        m = self.machines.get(instance_id)
        return m.node if m else None

    def running(self) -> list[Machine]:
        return [m for m in self.machines.values() if m.state == "running"]

    def wait_started(self, instance_ids: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for iid in instance_ids:
            m = self.machines.get(iid)
            if m is None or not m.started.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._stoppers.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(Exception):
            self.agents.close()
