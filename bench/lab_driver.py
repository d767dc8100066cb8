"""The lab, driven for measurement: one instance's timestamps from the lab's records, a measured join and
crash removal, the same join scripts run directly on a fresh node (the baseline), and the lab set-up
the lab figures share."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import itertools
import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.machine import CpuMeter
from bench.paths import RUNS
from bench.records import join_attempts_failed, parse_go_time
from infra.documents import parse_result, render_commands
from lab.agent import AgentKnobs
from lab.autoscaling import LAUNCHING
from lab.cluster import LabConfig, settle
from lab.instances import IMAGE, FleetKnobs
from lab.lambdas import LambdaKnobs, QueuePoller
from lab.nodes import load_image
from lab.scenarios.swarm import json_lines, node_id_of, swarm_view
from swarmkeeper.domain.labels import ON_DEMAND, NodeLabels
from swarmkeeper.domain.models import Role

log = logging.getLogger("bench")


def direct_verify_script(node_id: str) -> str:
    """verify-node as the control plane sends it for a worker of the demo fleet (labels and all)."""
    labels = NodeLabels("us-east-1a", "t4g.small", ON_DEMAND, Role.WORKER)
    return render_commands("verify-node", {"NodeId": node_id, **labels.parameters()})


DIRECT_TIMEOUT_S = 900  # the documents' own execution timeout (infra/documents: timeoutSeconds)


def _text(v: Any) -> str:
    if v is None:
        return ""
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


class LabBench:
    def __init__(self, lab: Any, managers: int):
        self.lab = lab
        self.managers = managers
        self.leader: Any = None
        self.base_seq = 0

    # timestamps (epoch seconds) of one instance
    def launch_event_at(self, iid: str) -> float | None:
        for c in list(self.lab.router.aws_events):
            d = c.event.get("detail") or {}
            if (
                c.event.get("detail-type") == "EC2 Instance-launch Lifecycle Action"
                and d.get("EC2InstanceId") == iid
            ):
                return c.at
        return None

    def state_event_at(self, iid: str, state: str) -> float | None:
        for c in list(self.lab.router.aws_events):
            d = c.event.get("detail") or {}
            if (
                c.event.get("detail-type") == "EC2 Instance State-change Notification"
                and d.get("instance-id") == iid
                and d.get("state") == state
            ):
                return c.at
        return None

    def first_command_at(self, iid: str) -> float | None:
        """When the first bootstrap-node command reached the instance (its Pending status event)."""
        for c in list(self.lab.router.aws_events):
            d = c.event.get("detail") or {}
            if (
                c.event.get("detail-type") == "EC2 Command Invocation Status-change Notification"
                and d.get("instance-id") == iid
                and str(d.get("document-name", "")).endswith("bootstrap-node")
            ):
                return c.at
        return None

    def registered_at(self, iid: str) -> float | None:
        agent = self.lab.agents.agents.get(iid)
        return agent.registered_at.timestamp() if agent and agent.registered_at else None

    def launch_done(self, iid: str) -> Any:
        return next(
            (
                c
                for c in list(self.lab.autoscaling.completed)
                if c.instance_id == iid and c.transition == LAUNCHING
            ),
            None,
        )

    def group_members(self) -> set[str]:
        return {iid for iid, _, _ in self.lab.autoscaling.snapshot().get(self.lab.group_name("worker"), [])}

    def find_leader(self) -> Any:
        view = swarm_view(self.lab)
        self.leader = view["leader"]
        return self.leader

    def node_ls(self) -> list[dict]:
        if self.leader is None or self.leader.state != "running":
            self.find_leader()
        out = self.leader.node.docker("node", "ls", "--format", "{{json .}}", timeout=20)
        return json_lines(out.stdout) if out.returncode == 0 else []

    def node_id(self, iid: str) -> str:
        return node_id_of(self.lab, iid)

    def wait_size(self, workers: int, timeout: float) -> bool:
        def ok() -> bool:
            if (
                len(self.lab.instances("manager")) != self.managers
                or len(self.lab.instances("worker")) != workers
            ):
                return False
            if self.lab.autoscaling.pending:
                return False
            nodes = self.node_ls()
            return len(nodes) == self.managers + workers and all(n.get("Status") == "Ready" for n in nodes)

        return bool(settle(ok, timeout, every=1.0))

    def join_sample(self, iid: str, timeout: float) -> dict | None:
        done = settle(lambda: self.launch_done(iid), timeout, every=0.25)
        if done is None or done.result != "CONTINUE":
            log.warning("join of %s: %s", iid, done)
            return None
        launch, reg = self.launch_event_at(iid), self.registered_at(iid)
        nid = self.node_id(iid)
        ready = any(
            n.get("ID", "").rstrip(" *") == nid and n.get("Status") == "Ready" for n in self.node_ls()
        )
        if launch is None or reg is None or not ready:
            log.warning("join of %s: launch %s registered %s ready %s", iid, launch, reg, ready)
            return None
        first = self.first_command_at(iid)
        return {
            "instance": iid,
            "join_s": done.at - reg,
            "agent_poll_s": (first - reg) if first else None,
            "commands_s": (done.at - first) if first else None,
            "boot_s": reg - launch,
            "with_boot_s": done.at - launch,
            "launch": launch,
            "registered": reg,
            "done": done.at,
        }

    def new_worker(self, before: set[str], timeout: float = 60) -> str | None:
        new = settle(lambda: sorted(self.group_members() - before), timeout, every=0.1)
        return new[0] if new else None

    def crash_sample(self, iid: str, timeout: float) -> dict | None:
        """Kill the worker's dockerd, terminate its instance; until its node is gone from `docker node ls`."""
        nid = self.node_id(iid)
        machine = self.lab.fleet.machines[iid]
        if self.leader is None:
            self.find_leader()
        leader = self.leader.node
        machine.node.kill_dockerd()
        self.lab.client("ec2").terminate_instances(InstanceIds=[iid])
        called = time.time()
        deadline = time.monotonic() + timeout
        gone = None
        while time.monotonic() < deadline:
            out = leader.docker("node", "ls", "--format", "{{.ID}}", timeout=10)
            t = time.time()
            if out.returncode == 0 and nid not in out.stdout.split():
                gone = t
                break
            time.sleep(0.1)
        event = self.state_event_at(iid, "shutting-down") or called
        terminated = self.state_event_at(iid, "terminated")
        if gone is None:
            log.warning("crash of %s: node %s still listed after %ss", iid, nid, timeout)
            return None
        return {
            "instance": iid,
            "removal_s": gone - event,
            "from_terminated_event_s": (gone - terminated) if terminated else None,
        }

    def boot_direct_node(self, name: str, ip: str, hostname: str) -> Any:
        """A fresh lab node booted as the Fleet boots an instance (lab/instances.py ``Fleet._start``):
        namespace + dockerd up + the lab image loaded; no instance, no agent, no control plane."""
        node = self.lab.network.add_node(name, ip, hostname)
        try:
            node.start_dockerd(wait=True)
            load_image(node, IMAGE)
        except BaseException:
            node.destroy()
            raise
        return node

    def direct_join(self, node: Any, settings: dict[str, str], instance_id: str) -> dict:
        """bootstrap-node (Mode=join, worker) run on ``node`` and verify-node run on the leader, directly:
        the same rendered scripts the control plane sends, in the agent's environment, one after the
        other. Epoch timestamps of each step; ``ok`` only when verify-node saw the node Ready."""
        env = {**self.lab._script_env(None), "AWS_SSM_INSTANCE_ID": instance_id}
        env["AWS_SSM_REGION_NAME"] = settings["Region"]
        boot_script = render_commands(
            "bootstrap-node",
            {
                "Role": "worker",
                "Mode": "join",
                "AdvertiseAddress": node.ip,
                "ParameterPrefix": settings["ParameterPrefix"],
                "KmsKeyId": settings["KmsKeyId"],
                "DockerVersion": settings["DockerVersion"],
                "Region": settings["Region"],
            },
        )
        out: dict[str, Any] = {"node_name": node.name, "ok": False, "node": ""}
        out["boot_start"] = time.time()
        try:
            boot_env = {**env, "SWARMKEEPER_RUN_DIR": str(node.run_dir)}
            p = node.run(["sh", "-c", boot_script], env=boot_env, timeout=DIRECT_TIMEOUT_S)
            code, stdout, stderr = p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired as e:
            code, stdout, stderr = -1, "", _text(e.stderr) + f"\ntimed out after {DIRECT_TIMEOUT_S}s"
        out["boot_end"] = time.time()
        out["join_attempts_failed"] = join_attempts_failed(stderr)
        if code != 0:
            out["error"] = f"bootstrap-node exit {code}: {stderr[-500:]}"
            return out
        nid = parse_result(stdout).get("node-id", "")
        out["node"] = nid
        verify = direct_verify_script(nid)
        # verify-node asks the swarm about the node: the control plane runs it on a manager
        out["verify_start"] = time.time()
        verify_env = {**env, "SWARMKEEPER_RUN_DIR": str(self.leader.node.run_dir)}
        v = self.leader.node.run(["sh", "-c", verify], env=verify_env, timeout=300)
        out["verify_end"] = time.time()
        if v.returncode != 0:
            out["error"] = f"verify-node exit {v.returncode}: {v.stderr[-500:]}"
            return out
        out["ok"] = True
        return out

    def baseline_sample(self, settings: dict[str, str]) -> dict | None:
        """bootstrap-node + verify-node run directly on a fresh node (dockerd up, image loaded)."""
        self.base_seq += 1
        (ip,) = self.free_ips(1)
        node = self.boot_direct_node(f"base{self.base_seq}", ip, f"baseline-{self.base_seq}")
        nid = ""
        try:
            d = self.direct_join(node, settings, f"mi-baseline{self.base_seq}")
            nid = d["node"]
            if not d["ok"]:
                log.warning("baseline: %s", d.get("error"))
                return None
            bootstrap, verify = d["boot_end"] - d["boot_start"], d["verify_end"] - d["verify_start"]
            return {"direct_s": bootstrap + verify, "bootstrap_s": bootstrap, "verify_s": verify, "node": nid}
        finally:
            with contextlib.suppress(Exception):
                node.docker("swarm", "leave", "--force", timeout=30)
            node.destroy()
            with contextlib.suppress(Exception):
                if nid:
                    settle(
                        lambda: self.leader.node.docker("node", "rm", "--force", nid, timeout=20).returncode
                        == 0,
                        30,
                    )

    def free_ips(self, n: int) -> list[str]:
        """``n`` addresses of the lab subnet no instance or node uses, from the top (moto's instances
        take theirs from the bottom)."""
        used = {m.ip for m in self.lab.fleet.machines.values()} | {self.lab.network.gateway_ip}
        used |= {n.ip for n in self.lab.network.nodes.values()}
        hosts = reversed(list(ipaddress.IPv4Network(self.lab.config.subnet).hosts()))
        free = list(itertools.islice((str(h) for h in hosts if str(h) not in used), n))
        if len(free) < n:
            raise RuntimeError(f"only {len(free)} free addresses, {n} needed")
        return free


