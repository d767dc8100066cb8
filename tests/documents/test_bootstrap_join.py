"""bootstrap-node's join loop, run whole under POSIX sh (dash) against a scripted fake ``docker``,
``curl``, ``aws`` and ``sleep``: what it does when dockerd answers a join with "continues in the
background" (HTTP 503 after its ~20 s), when a join really fails, and which manager it asks first.

No lab needed: the fakes play a dockerd whose LocalNodeState goes through a scripted list of states.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.documents import parse_result, render_commands

FAKE_TOKEN = "SWMTKN-1-" + "a1" * 25 + "-" + "b" * 25
NODE_ID = "n" * 25
CLUSTER_ID = "c" * 25
TIMEOUT_503 = (
    '503 {"message":"Timeout was reached before node joined. The attempt to join the swarm will continue '
    'in the background. Use the \\"docker info\\" command to see the current swarm status of your node."}'
)

# Each call is logged one line to $S/log. LocalNodeState answers come from $S/states one per query,
# the last one repeating; a join's answers come from $S/joins one per call ("<http code> <body>").
FAKE_DOCKER = r"""#!/bin/sh
echo "docker $*" >>"$S/log"
pop_state() {
	head -n 1 "$S/states"
	[ "$(wc -l <"$S/states")" -le 1 ] && return 0
	sed 1d "$S/states" >"$S/states.t" && mv "$S/states.t" "$S/states"
}
case "$*" in
"info") exit 0 ;;
*"info -f {{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}") echo "$(pop_state) false" ;;
*"info -f {{.Swarm.NodeID}}") echo "$NODE_ID" ;;
*"info -f {{if .Swarm.ControlAvailable}}"*) echo worker ;;
*"info -f {{with .Swarm.Cluster}}{{.ID}}{{end}}") echo "$CLUSTER_ID" ;;
"swarm leave --force") echo inactive >"$S/states" ;;
*) echo "fake docker: unexpected $*" >&2; exit 2 ;;
esac
"""

FAKE_CURL = r"""#!/bin/sh
printf '%s\n' "$@" >>"$S/curl-argv"
out= data=
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out=$2; shift ;;
	--data-binary) data=$2; shift ;;
	esac
	shift
