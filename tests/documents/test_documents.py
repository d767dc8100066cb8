"""The SSM documents' shell, run as the SSM agent would run it, on a real three-node lab swarm.

One swarm is shared by the whole module and the tests build on each other, in file order:
init on A -> joins (B worker, C manager) -> verify -> describe (and D, a worker with a hostile
hostname, in and out) -> drain -> leave -> rotate -> remove a killed node -> remove a live manager.
The embedded AWS is a moto server on the bridge.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

from infra.documents import parse_result, render_commands
from lab.nodes import LabNetwork, LabNode, leftovers, load_image
from swarmkeeper.domain.models import Role
from swarmkeeper.domain.swarm import parse_describe_swarm

pytestmark = pytest.mark.lab

PREFIX = "skd"  # own names, so a lab running elsewhere on this machine is never touched
SUBNET = "10.99.7.0/24"
REGION = "eu-west-1"
PARAMS = "/swarmkeeper/doctest"
KMS_ALIAS = "alias/swarmkeeper-doctest"
VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
IMAGE = "swarmkeeper/busybox:lab"


@dataclass
class Run:
    action: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def result(self) -> dict[str, str]:
        return parse_result(self.stdout)


@dataclass
class Lab:
    net: LabNetwork
    a: LabNode
    b: LabNode
    c: LabNode
    d: LabNode
    ssm: object
    endpoint: str
    ids: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    runs: int = 0

    def run(
        self,
        node: LabNode,
        action: str,
        timeout: float = 180,
        shell: str = "sh",
        shims: dict[str, str] | None = None,
        **values: str,
    ) -> Run:
        """Render the document as the SSM agent does and run it with the agent's environment, under
        ``shell`` (sh is dash here; "bash" runs it as Amazon Linux 2023's sh, bash in POSIX mode).
        ``shims``: programs (name -> shell) found on PATH before the real ones."""
        script = render_commands(action, values)
        self.runs += 1
        path = node.root_dir / f"_script-{self.runs}-{action}.sh"
        path.write_text(script)
        shim_dir = node.root_dir / f"_shims-{self.runs}"
        shim_dir.mkdir()
        for name, text in (shims or {}).items():
            (shim_dir / name).write_text(text)
            (shim_dir / name).chmod(0o755)
        env = {
            "PATH": f"{shim_dir}:{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "SWARMKEEPER_RUN_DIR": str(run_dir(node)),
            "TMPDIR": str(node_tmp(node)),
        }
        node_tmp(node).mkdir(exist_ok=True)
        argv = {"sh": ["sh"], "bash": ["bash", "--posix"]}[shell]
        start = time.monotonic()
        proc = node.run([*argv, str(path)], env=env, timeout=timeout)
        run = Run(action, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)
        # Never a join token in what the agent would report, nor in any file a run leaves.
        assert "SWMTKN-" not in run.stdout, f"{action} printed a token"
        assert "SWMTKN-" not in run.stderr, f"{action} printed a token on stderr"
        assert files_holding_a_token(node) == [], f"{action} left a token in a file"
        if run.returncode >= 0:  # ended, not killed: its scratch directory is gone
            assert list(run_dir(node).glob("*")) == [], f"{action} left its scratch directory"
        return run

    def bootstrap(self, node: LabNode, mode: str, role: str, **kwargs) -> Run:
        return self.run(
            node,
            "bootstrap-node",
            **kwargs,
            Role=role,
            Mode=mode,
            AdvertiseAddress=node.ip,
            ParameterPrefix=PARAMS,
            KmsKeyId=KMS_ALIAS,
            Region=REGION,
        )

    def param(self, name: str) -> dict:
        return self.ssm.get_parameter(Name=f"{PARAMS}/{name}", WithDecryption=True)["Parameter"]

    def docker(self, node: LabNode, *args: str) -> str:
        proc = node.docker(*args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()


def run_dir(node: LabNode) -> Path:
    """Where the node's documents keep their runs' scratch directories (/run/swarmkeeper on AWS)."""
    return node.root_dir / "run"


def node_tmp(node: LabNode) -> Path:
    """TMPDIR of the node's documents: nothing should be left there either."""
    return node.root_dir / "documents-tmp"


def files_holding_a_token(node: LabNode) -> list[str]:
    """Every file the node's document runs left behind that holds something token-shaped."""
    found = []
    for top in (run_dir(node), node_tmp(node)):
        for path in top.rglob("*") if top.exists() else ():
            if path.is_file() and b"SWMTKN-" in path.read_bytes():
                found.append(str(path))
    return found


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


@contextlib.contextmanager
def lab_with_aws(prefix: str, subnet: str, hosts: tuple[int, ...], image_nodes: int | None = None):
    """A lab network (names ``prefix``) with a node per host number, each dockerd up (the first
    ``image_nodes`` with the lab image, all by default), and a moto server on the bridge with the
    cluster's KMS alias; nothing left after it."""
    from moto.server import ThreadedMotoServer

    net = LabNetwork(subnet=subnet, bridge=f"{prefix}br0", prefix=prefix)
    base = subnet.rsplit(".", 1)[0]
    server = None
    try:
        net.up()
        port = _free_port(net.gateway_ip)
        server = ThreadedMotoServer(ip_address=net.gateway_ip, port=port, verbose=False)
        server.start()
        endpoint = f"http://{net.gateway_ip}:{port}"
        # One moto per process: what another module of this tier left there is gone.
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
        creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}
        kms = boto3.client("kms", endpoint_url=endpoint, **creds)
        key_id = kms.create_key(Description="swarmkeeper doctest")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=key_id)
        ssm = boto3.client("ssm", endpoint_url=endpoint, **creds)

        nodes = [net.add_node(f"ip-{base.replace('.', '-')}-{n}.ec2.internal", f"{base}.{n}") for n in hosts]
        start = time.monotonic()
        for node in nodes:
            node.start_dockerd(wait=False)
        for node in nodes:
            node.wait_ready()
        started = time.monotonic() - start
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(load_image, nodes[:image_nodes]))
        yield net, nodes, ssm, endpoint, started
    finally:
        if server is not None:
            server.stop()
        net.down()
        left = leftovers(prefix)
        assert left == [], f"the lab left things behind: {left}"


