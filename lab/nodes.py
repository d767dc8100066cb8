"""Real lab nodes: one ``dockerd`` per simulated EC2 instance, each in its own network namespace.

    with LabNetwork() as net:                 # bridge skbr0 = 10.99.0.1/24, forward rules
        a = net.add_node("ip-10-99-0-11", "10.99.0.11")
        a.start_dockerd()
        a.docker("swarm", "init", "--advertise-addr", a.ip)

Isolation (see /work/shared/LAB-NOTES.md): a node namespace has only its on-link subnet route (no
default route, IPv6 off), so it cannot address anything off the lab subnet; the bridge has an address
(the embedded AWS endpoint listens there, delivered locally) and iptables drops whatever would be
forwarded from the bridge to another interface. The DROP rule exists before the first node starts.

Teardown leaves nothing behind: dockerd gets SIGTERM and is waited for (it stops its containers), then
whatever is left of the processes it started (containerd, shims, container processes: found under the
node's own directories, never by name) gets SIGKILL, mounts under the node's directories are detached
deepest first, then the cgroups, veth, namespace and directories go. ``lab.host.leftovers()`` lists
anything of a lab still present; ``lab.host.cleanup()`` removes what a crashed run left. While a
network is up, SIGTERM exits through Python so teardown still runs; an atexit hook downs any network
left up.

Names of a lab ``prefix`` (1-8 of [a-z0-9]; "sk" by default; give tests their own): namespaces
``<prefix>-<node>``, bridge ``<prefix>br*``, veths ``<prefix>v|p<4 hex>``, iptables comment
``swarmkeeper-lab:<prefix>``, directories /tmp/swarmkeeper-lab/<prefix>/<node>, cgroups
``/swarmkeeper-lab-<prefix>/<node>``. Two labs with different prefixes and subnets can run side by side.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

from lab.host import (
    LAB_ROOT,
    NETNS_DIR,
    LabError,
    cgroup_name,
    delete_iptables_rules,
    iptables_tag,
    kill_all,
    lab_root,
    leftovers,
    mounts_under,
    processes_under,
    remove_cgroups,
    remove_shim_sockets,
    sh,
    unmount_under,
)

BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = (
    "sh", "sleep", "cat", "echo", "ls", "ps", "ping", "hostname", "ip", "wget", "nc", "env", "true",
    "false", "test", "mkdir", "rm", "date", "top", "kill",
)  # fmt: skip
# Created on the host by `ip netns add` (a bind mount), containerd shims (sockets in /run/containerd/s),
# dockerd (plugin discovery dir) and umount (libmount's utab dir); listed deepest first.
_SIDE_EFFECT_DIRS = (
    NETNS_DIR,
    Path("/run/containerd/s"),
    Path("/run/containerd"),
    Path("/run/docker/plugins"),
    Path("/run/docker"),
    Path("/run/mount"),
)
_COMMANDS = ("ip", "iptables", "nsenter", "unshare", "dockerd", "docker", "umount", "hostname")


def _bridge_mac(prefix: str, bridge: str) -> str:
    """A locally administered unicast address, stable for one lab's prefix and bridge."""
    digest = hashlib.sha1(f"{prefix}/{bridge}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def _short_dir_name(name: str) -> str:
    """Node directory name: unix socket paths (108 bytes) must fit below it."""
    safe = "".join(c if c.isalnum() or c in ".-_" else "-" for c in name)
    if len(safe) <= 32:
        return safe
    return f"{safe[:23]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


# --- the network -----------------------------------------------------------------------------------


class LabNetwork:
    """One bridge, its subnet and the forward rules; owns its nodes."""

    def __init__(self, subnet: str = "10.99.0.0/24", bridge: str = "skbr0", prefix: str = "sk"):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", prefix):
            raise ValueError(f"prefix {prefix!r}: 1-8 lowercase letters and digits")
        if not re.fullmatch(rf"{prefix}br[A-Za-z0-9_]*", bridge) or len(bridge) > 15:
            raise ValueError(f"bridge {bridge!r} must be {prefix}br<suffix>, at most 15 characters")
        self.subnet = ipaddress.IPv4Network(subnet)
        self.bridge = bridge
        self.prefix = prefix
        self.gateway_ip = str(next(self.subnet.hosts()))
        self.root = lab_root(prefix)
        self._nodes: dict[str, LabNode] = {}
        self._is_up = False
        self._lock = threading.Lock()
        self._created_dirs: list[Path] = []

    @property
    def nodes(self) -> dict[str, LabNode]:
        return dict(self._nodes)

    def __enter__(self) -> LabNetwork:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def _check_preconditions(self) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, iptables, dockerd)")
        missing = [c for c in _COMMANDS if not shutil.which(c)]
        if missing:
            raise LabError(f"missing commands: {', '.join(missing)}")
        if self.subnet.prefixlen > 30:
            raise LabError(f"subnet {self.subnet} is too small")
        routes = json.loads(sh(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]")
        for route in routes:
            dst = route.get("dst", "")
            if dst in ("default", "") or route.get("type") in ("local", "broadcast"):
                continue
            with contextlib.suppress(ValueError):
                if ipaddress.IPv4Network(dst, strict=False).overlaps(self.subnet):
                    raise LabError(f"lab subnet {self.subnet} overlaps route {dst} on this machine")
        if stale := leftovers(self.prefix):
            raise LabError(
                "a previous lab run left things behind; remove them with "
                f"`python -c 'import lab.host as h; h.cleanup({self.prefix!r})'`: {stale}"
            )

    def up(self) -> None:
        if self._is_up:
            return
        self._check_preconditions()
        # Host directories the tools create as a side effect; removed at down() when we created them.
        self._created_dirs = [d for d in _SIDE_EFFECT_DIRS if not d.exists()]
        _REGISTRY.add(self)
        _sigterm_tears_down(True)
        self._is_up = True
        try:
            tag = ["-m", "comment", "--comment", iptables_tag(self.prefix)]
            br = self.bridge
            # Isolation first: nothing forwarded between the bridge and any other interface.
            sh(["iptables", "-w", "-I", "FORWARD", "1", "-i", br, "!", "-o", br, *tag, "-j", "DROP"])
            sh(["iptables", "-w", "-I", "FORWARD", "1", "-o", br, "!", "-i", br, *tag, "-j", "DROP"])
            sh(["iptables", "-w", "-I", "FORWARD", "1", "-i", br, "-o", br, *tag, "-j", "ACCEPT"])
            # A fixed address: a bridge whose address was never set takes the lowest address of its
            # ports and changes it whenever a node's veth comes or goes; the nodes' cached neighbour
            # entry for the gateway (the embedded AWS endpoint) then points nowhere and their calls to
            # it stall until the entry is re-resolved (SYNs lost for many seconds).
            sh(["ip", "link", "add", br, "address", _bridge_mac(self.prefix, br), "type", "bridge"])
            sh(["sysctl", "-qw", f"net.ipv6.conf.{br}.disable_ipv6=1"], check=False)
            sh(["ip", "addr", "add", f"{self.gateway_ip}/{self.subnet.prefixlen}", "dev", br])
            sh(["ip", "link", "set", br, "up"])
            self.root.mkdir(parents=True, exist_ok=True)
        except BaseException:
            self.down()
            raise

    def add_node(self, name: str, ip: str, hostname: str | None = None) -> LabNode:
        if not self._is_up:
            raise LabError("call up() first")
        addr = ipaddress.IPv4Address(ip)
        if addr not in self.subnet or str(addr) == self.gateway_ip or addr == self.subnet.broadcast_address:
            raise ValueError(f"{ip} is not a free host address of {self.subnet}")
        with self._lock:
            if name in self._nodes:
                raise ValueError(f"node {name!r} exists")
            if any(n.ip == str(addr) for n in self._nodes.values()):
                raise ValueError(f"address {ip} is taken")
            node = LabNode(self, name, str(addr), hostname or name)
            self._nodes[name] = node
        try:
            node._create()
        except BaseException:
            node.destroy()
            raise
        return node

    def remove_node(self, name: str) -> None:
        """Destroy one node (its dockerd, namespace and directories)."""
        node = self._nodes.get(name)
        if node is not None:
            node.destroy()

    def _forget(self, node: LabNode) -> None:
        with self._lock:
            if self._nodes.get(node.name) is node:
                del self._nodes[node.name]

    def down(self) -> None:
        """Destroy every node, then the bridge, the rules and the lab directory. Idempotent."""
        if not self._is_up and not self._nodes:
            return  # never up (or already down): what carries this prefix belongs to someone else
        errors = _destroy_nodes(list(self._nodes.values()))
        sh(["ip", "link", "delete", self.bridge], check=False)
        delete_iptables_rules(self.prefix)
        remove_cgroups(self.prefix)
        with contextlib.suppress(LabError):
            unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            LAB_ROOT.rmdir()
        for d in self._created_dirs:  # deepest first (see _SIDE_EFFECT_DIRS)
            if d == NETNS_DIR and d.exists() and not any(d.iterdir()):
                sh(["umount", str(d)], check=False)  # `ip netns add` bind-mounts it on itself
            with contextlib.suppress(OSError):
                d.rmdir()
        self._is_up = False
        _REGISTRY.discard(self)
        if not _REGISTRY:
            _sigterm_tears_down(False)
        if errors:
            raise LabError(f"teardown errors: {errors}")


# --- a node ----------------------------------------------------------------------------------------


class LabNode:
    """One simulated instance: a network namespace with eth0 on the lab bridge, and its own dockerd."""

    def __init__(self, network: LabNetwork, name: str, ip: str, hostname: str):
        self.network = network
        self.name = name
        self.ip = ip
        self.hostname = hostname
        self.netns = f"{network.prefix}-{_short_dir_name(name)}"
        self.root_dir = network.root / _short_dir_name(name)
        self.data_root = self.root_dir / "data"
        self.exec_root = self.root_dir / "exec"
        self.home = self.root_dir / "home"
        # the documents' scratch directories (SWARMKEEPER_RUN_DIR), removed with the node, instead of
        # this machine's /run/swarmkeeper
        self.run_dir = self.root_dir / "run"
        self.log_path = self.root_dir / "dockerd.log"
        self.docker_host = f"unix://{self.root_dir}/docker.sock"
        self.cgroup_parent = f"/{cgroup_name(network.prefix)}/{_short_dir_name(name)}"
        self.dockerd_args: list[str] = []  # extra flags for start_dockerd
        suffix = f"{int(ipaddress.IPv4Address(ip)) & 0xFFFF:04x}"
        self._veth = f"{network.prefix}v{suffix}"
        self._peer = f"{network.prefix}p{suffix}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._destroyed = False
        if len(f"{self.exec_root}/containerd/containerd.sock.ttrpc") > 100:
            raise ValueError(f"node directory {self.root_dir} is too long for unix socket paths")

    def __repr__(self) -> str:
        return f"LabNode({self.name!r}, {self.ip!r})"

    @property
    def netns_path(self) -> str:
        return str(NETNS_DIR / self.netns)

    @property
    def dockerd_pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def _create(self) -> None:
        self.root_dir.mkdir(parents=True, exist_ok=False)
        self.home.mkdir()
        sh(["ip", "netns", "add", self.netns])
        sh(["ip", "link", "add", self._veth, "type", "veth", "peer", "name", self._peer])
        sh(["sysctl", "-qw", f"net.ipv6.conf.{self._veth}.disable_ipv6=1"], check=False)
        sh(["ip", "link", "set", self._peer, "netns", self.netns])
        sh(["ip", "link", "set", self._veth, "master", self.network.bridge, "up"])
        ns = ["nsenter", f"--net={self.netns_path}"]
        for key in ("all", "default"):
            sh([*ns, "sysctl", "-qw", f"net.ipv6.conf.{key}.disable_ipv6=1"], check=False)
        sh([*ns, "ip", "link", "set", self._peer, "name", "eth0"])
        prefixlen = self.network.subnet.prefixlen
        sh([*ns, "ip", "addr", "add", f"{self.ip}/{prefixlen}", "dev", "eth0"])
        sh([*ns, "ip", "link", "set", "eth0", "up"])
        sh([*ns, "ip", "link", "set", "lo", "up"])
        routes = sh([*ns, "ip", "-4", "route", "show"]).stdout
        if "default" in routes:
            raise LabError(f"node {self.name} has a default route: {routes}")

    def _env(self, env: dict[str, str] | None) -> dict[str, str]:
        base = {
            "PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "DOCKER_HOST": self.docker_host,
            "DOCKER_CONFIG": str(self.home / ".docker"),
            # The file this node's dockerd reads (bootstrap-node edits it, never this machine's
            # /etc/docker/daemon.json, and leaves a dockerd started by the lab to the lab).
            "DOCKERD_CONFIG_FILE": str(self.root_dir / "daemon.json"),
        }
        return {**base, **(env or {})}

    def _in_node(self, argv: list[str]) -> list[str]:
        # nsenter --net (not `ip netns exec`, which remounts /sys) + own UTS namespace for the hostname.
        return [
            "nsenter", f"--net={self.netns_path}", "unshare", "--uts",
            "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname, *argv,
        ]  # fmt: skip

    # -- dockerd --

    def start_dockerd(self, wait: bool = True, timeout: float = 30) -> None:
        if self._destroyed:
            raise LabError(f"node {self.name} is destroyed")
        if self.dockerd_pid is not None:
            return
        self.data_root.mkdir(exist_ok=True)
        self.exec_root.mkdir(exist_ok=True)
        tmp = self.root_dir / "tmp"
        tmp.mkdir(exist_ok=True)
        config = self.root_dir / "daemon.json"
        # Never read this machine's /etc/docker/daemon.json, never write /etc/docker/key.json.
        config.write_text(json.dumps({"deprecated-key-path": str(self.root_dir / "key.json")}) + "\n")
        argv = [
            "dockerd",
            f"--config-file={config}",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--host={self.docker_host}",
            f"--pidfile={self.root_dir / 'docker.pid'}",
            f"--cgroup-parent={self.cgroup_parent}",
            "--userland-proxy=false",
            *self.dockerd_args,
        ]
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self._in_node(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # TMPDIR: containerd writes stack dumps there when dockerd restarts it (busy machine).
                env=self._env({"TMPDIR": str(tmp)}),
                start_new_session=True,  # Ctrl-C reaches the harness, which tears down in order
            )
        finally:
            log.close()
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30) -> None:
        """Until the daemon answers /_ping on its socket."""
        deadline = time.monotonic() + timeout
        sock_path = self.docker_host.removeprefix("unix://")
        while True:
            if self._proc is None or self._proc.poll() is not None:
                raise LabError(f"dockerd of {self.name} exited; log:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(sock_path)
                s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                if b" 200 " in s.recv(4096).split(b"\r\n", 1)[0] + b" ":
                    return
            if time.monotonic() > deadline:
                raise LabError(f"dockerd of {self.name} not ready after {timeout}s; log:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def kill_dockerd(self) -> None:
        """SIGKILL dockerd: a crash. Its containerd, shims and containers are left to destroy()."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._proc.send_signal(signal.SIGKILL)
        self._proc.wait()

    def stop_dockerd(self, timeout: float = 30) -> None:
        """SIGTERM and wait (dockerd stops its containers), SIGKILL what is left of what it started,
        unmount everything under the node's directories. Safe when dockerd is not running."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None
        leftover = processes_under(self.root_dir)
        kill_all(leftover)
        remove_shim_sockets(leftover)
        unmount_under(self.root_dir)
        remove_cgroups(self.network.prefix, _short_dir_name(self.name))

    # -- commands --

    def run(
        self,
        argv: list[str],
        env: dict[str, str] | None = None,
        timeout: float = 120,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the node (its network namespace and hostname) with DOCKER_HOST set.
        The environment is minimal (PATH, HOME=<node>/home, DOCKER_HOST) plus ``env``."""
        return _run_group(self._in_node(argv), self._env(env), timeout, stdin)

    def docker(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``docker -H <this node> args`` (the client needs only the socket, so it runs outside)."""
        return _run_group(["docker", "-H", self.docker_host, *args], self._env(None), timeout, None)

    def destroy(self) -> None:
        """Stop dockerd, clean up after it, remove veth, namespace and directories. Idempotent."""
        try:
            self.stop_dockerd()
        finally:
            if NETNS_DIR.joinpath(self.netns).exists():
                sh(["ip", "netns", "delete", self.netns], check=False)
            sh(["ip", "link", "delete", self._veth], check=False)
            if not mounts_under(self.root_dir):
                shutil.rmtree(self.root_dir, ignore_errors=True)
            self._destroyed = True
            self.network._forget(self)


def _destroy_nodes(nodes: list[LabNode]) -> list[BaseException]:
    """Destroy nodes in parallel (each dockerd takes seconds to stop); sequentially when threads cannot
    start any more (atexit at interpreter shutdown). Returns the errors; never stops half-way."""
    errors: list[BaseException] = []

    def destroy(node: LabNode) -> None:
        try:
            node.destroy()
        except Exception as exc:  # keep tearing down; report at the end
            errors.append(exc)

    threads: list[threading.Thread] = []
    for node in nodes:
        thread = threading.Thread(target=destroy, args=(node,), name=f"destroy-{node.name}")
        try:
            thread.start()
        except RuntimeError:
            destroy(node)
        else:
            threads.append(thread)
    for thread in threads:
        thread.join()
    return errors


def _run_group(
    argv: list[str], env: dict[str, str], timeout: float, stdin: str | None
) -> subprocess.CompletedProcess[str]:
    """subprocess.run, but a timeout or Ctrl-C kills the whole process group it started."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


# --- images without a registry ---------------------------------------------------------------------


def _busybox_tarball(directory: Path) -> Path:
    if not BUSYBOX.is_file():
        raise LabError(f"{BUSYBOX} missing (apt-get install busybox-static)")
    path = directory / "busybox-rootfs.tar"
    if path.exists():
        return path
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    with tarfile.open(tmp, "w") as tar:
        for d in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(info)
    tmp.replace(path)
    return path


def load_image(node: LabNode, tag: str = "swarmkeeper/busybox:lab") -> None:
    """Give ``node`` a static-busybox image named ``tag`` (docker import; no registry involved)."""
    tarball = _busybox_tarball(node.network.root)
    proc = node.docker("import", "--change", "ENV PATH=/bin", "--change", 'CMD ["sh"]', str(tarball), tag)
    if proc.returncode != 0:
        raise LabError(f"docker import on {node.name} failed: {proc.stderr.strip()}")


# --- safety net ------------------------------------------------------------------------------------

_REGISTRY: set[LabNetwork] = set()


_PREVIOUS_SIGTERM: list = []


def _sigterm_tears_down(on: bool) -> None:
    """While a lab is up, SIGTERM exits through Python (finally blocks, fixtures, atexit) instead of
    killing the process with its nodes still running. Only from the main thread, only over SIG_DFL."""
    if threading.current_thread() is not threading.main_thread():
        return
    if on and not _PREVIOUS_SIGTERM and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        _PREVIOUS_SIGTERM.append(signal.SIG_DFL)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    elif not on and _PREVIOUS_SIGTERM:
        signal.signal(signal.SIGTERM, _PREVIOUS_SIGTERM.pop())


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@atexit.register
def _down_all() -> None:
    for net in list(_REGISTRY):
        with contextlib.suppress(Exception):
            net.down()
