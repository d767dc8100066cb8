"""What a lab puts on this machine, found by its names and paths only (never by a process name):
processes and mounts under its directories, cgroups, iptables rules, namespaces and links;
``leftovers()`` lists what is still there, ``cleanup()`` removes what a crashed run left."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

LAB_ROOT = Path("/tmp/swarmkeeper-lab")
NETNS_DIR = Path("/run/netns")
SCRATCH_ROOT = Path("/run/swarmkeeper")  # the documents' scratch directories on a real instance
CGROUP_ROOT = Path("/sys/fs/cgroup")


class LabError(RuntimeError):
    """The lab could not do what was asked (a precondition, a command, a daemon)."""


def sh(argv: list[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise LabError(f"{shlex.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def lab_root(prefix: str) -> Path:
    return LAB_ROOT / prefix


def cgroup_name(prefix: str) -> str:
    return f"swarmkeeper-lab-{prefix}"


def iptables_tag(prefix: str) -> str:
    return f"swarmkeeper-lab:{prefix}"


# --- processes and mounts, found by path (never by name) -------------------------------------------


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, cmdline) of every process."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        table[int(entry.name)] = (ppid, cmdline.strip())
    return table


def processes_under(root: Path) -> list[tuple[int, str]]:
    """Processes whose command line names a path under ``root`` (dockerd, containerd, shims) and all
    their descendants (container processes), deepest first."""
    table = _proc_table()
    marker = str(root).rstrip("/") + "/"
    own = {pid for pid, (_, cmd) in table.items() if marker in cmd + "/" and pid != os.getpid()}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    ordered: list[int] = []
    seen: set[int] = set()

    def visit(pid: int) -> None:
        if pid in seen:
            return
        seen.add(pid)
        for child in children.get(pid, []):
            visit(child)
        ordered.append(pid)  # post-order: descendants before their parent

    for pid in sorted(own):
        visit(pid)
    return [(pid, table[pid][1]) for pid in ordered if pid in table]


def kill_all(procs: list[tuple[int, str]], wait: float = 10) -> None:
    for pid, _ in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    for pid, _ in procs:
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child
            if is_zombie(pid):
                break
            time.sleep(0.05)


def remove_shim_sockets(procs: list[tuple[int, str]]) -> None:
    """A SIGKILLed containerd shim leaves its socket in /run/containerd/s/<sha256(address/ns/id)>."""
    for _, cmd in procs:
        args = cmd.split()
        if not args or "containerd-shim" not in args[0]:
            continue
        opts = dict(zip(args[1::2], args[2::2], strict=False))
        if {"-namespace", "-id", "-address"} <= opts.keys():
            key = f"{opts['-address']}/{opts['-namespace']}/{opts['-id']}"
            sock = Path("/run/containerd/s") / hashlib.sha256(key.encode()).hexdigest()
            with contextlib.suppress(OSError):
                sock.unlink()


def is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def _unescape_mount(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mounts_under(root: Path) -> list[str]:
    marker = str(root).rstrip("/")
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape_mount(line.split()[4])
        if point == marker or point.startswith(marker + "/"):
            found.append(point)
    return found


def unmount_under(root: Path) -> None:
    for _ in range(5):  # stacked mounts: repeat until nothing is left
        points = mounts_under(root)
        if not points:
            return
        for point in sorted(set(points), key=lambda p: (p.count("/"), p), reverse=True):
            sh(["umount", "-l", point], check=False)
    if left := mounts_under(root):
        raise LabError(f"mounts still present under {root}: {left}")


def cgroup_dirs(prefix: str) -> list[Path]:
    if not CGROUP_ROOT.is_dir():
        return []
    name = cgroup_name(prefix)
    found = []
    for controller in CGROUP_ROOT.iterdir():
        for candidate in (controller / name, controller / "unified" / name):
            if candidate.is_dir():
                found.append(candidate)
    return found


def remove_cgroups(prefix: str, sub: str | None = None) -> None:
    for top in cgroup_dirs(prefix):
        base = top / sub if sub else top
        if not base.is_dir():
            continue
        dirs = [Path(d) for d, _, _ in os.walk(base)]
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()


def iptables_rules(prefix: str) -> list[str]:
    if not shutil.which("iptables"):
        return []
    out = sh(["iptables", "-w", "-S", "FORWARD"], check=False).stdout
    # The exact tag: prefix "sk" must not match the rules of a lab "skd".
    tag = re.compile(rf'--comment "?{re.escape(iptables_tag(prefix))}"?(\s|$)')
    return [line for line in out.splitlines() if tag.search(line)]


def delete_iptables_rules(prefix: str) -> None:
    for rule in iptables_rules(prefix):
        args = shlex.split(rule)
        if args and args[0] == "-A":
            sh(["iptables", "-w", "-D", *args[1:]], check=False)


def netns_names(prefix: str) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix + "-"))


def links(prefix: str) -> list[str]:
    """The lab's bridge (<prefix>br...) and veths (<prefix>v|p + 4 hex digits), not another prefix's."""
    out = sh(["ip", "-j", "link", "show"], check=False).stdout or "[]"
    ours = re.compile(rf"{re.escape(prefix)}(br[A-Za-z0-9_]*|[vp][0-9a-f]{{4}})")
    return sorted(link["ifname"] for link in json.loads(out) if ours.fullmatch(link["ifname"]))


def leftovers(prefix: str = "sk") -> list[str]:
    """Anything of the lab ``prefix`` still present on this machine; [] when clean."""
    root = lab_root(prefix)
    found = [f"netns {n}" for n in netns_names(prefix)]
    found += [f"link {n}" for n in links(prefix)]
    found += [f"iptables {r}" for r in iptables_rules(prefix)]
    found += [f"process {pid}: {cmd[:160]}" for pid, cmd in processes_under(root) if not is_zombie(pid)]
    found += [f"mount {m}" for m in mounts_under(root)]
    found += [f"cgroup {d}" for d in cgroup_dirs(prefix)]
    if root.exists():
        found.append(f"directory {root}")
    if SCRATCH_ROOT.exists():  # a document run outside the lab's nodes (no SWARMKEEPER_RUN_DIR)
        found.append(f"directory {SCRATCH_ROOT}")
    return found


def cleanup(prefix: str = "sk") -> list[str]:
    """Remove whatever a crashed lab run ``prefix`` left (found by its names and paths only).
    Returns what it found."""
    found = leftovers(prefix)
    root = lab_root(prefix)
    kill_all(processes_under(root))
    unmount_under(root)
    remove_cgroups(prefix)
    for name in netns_names(prefix):
        sh(["ip", "netns", "delete", name], check=False)
    for link in links(prefix):
        sh(["ip", "link", "delete", link], check=False)
    delete_iptables_rules(prefix)
    shutil.rmtree(root, ignore_errors=True)
    with contextlib.suppress(OSError):
        LAB_ROOT.rmdir()
    with contextlib.suppress(OSError):
        SCRATCH_ROOT.rmdir()  # only when empty: a real run's scratch files are not the lab's to delete
    return found