@pytest.fixture(scope="module")
def lab():
    # D runs no task: it has no image
    with lab_with_aws(PREFIX, SUBNET, (11, 12, 13, 14), image_nodes=3) as (
        net,
        nodes,
        ssm,
        endpoint,
        started,
    ):
        lab = Lab(net, *nodes, ssm=ssm, endpoint=endpoint)
        lab.timings["start 3 dockerd"] = started
        yield lab
        print("\ntimings:", {k: round(v, 2) for k, v in lab.timings.items()})


# --- bootstrap-node --------------------------------------------------------------------------------


def test_init_creates_the_swarm_and_publishes_tokens_and_addresses(lab: Lab):
    # When A bootstraps in init mode
    run = lab.bootstrap(lab.a, "init", "manager")
    lab.timings["bootstrap init"] = run.seconds

    # Then A manages a new swarm and says so on the last line
    assert run.returncode == 0, run.stderr
    result = run.result
    assert result["role"] == "manager"
    assert result["node-id"] == lab.docker(lab.a, "info", "-f", "{{.Swarm.NodeID}}")
    assert result["cluster-id"] == lab.docker(lab.a, "info", "-f", "{{.Swarm.Cluster.ID}}")
    lab.ids["a"], lab.ids["cluster"] = result["node-id"], result["cluster-id"]
    # and both join tokens are SecureStrings under the cluster's KMS key, equal to the swarm's
    for role in ("worker", "manager"):
        param = lab.param(f"join-token/{role}")
        assert param["Type"] == "SecureString"
        assert param["Value"] == lab.docker(lab.a, "swarm", "join-token", "-q", role)
        meta = lab.ssm.describe_parameters(
            ParameterFilters=[{"Key": "Name", "Values": [f"{PARAMS}/join-token/{role}"]}]
        )["Parameters"][0]
        assert meta.get("KeyId") == KMS_ALIAS
    # and the cluster id and manager addresses are Strings
    assert lab.param("cluster-id")["Value"] == result["cluster-id"]
    assert lab.param("cluster-id")["Type"] == "String"
    assert lab.param("manager-addresses")["Value"] == f"{lab.a.ip}:2377"