def lab_config(args: argparse.Namespace, parallel_starts: int = 4) -> Any:
    return LabConfig(
        subnet=args.subnet,
        bridge=args.bridge,
        prefix=args.prefix,
        log_dir=RUNS,
        schedule_scale=0,  # schedules (reconcile, rotation) on demand only: nothing else runs meanwhile
        lambdas=LambdaKnobs(retry_delays=(1.0, 2.0), concurrency=args.lambda_concurrency),
        agent=AgentKnobs(registration_delay=args.registration_delay),
        fleet=FleetKnobs(parallel_starts=parallel_starts),
    )


def more_pollers(lab: Any, pollers: int) -> None:
    """``pollers`` concurrent batches per SQS event source instead of the lab's one (AWS starts an SQS
    event source mapping with five and scales up); each is stopped with the lab's own."""
    for source in lab.stack.queue_sources:
        if source.enabled:
            for _ in range(pollers - 1):
                poller = QueuePoller(lab.lambdas, lab.region.client("sqs"), source, lab.region.name)
                poller.start()
                lab.pollers.append(poller)


def settings_for_baseline(lab: Any) -> dict[str, str]:
    spec = next(iter(lab.stack.functions.values()))
    env = spec.environment
    return {
        "ParameterPrefix": env["PARAMETER_PREFIX"],
        "KmsKeyId": env["KMS_KEY_ID"],
        "DockerVersion": env.get("DOCKER_VERSION", ""),
        "Region": lab.region.name,
    }