done
[ "$data" = @- ] || { echo "fake curl: the request is not read from stdin" >&2; exit 2; }
request=$(cat)
case "$request" in
*"\"JoinToken\": \"$TOKEN\""*) ;;
*) echo "fake curl: no token in the request" >&2; exit 2 ;;
esac
addr=$(printf '%s' "$request" | sed 's/.*"RemoteAddrs": \["\([^"]*\)"\].*/\1/')
echo "join $addr" >>"$S/log"
answer=$(head -n 1 "$S/joins")
sed 1d "$S/joins" >"$S/joins.t" && mv "$S/joins.t" "$S/joins"
code=${answer%% *}
printf '%s' "${answer#* }" >"$out"
[ "$code" != 200 ] || echo active >"$S/states"
printf '%s' "$code"
"""

FAKE_AWS = r"""#!/bin/sh
case "$*" in
*join-token/*) echo "$TOKEN" ;;
*manager-addresses*) echo "$ADDRS" ;;
*) echo "fake aws: unexpected $*" >&2; exit 2 ;;
esac
"""

FAKE_SLEEP = r"""#!/bin/sh
echo "sleep $*" >>"$S/log"
"""

MANAGERS = ["10.0.1.10:2377", "10.0.2.20:2377", "10.0.3.30:2377"]


def _bootstrap(tmp_path: Path, states: list[str], joins: list[str], address: str = "10.0.9.0"):
    """Runs the rendered bootstrap-node document (join, worker) with the fakes; returns the process
    and the fakes' log (one line per docker/join/sleep call)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (
        ("docker", FAKE_DOCKER),
        ("curl", FAKE_CURL),
        ("aws", FAKE_AWS),
        ("sleep", FAKE_SLEEP),
    ):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "states").write_text("".join(f"{s}\n" for s in states))
    (tmp_path / "joins").write_text("".join(f"{j}\n" for j in joins))
    (tmp_path / "log").write_text("")
    script = tmp_path / "bootstrap.sh"
    script.write_text(
        render_commands(
            "bootstrap-node",
            {
                "Role": "worker",
                "Mode": "join",
                "AdvertiseAddress": address,
                "ParameterPrefix": "/swarmkeeper/t",
                "KmsKeyId": "alias/swarmkeeper-t",
                "Region": "eu-west-1",
            },
        )
    )
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "S": str(tmp_path),
        "TOKEN": FAKE_TOKEN,
        "ADDRS": ",".join(MANAGERS),
        "NODE_ID": NODE_ID,
        "CLUSTER_ID": CLUSTER_ID,
        "DOCKER_HOST": f"unix://{tmp_path}/docker.sock",
        "SWARMKEEPER_RUN_DIR": str(tmp_path / "run"),
        # dockerd's configuration as it is (no log group: nothing to change), never this machine's
        "DOCKERD_CONFIG_FILE": str(tmp_path / "daemon.json"),
    }
    (tmp_path / "daemon.json").write_text("{}\n")
    proc = subprocess.run(["/bin/sh", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert "SWMTKN-" not in proc.stdout + proc.stderr
    assert list((tmp_path / "run").iterdir()) == [], "the run left its scratch directory"
    if (tmp_path / "curl-argv").exists():
        assert "SWMTKN-" not in (tmp_path / "curl-argv").read_text(), "the token was on curl's command line"
    calls = [line for line in (tmp_path / "log").read_text().splitlines() if line != "docker info"]
    return proc, calls


def _joins(calls: list[str]) -> list[str]:
    return [c.removeprefix("join ") for c in calls if c.startswith("join ")]


def test_a_join_that_goes_on_in_the_background_is_waited_for_not_left(tmp_path):
    # Given dockerd answers the join with its 20 s timeout while the join goes on and gets in later
    states = ["inactive", "pending", "pending", "pending", "active"]
    proc, calls = _bootstrap(tmp_path, states, [TIMEOUT_503])

    # Then the node waited for that join: one join, no leave, a few one-second polls, and success
    assert proc.returncode == 0, proc.stderr
    assert parse_result(proc.stdout) == {"node-id": NODE_ID, "role": "worker", "cluster-id": CLUSTER_ID}
    assert len(_joins(calls)) == 1
    assert "docker swarm leave --force" not in calls
    assert calls.count("sleep 1") == 3
    assert "still going on in the background" in proc.stderr


def test_a_background_join_that_fails_is_left_and_the_next_manager_tried(tmp_path):
    # Given the first join times out, goes on in the background and then ends in error
    states = ["inactive", "pending", "pending", "error"]
    proc, calls = _bootstrap(tmp_path, states, [TIMEOUT_503, "200 null"])

    # Then the node left that join and got in through the next manager
    assert proc.returncode == 0, proc.stderr
    first, second = _joins(calls)
    assert first != second
    assert calls.index("docker swarm leave --force") < calls.index(f"join {second}")
    assert f"join via {first} failed (round 1): HTTP 503" in proc.stderr


def test_a_background_join_that_hangs_is_left_after_60_seconds(tmp_path):
    # Given a join that stays pending for good
    proc, calls = _bootstrap(tmp_path, ["inactive", "pending"], [TIMEOUT_503, "200 null"])

    # Then the node gave it 60 one-second polls, then left it and joined through the next manager
    assert proc.returncode == 0, proc.stderr
    assert calls.count("sleep 1") == 60
    assert calls.count("docker swarm leave --force") == 1
    assert len(set(_joins(calls))) == 2


def test_a_join_that_fails_at_once_goes_to_the_next_manager_without_waiting(tmp_path):
    # Given the first manager cannot be reached: the join fails and the node stays inactive
    refused = '500 {"message":"rpc error: code = Unavailable desc = connection refused"}'
    proc, calls = _bootstrap(tmp_path, ["inactive"], [refused, "200 null"])

    # Then nothing waits, nothing needs leaving, and the next manager lets the node in
    assert proc.returncode == 0, proc.stderr
    assert len(set(_joins(calls))) == 2
    assert not [c for c in calls if c.startswith("sleep")]
    assert "docker swarm leave --force" not in calls


def test_a_refused_token_is_not_retried_elsewhere(tmp_path):
    bad = '400 {"message":"rpc error: code = InvalidArgument desc = A valid join token is necessary"}'
    proc, calls = _bootstrap(tmp_path, ["inactive"], [bad, "200 null"])

    assert proc.returncode == 1
    assert len(_joins(calls)) == 1
    assert "refused" in proc.stderr


def test_every_manager_is_tried_each_round_before_failing(tmp_path):
    failed = '500 {"message":"connection refused"}'
    proc, calls = _bootstrap(tmp_path, ["inactive"], [failed] * 9)

    assert proc.returncode == 1
    assert sorted(_joins(calls)) == sorted(MANAGERS * 3)
    assert "could not join through any of" in proc.stderr


@pytest.mark.parametrize(
    ("address", "first"),
    [
        ("10.0.9.0", MANAGERS[0]),
        ("10.0.9.1", MANAGERS[1]),
        ("10.0.9.2", MANAGERS[2]),
        ("10.0.8.3", MANAGERS[2]),
    ],
)
def test_nodes_start_at_different_managers(tmp_path, address, first):
    # Given three managers / When nodes with different addresses join / Then each starts at its offset
    # (third + fourth octet modulo the number of managers) and goes round the list from there
    failed = '500 {"message":"connection refused"}'
    proc, calls = _bootstrap(tmp_path, ["inactive"], [failed, failed, "200 null"], address=address)

    assert proc.returncode == 0, proc.stderr
    start = MANAGERS.index(first)
    assert _joins(calls) == MANAGERS[start:] + MANAGERS[:start]


def test_a_node_found_pending_waits_for_that_join_before_anything_else(tmp_path):
    # Given an earlier run's join still going on when the document starts, and then getting in
    proc, calls = _bootstrap(tmp_path, ["pending", "pending", "active"], [])

    # Then the node is a member without a new join and without leaving
    assert proc.returncode == 0, proc.stderr
    assert _joins(calls) == []
    assert "docker swarm leave --force" not in calls
    assert parse_result(proc.stdout)["node-id"] == NODE_ID