def test_init_again_changes_nothing(lab: Lab):
    # Given the tokens as published
    worker_token = lab.param("join-token/worker")["Value"]

    # When the init document runs a second time on the same node
    run = lab.bootstrap(lab.a, "init", "manager")

    # Then it is the same swarm (no second init) with the same tokens
    assert run.returncode == 0, run.stderr
    assert run.result == {"node-id": lab.ids["a"], "role": "manager", "cluster-id": lab.ids["cluster"]}
    assert lab.param("join-token/worker")["Value"] == worker_token


KILL_AS_THE_AGENT_DOES = """#!/bin/sh
# What the SSM agent does to a run at its timeoutSeconds (or a cancel): SIGKILL to the run's whole
# process group. Here at the worst moment: while a join token is on its way to Parameter Store.
case "$*" in *put-parameter*join-token*) kill -KILL 0 ;; esac
exec %(aws)s "$@"
"""


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_a_run_killed_while_it_holds_a_token_leaves_none_behind(lab: Lab, shell: str):
    # Given manager A publishes its join tokens again (init on a manager), and is killed as the SSM
    # agent kills a run, while the token is in flight
    shim = {"aws": KILL_AS_THE_AGENT_DOES % {"aws": VENV_BIN / "aws"}}
    killed = lab.bootstrap(lab.a, "init", "manager", shell=shell, shims=shim)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    # Then no file holds a token (it never touched one), though no trap ran: the dead run's scratch
    # directory is still there
    assert files_holding_a_token(lab.a) == []
    assert len(list(run_dir(lab.a).iterdir())) == 1
    # and the next run removes it
    again = lab.bootstrap(lab.a, "init", "manager", shell=shell)
    assert again.returncode == 0, again.stderr
    assert list(run_dir(lab.a).iterdir()) == []


def test_worker_and_manager_join(lab: Lab):
    # When B joins as a worker and C as a manager
    run_b = lab.bootstrap(lab.b, "join", "worker")
    run_c = lab.bootstrap(lab.c, "join", "manager")
    lab.timings["bootstrap join worker"] = run_b.seconds
    lab.timings["bootstrap join manager"] = run_c.seconds

    # Then both are members of A's swarm with the asked roles
    assert run_b.returncode == 0, run_b.stderr
    assert run_c.returncode == 0, run_c.stderr
    assert run_b.result["role"] == "worker"
    assert run_c.result["role"] == "manager"
    assert run_b.result["cluster-id"] == lab.ids["cluster"]  # a worker reads it from its certificate
    assert run_c.result["cluster-id"] == lab.ids["cluster"]
    lab.ids["b"], lab.ids["c"] = run_b.result["node-id"], run_c.result["node-id"]
    listed = lab.docker(lab.a, "node", "ls", "-q").split()
    assert sorted(listed) == sorted(lab.ids[n] for n in "abc")
    # and the manager that joined refreshed the manager addresses
    addrs = lab.param("manager-addresses")["Value"].split(",")
    assert sorted(addrs) == sorted([f"{lab.a.ip}:2377", f"{lab.c.ip}:2377"])


def test_join_again_changes_nothing(lab: Lab):
    run = lab.bootstrap(lab.b, "join", "worker")
    assert run.returncode == 0, run.stderr
    assert run.result["node-id"] == lab.ids["b"]
    assert len(lab.docker(lab.a, "node", "ls", "-q").split()) == 3


def test_join_as_manager_on_a_worker_fails_with_a_reason(lab: Lab):
    run = lab.bootstrap(lab.b, "join", "manager")
    assert run.returncode != 0
    assert "worker" in run.stderr and len(run.stderr.strip().splitlines()) == 1


# --- verify-node -----------------------------------------------------------------------------------