def fresh_swarm(lab: Any, args: argparse.Namespace) -> LabBench:
    more_pollers(lab, args.sqs_pollers)
    b = LabBench(lab, args.managers)
    lab.set_desired("manager", args.managers)
    if not b.wait_size(0, 300 * args.timeout_scale):
        raise RuntimeError("managers did not form a swarm")
    b.find_leader()
    return b


def manager_dirs(lab: Any) -> list[str]:
    out = []
    for iid in lab.instances("manager", ("InService", "Pending:Wait", "Terminating:Wait")):
        m = lab.fleet.machines.get(iid)
        if m is not None and m.node is not None:
            out.append(m.node.root_dir.name)
    return out


def cpu_meter(lab: Any) -> CpuMeter:
    return CpuMeter(lab.network.root, lambda: manager_dirs(lab), lab.lambdas.pids)


def swarm_nodes(b: LabBench) -> list[dict]:
    """Every node object the leader holds: id, hostname, state, role and when it was created (the
    leader's CA accepted the node's certificate request: one raft write per join attempt)."""
    if b.leader is None or b.leader.state != "running":
        b.find_leader()
    ids = b.leader.node.docker("node", "ls", "-q", timeout=30).stdout.split()
    if not ids:
        return []
    fmt = "{{.ID}} {{json .CreatedAt}} {{.Description.Hostname}} {{.Status.State}} {{.Spec.Role}}"
    out = b.leader.node.docker("node", "inspect", "-f", fmt, *ids, timeout=60)
    nodes = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 5:
            nodes.append(
                {
                    "id": parts[0],
                    "created": parse_go_time(parts[1]),
                    "hostname": parts[2],
                    "state": parts[3],
                    "role": parts[4],
                }
            )
    return nodes


def nodes_or_none(b: LabBench) -> list[dict]:
    try:
        return swarm_nodes(b)
    except Exception as e:  # evidence only: never lose the figure over it
        log.warning("could not list the swarm's nodes: %s", e)
        return []


def keep_manager_logs(lab: Any, directory: Path) -> None:
    """The managers' dockerd logs (swarmkit's raft and CA lines) next to the run's records."""
    directory.mkdir(parents=True, exist_ok=True)
    for iid in lab.instances("manager", ("InService", "Pending:Wait", "Terminating:Wait")):
        m = lab.fleet.machines.get(iid)
        if m is not None and m.node is not None:
            with contextlib.suppress(OSError):
                shutil.copyfile(m.node.log_path, directory / f"dockerd-manager-{iid}.log")
