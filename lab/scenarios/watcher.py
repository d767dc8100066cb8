"""A background sampler of the leader's view, for checks about what the swarm looked like *before* an
instance went or a lifecycle action completed."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lab.autoscaling import TERMINATING
from lab.cluster import Lab
from lab.scenarios.swarm import json_lines, swarm_view

log = logging.getLogger("lab.exit")


# -- watching the swarm -------------------------------------------------------------------------------
@dataclass
class Sample:
    at: float  # time.time()
    leader: str | None  # instance id of the manager that answered as Leader; None: nobody did
    nodes: dict[str, dict] = field(default_factory=dict)  # node id -> `docker node ls` row
    tasks: dict[str, int] | None = None  # hostname -> running tasks of the watched service (None: not asked)

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
        rows = json_lines(ls.stdout) if ls.returncode == 0 else []
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
                for t in json_lines(ps.stdout):
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