LABELS = {"b": ("eu-west-1b", "t4g.small", "spot"), "c": ("eu-west-1c", "m7i-flex.large", "on-demand")}


def _verify(lab: Lab, key: str, role: str, timeout: str = "30") -> Run:
    az, instance_type, lifecycle = LABELS[key]
    return lab.run(
        lab.a,
        "verify-node",
        NodeId=lab.ids[key],
        Role=role,
        AvailabilityZone=az,
        InstanceType=instance_type,
        Lifecycle=lifecycle,
        TimeoutSeconds=timeout,
    )


def _labels(lab: Lab, key: str) -> dict[str, str]:
    out = lab.docker(lab.a, "node", "inspect", "-f", "{{json .Spec.Labels}}", lab.ids[key])
    return json.loads(out) or {}


def test_verify_node_labels_ready_nodes_and_sees_their_roles(lab: Lab):
    for key, role in (("b", "worker"), ("c", "manager")):
        # When a manager verifies a node that joined
        run = _verify(lab, key, role)

        # Then the node is ready in its role
        assert run.returncode == 0, run.stderr
        assert run.result == {"node-id": lab.ids[key], "state": "ready", "role": role}
        # and carries the four labels, as every manager of the swarm sees them
        az, instance_type, lifecycle = LABELS[key]
        expected = {
            "swarmkeeper.az": az,
            "swarmkeeper.instance-type": instance_type,
            "swarmkeeper.lifecycle": lifecycle,
            "swarmkeeper.role": role,
        }
        assert _labels(lab, key) == expected
        seen_by_c = lab.docker(lab.c, "node", "inspect", "-f", "{{json .Spec.Labels}}", lab.ids[key])
        assert json.loads(seen_by_c) == expected


def test_verify_node_again_keeps_the_labels(lab: Lab):
    before = _labels(lab, "b")
    run = _verify(lab, "b", "worker")
    assert run.returncode == 0, run.stderr
    assert _labels(lab, "b") == before


def test_a_service_spreads_and_is_constrained_by_the_labels(lab: Lab):
    # When a service asks for on-demand nodes only, spread over Availability Zones
    name = "labelled"
    lab.docker(
        lab.a, "service", "create", "--detach", "--name", name, "--replicas", "2",
        "--endpoint-mode", "dnsrr", "--constraint", "node.labels.swarmkeeper.lifecycle==on-demand",
        "--placement-pref", "spread=node.labels.swarmkeeper.az", IMAGE, "sleep", "3600",
    )  # fmt: skip
    try:
        # Then its tasks run only on C, the one node labelled on-demand
        def running_nodes() -> list[str]:
            out = lab.docker(lab.a, "service", "ps", name, "--filter", "desired-state=running", "-q").split()
            states = [lab.docker(lab.a, "inspect", "-f", "{{.NodeID}} {{.Status.State}}", t) for t in out]
            return [s.split()[0] for s in states if s.endswith(" running")]

        _wait(lambda: len(running_nodes()) == 2, 60, "two running tasks")
        assert set(running_nodes()) == {lab.ids["c"]}
    finally:
        lab.docker(lab.a, "service", "rm", name)


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        ('echo "Error: rpc error: refused" >&2; exit 1', "cannot label node"),  # refused
        ("exit 0", "does not carry swarmkeeper.az=eu-west-1z"),  # said yes, changed nothing
    ],
    ids=["refused", "ignored"],
)
def test_verify_node_fails_with_the_reason_when_the_labels_cannot_be_set(lab: Lab, update: str, reason: str):
    # Given a docker client whose `docker node update` does not label (as a manager that lost the
    # swarm would), and a zone the node does not carry yet
    real = shutil.which("docker")
    shim = f'#!/bin/sh\n[ "$1 $2" = "node update" ] && {{ {update}; }}\nexec {real} "$@"\n'
    az, instance_type, lifecycle = LABELS["c"]

    # When verify-node runs
    run = lab.run(
        lab.a,
        "verify-node",
        shims={"docker": shim},
        NodeId=lab.ids["c"],
        Role="manager",
        AvailabilityZone="eu-west-1z",
        InstanceType=instance_type,
        Lifecycle=lifecycle,
        TimeoutSeconds="30",
    )

    # Then it fails, saying why, and no ready line is printed
    assert run.returncode == 1
    assert reason in run.stderr, run.stderr
    assert "state=ready" not in run.stdout
    assert _labels(lab, "c")["swarmkeeper.az"] == az


def test_verify_node_times_out_on_the_wrong_role(lab: Lab):
    run = _verify(lab, "b", "manager", timeout="2")
    assert run.returncode == 1
    assert "state=ready role=worker" in run.stderr


# --- describe-swarm --------------------------------------------------------------------------------


def test_describe_swarm_lists_every_node_compactly(lab: Lab):
    # Given stale manager addresses in Parameter Store
    lab.ssm.put_parameter(
        Name=f"{PARAMS}/manager-addresses", Value="10.99.7.99:2377", Type="String", Overwrite=True
    )

    run = lab.run(lab.c, "describe-swarm", ParameterPrefix=PARAMS, Region=REGION)

    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "nodes=3"
    assert lines[0] == "ports=0"  # no service publishes a port yet
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert set(rows) == {lab.ids[n] for n in "abc"}
    a, b, c = (rows[lab.ids[n]] for n in "abc")
    assert a[1:] == ["manager", "ready", "active", "leader", lab.a.ip, lab.a.hostname]
    assert b[1:] == ["worker", "ready", "active", "-", lab.b.ip, lab.b.hostname]
    assert c[1:] == ["manager", "ready", "active", "reachable", lab.c.ip, lab.c.hostname]
    assert sorted(lab.param("manager-addresses")["Value"].split(",")) == [
        f"{lab.a.ip}:2377",
        f"{lab.c.ip}:2377",
    ]


def test_describe_swarm_reports_published_ports_and_the_certificate_label(lab: Lab):
    # Given a host-mode service publishing two ports, one TCP with a hostile certificate label, and
    # a service publishing nothing
    label = "swarmkeeper.lb.certificate=$(reboot) x\nport evil tcp 22 22 host -"
    lab.docker(
        lab.a, "service", "create", "--detach", "--name", "edge", "--no-resolve-image",
        "--endpoint-mode", "dnsrr", "--label", label, "--stop-grace-period", "1s",
        "--publish", "mode=host,published=18080,target=80",
        "--publish", "mode=host,published=15353,target=53,protocol=udp",
        IMAGE, "sleep", "3600",
    )  # fmt: skip
    lab.docker(
        lab.a, "service", "create", "--detach", "--name", "quiet", "--no-resolve-image",
        "--endpoint-mode", "dnsrr", "--stop-grace-period", "1s", IMAGE, "sleep", "3600",
    )  # fmt: skip
    try:
        # When describe-swarm runs and the control plane reads it
        run = lab.run(lab.c, "describe-swarm", ParameterPrefix=PARAMS, Region=REGION)
        assert run.returncode == 0, run.stderr
        listing = parse_describe_swarm(run.stdout)
        # Then both ports are there with their mode, and the label stays one field
        assert listing.skipped_ports == () and listing.skipped == ()
        ports = sorted((p.service, p.protocol, p.published, p.target, p.mode) for p in listing.ports or ())
        assert ports == [("edge", "tcp", 18080, 80, "host"), ("edge", "udp", 15353, 53, "host")]
        assert {p.certificate for p in listing.ports or ()} == {"$(reboot) x\nport evil tcp 22 22 host -"}
        assert len(listing.nodes) == 3
    finally:
        lab.docker(lab.a, "service", "rm", "edge", "quiet")


# A line an old describe-swarm read as a leader at 6.6.6.6:1 (its awk took fields 5 and 6).
FORGED_LINE = "zzzzzzzzzzzzzzzzzzzzzzzzz w r a leader 6.6.6.6:1"


def set_dockerd_hostname(node: LabNode, hostname: str) -> None:
    """What the node says its hostname is: the nodename of dockerd's own UTS namespace. sethostname(2)
    takes any bytes, up to 64 (the hostname command refuses these, /proc/sys/kernel/hostname stops at
    a newline)."""
    script = "import socket, sys; socket.sethostname(sys.argv[1])"
    argv = ["nsenter", "--uts", f"--target={node.dockerd_pid}", sys.executable, "-c", script, hostname]
    subprocess.run(argv, check=True)


def test_a_hostname_cannot_steer_describe_swarm(lab: Lab):
    # Given worker D whose hostname holds a newline and a forged manager line, spaces and a percent
    hostname = "d 50%\n" + FORGED_LINE
    set_dockerd_hostname(lab.d, hostname)
    joined = lab.bootstrap(lab.d, "join", "worker")
    assert joined.returncode == 0, joined.stderr
    d_id = joined.result["node-id"]
    seen = lab.docker(lab.a, "node", "inspect", "-f", "{{json .Description.Hostname}}", d_id)
    assert json.loads(seen) == hostname
    try:
        # When describe-swarm runs and the control plane's parser reads its output
        run = lab.run(lab.c, "describe-swarm", ParameterPrefix=PARAMS, Region=REGION)
        assert run.returncode == 0, run.stderr
        listing = parse_describe_swarm(run.stdout)

        # Then each node is one line, nothing is skipped, and D's hostname comes back whole
        assert run.stdout.strip().splitlines()[-1] == "nodes=4"
        assert listing.skipped == ()
        assert sorted(n.node_id for n in listing.nodes) == sorted([*(lab.ids[n] for n in "abc"), d_id])
        d = next(n for n in listing.nodes if n.node_id == d_id)
        assert (d.role, d.address, d.hostname) == (Role.WORKER, lab.d.ip, hostname)
        # and manager-addresses holds the managers' raft addresses, nothing a node said
        assert sorted(lab.param("manager-addresses")["Value"].split(",")) == [
            f"{lab.a.ip}:2377",
            f"{lab.c.ip}:2377",
        ]
    finally:
        assert lab.run(lab.d, "leave-swarm").returncode == 0
        removed = lab.run(lab.a, "remove-node", NodeId=d_id, ParameterPrefix=PARAMS, Region=REGION)
        assert removed.returncode == 0, removed.stderr


# --- a failing docker command fails the document -------------------------------------------------

FAILING_DOCKER = """#!/bin/sh
case "$*" in *"%(match)s"*) echo "Error response from daemon: refused by the test: $*" >&2; exit 1 ;; esac
exec %(docker)s "$@"
"""


def docker_failing(match: str) -> dict[str, str]:
    """A docker that fails every command line holding ``match`` (else the real one)."""
    return {"docker": FAILING_DOCKER % {"match": match, "docker": shutil.which("docker")}}


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_describe_swarm_fails_when_the_raft_status_cannot_be_read(lab: Lab, shell: str):
    # Given docker node inspect of the managers' raft status fails (its output feeds awk)
    before = lab.param("manager-addresses")["Value"]
    shims = docker_failing("{{.Reachability}} {{.Addr}}")

    run = lab.run(lab.c, "describe-swarm", shell=shell, shims=shims, ParameterPrefix=PARAMS, Region=REGION)

    # Then the document fails with docker's reason and manager-addresses is left alone
    assert run.returncode == 1, run.stdout
    assert run.stderr.startswith("describe-swarm: docker node inspect failed: Error response from daemon")
    assert lab.param("manager-addresses")["Value"] == before


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_drain_node_fails_when_the_tasks_cannot_be_counted(lab: Lab, shell: str):
    # Given docker node ps fails while drain-node counts what still runs on B
    run = lab.run(
        lab.a,
        "drain-node",
        shell=shell,
        shims=docker_failing("node ps"),
        NodeId=lab.ids["b"],
        TimeoutSeconds="5",
    )
    lab.docker(lab.a, "node", "update", "--availability", "active", lab.ids["b"])

    # Then it fails with docker's reason, and never says that nothing is left
    assert run.returncode == 1, run.stdout
    assert run.stderr.startswith("drain-node: docker node ps failed: Error response from daemon")
    assert "tasks-remaining" not in run.stdout


# --- drain-node ------------------------------------------------------------------------------------


def _running_task_hosts(lab: Lab) -> list[str]:
    out = lab.docker(
        lab.a, "service", "ps", "web", "--filter", "desired-state=running", "--format", "{{.Node}}"
    )
    return out.split()


def _tasks_running(lab: Lab) -> list[str]:
    out = lab.docker(
        lab.a,
        "service",
        "ps",
        "web",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}} {{.CurrentState}}",
    )
    return [line.split()[0] for line in out.splitlines() if line.split()[1] == "Running"]


def test_drain_moves_service_tasks_off_the_node(lab: Lab):
    # Given a two-replica service with a task running on some node
    lab.docker(
        lab.a, "service", "create", "--detach", "--name", "web", "--replicas", "2",
        "--endpoint-mode", "dnsrr", "--no-resolve-image", "--stop-grace-period", "1s",
        IMAGE, "sleep", "3600",
    )  # fmt: skip
    _wait(lambda: len(_tasks_running(lab)) == 2, 60, "2 running web tasks")
    by_host = {n.hostname: (key, n) for key, n in (("a", lab.a), ("b", lab.b), ("c", lab.c))}
    key, target = by_host[_tasks_running(lab)[0]]

    # When the node is drained
    run = lab.run(lab.a, "drain-node", NodeId=lab.ids[key], TimeoutSeconds="60")
    lab.timings["drain-node"] = run.seconds

    # Then no task stays on it and the service runs its two tasks elsewhere
    assert run.returncode == 0, run.stderr
    assert run.result == {"node-id": lab.ids[key], "tasks-remaining": "0"}
    _wait(lambda: len(_tasks_running(lab)) == 2, 60, "2 web tasks running again")
    assert target.hostname not in _running_task_hosts(lab)
    assert lab.docker(lab.a, "node", "inspect", "-f", "{{.Spec.Availability}}", lab.ids[key]) == "drain"
    lab.docker(lab.a, "node", "update", "--availability", "active", lab.ids[key])


def test_drain_of_an_unknown_node_has_nothing_to_do(lab: Lab):
    run = lab.run(lab.a, "drain-node", NodeId="z" * 25, TimeoutSeconds="5")
    assert run.returncode == 0, run.stderr
    assert run.result == {"node-id": "z" * 25, "tasks-remaining": "0", "missing": "true"}


# --- leave-swarm, rotate-tokens --------------------------------------------------------------------


def test_leave_swarm_then_again(lab: Lab):
    # When worker B leaves, twice
    first = lab.run(lab.b, "leave-swarm")
    second = lab.run(lab.b, "leave-swarm")

    # Then it is out of the swarm and the second run is a no-op success
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.result == second.result == {"left": "true"}
    assert lab.docker(lab.b, "info", "-f", "{{.Swarm.LocalNodeState}}") == "inactive"
    # and the managers can remove its old entry (twice: already gone counts as removed)
    for _ in range(2):
        run = lab.run(lab.a, "remove-node", NodeId=lab.ids["b"], ParameterPrefix=PARAMS, Region=REGION)
        assert run.returncode == 0, run.stderr
        assert run.result == {"node-id": lab.ids["b"], "removed": "true"}


def test_rotate_tokens_and_the_old_worker_token_is_refused(lab: Lab):
    # Given the published tokens
    old = {role: lab.param(f"join-token/{role}")["Value"] for role in ("worker", "manager")}

    # When the tokens are rotated
    run = lab.run(lab.c, "rotate-tokens", ParameterPrefix=PARAMS, KmsKeyId=KMS_ALIAS, Region=REGION)

    # Then both changed, match the swarm, and stay SecureStrings
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "rotated=worker,manager"
    new = {role: lab.param(f"join-token/{role}") for role in ("worker", "manager")}
    for role in ("worker", "manager"):
        assert new[role]["Type"] == "SecureString"
        assert new[role]["Value"] != old[role]
        assert new[role]["Value"] == lab.docker(lab.a, "swarm", "join-token", "-q", role)

    # When B tries to join with the old worker token
    lab.ssm.put_parameter(
        Name=f"{PARAMS}/join-token/worker",
        Value=old["worker"],
        Type="SecureString",
        KeyId=KMS_ALIAS,
        Overwrite=True,
    )
    refused = lab.bootstrap(lab.b, "join", "worker")
    # Then the swarm refuses it, with a one-line reason
    assert refused.returncode != 0
    assert "refused" in refused.stderr and "join token" in refused.stderr
    assert lab.docker(lab.b, "info", "-f", "{{.Swarm.LocalNodeState}}") == "inactive"

    # And with the new token it gets in
    lab.ssm.put_parameter(
        Name=f"{PARAMS}/join-token/worker",
        Value=new["worker"]["Value"],
        Type="SecureString",
        KeyId=KMS_ALIAS,
        Overwrite=True,
    )
    joined = lab.bootstrap(lab.b, "join", "worker")
    assert joined.returncode == 0, joined.stderr
    lab.ids["b"] = joined.result["node-id"]


# --- remove-node -----------------------------------------------------------------------------------


def test_remove_a_killed_node(lab: Lab):
    # Given B runs a task, then its dockerd dies
    lab.docker(lab.a, "service", "scale", "--detach", "web=3")
    _wait(lambda: len(_tasks_running(lab)) == 3, 60, "3 running web tasks")
    lab.b.kill_dockerd()

    # When the managers remove it
    run = lab.run(lab.a, "remove-node", NodeId=lab.ids["b"], ParameterPrefix=PARAMS, Region=REGION)

    # Then it is gone and its task is rescheduled
    assert run.returncode == 0, run.stderr
    assert run.result == {"node-id": lab.ids["b"], "removed": "true"}
    assert lab.ids["b"] not in lab.docker(lab.a, "node", "ls", "-q").split()
    _wait(lambda: len(_tasks_running(lab)) == 3, 60, "3 web tasks running on A and C")


def test_remove_a_manager_demotes_it_first(lab: Lab):
    # When manager C is removed from A
    run = lab.run(lab.a, "remove-node", NodeId=lab.ids["c"], ParameterPrefix=PARAMS, Region=REGION)

    # Then it is gone, A is the only manager and the published addresses say so
    assert run.returncode == 0, run.stderr
    assert run.result == {"node-id": lab.ids["c"], "removed": "true"}
    assert lab.docker(lab.a, "node", "ls", "-q").split() == [lab.ids["a"]]
    assert lab.param("manager-addresses")["Value"] == f"{lab.a.ip}:2377"
    # and C can still leave whatever it thinks it is in
    left = lab.run(lab.c, "leave-swarm")
    assert left.returncode == 0, left.stderr
    assert lab.docker(lab.c, "info", "-f", "{{.Swarm.LocalNodeState}}") == "inactive"


def test_join_falls_through_to_a_manager_that_answers(lab: Lab):
    # Given published manager addresses whose entry C tries first is dead (an address nobody has);
    # a node starts at the entry (sum of its address's last two octets) mod the number of entries
    third, fourth = (int(x) for x in lab.c.ip.split(".")[2:])
    addrs = [f"{lab.a.ip}:2377"]
    addrs.insert((third + fourth) % 2, "10.99.7.99:2377")
    dead_first = ",".join(addrs)
    lab.ssm.put_parameter(Name=f"{PARAMS}/manager-addresses", Value=dead_first, Type="String", Overwrite=True)

    # When C (out of the swarm now) joins as a worker
    run = lab.bootstrap(lab.c, "join", "worker")
    lab.timings["join past a dead manager"] = run.seconds

    # Then it got in through A, and said why the first address failed
    assert run.returncode == 0, run.stderr
    assert run.result["role"] == "worker"
    assert run.result["cluster-id"] == lab.ids["cluster"]
    assert "10.99.7.99:2377" in run.stderr
    assert len(lab.docker(lab.a, "node", "ls", "-q").split()) == 2
