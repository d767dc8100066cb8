"""Include files: shell written once (``_<name>.sh``) and put into each document that says
``# @include _<name>.sh`` when the document is built. Also the token writer they share, run alone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import infra.documents as documents
from infra.documents import ACTIONS, INCLUDE_MARKER, include_paths, script_lines, script_path

TOKENS = documents.DOCUMENTS_DIR / "_tokens.sh"
FAKE_TOKEN = "SWMTKN-1-" + "a1" * 25 + "-" + "b" * 25


def _body(path: Path) -> list[str]:
    return path.read_text().splitlines()[1:]  # all but the `# shellcheck shell=sh` line


INCLUDED = [
    (action, path)
    for action in ACTIONS
    for path in include_paths()
    if f"{INCLUDE_MARKER}{path.name}" in script_path(action).read_text().splitlines()
]


@pytest.mark.parametrize(("action", "include"), INCLUDED, ids=[f"{a}-{p.name}" for a, p in INCLUDED])
def test_a_document_carries_each_include_it_names_once_and_whole(action, include):
    # When the document's script is built
    lines = script_lines(action)

    # Then the include file stands in place of the marker, whole, once
    body = _body(include)
    starts = [i for i in range(len(lines)) if lines[i : i + len(body)] == body]
    assert len(starts) == 1


@pytest.mark.parametrize("action", ACTIONS)
def test_every_document_starts_with_the_shared_prelude(action):
    assert (action, documents.DOCUMENTS_DIR / "_prelude.sh") in INCLUDED


def test_every_shell_function_is_written_once():
    # Given every script and include file
    defined: dict[str, list[str]] = {}
    for path in [*(script_path(a) for a in ACTIONS), *include_paths()]:
        for name in re.findall(r"^([a-z_]+)\(\) \{", path.read_text(), re.M):
            defined.setdefault(name, []).append(path.name)
    # Then no function is defined in two files: shared shell lives in an include
    assert {name: files for name, files in defined.items() if len(files) > 1} == {}
    assert {"fail", "excerpt", "put_string", "put_secure", "manager_addresses"} <= set(defined)


@pytest.mark.parametrize("action", ACTIONS)
def test_no_document_is_left_with_an_include_marker(action):
    assert not [line for line in script_lines(action) if line.startswith(INCLUDE_MARKER)]


def test_every_include_file_is_used():
    used = {line for a in ACTIONS for line in script_path(a).read_text().splitlines()}
    assert [p.name for p in include_paths() if f"{INCLUDE_MARKER}{p.name}" not in used] == []


@pytest.mark.parametrize(
    ("script", "include", "reason"),
    [
        ("# @include _gone.sh", None, "does not exist"),
        ("# @include lib/tokens.sh", None, "is not"),
        ("# @include _x.sh", "#!/bin/sh\ntrue\n", "first line"),
        ("# @include _x.sh", "# shellcheck shell=sh\n# @include _y.sh\n", "cannot include"),
    ],
)
def test_a_bad_include_fails_the_build(monkeypatch, tmp_path, script, include, reason):
    # Given a document script whose include is wrong
    monkeypatch.setattr(documents, "DOCUMENTS_DIR", tmp_path)
    (tmp_path / "act.sh").write_text(f"#!/bin/sh\n{script}\n")
    if include is not None:
        (tmp_path / "_x.sh").write_text(include)
    # When the document is built / Then it fails at synth, not on an instance
    with pytest.raises(ValueError, match=reason):
        script_lines("act")


# --- the shared token writer, run alone under POSIX sh with a stub `aws` ---------------------------

STUB_AWS = """#!/bin/sh
printf '%s\\n' "$@" >"$LOG/argv"
cat >"$LOG/stdin"
[ -z "${AWS_FAIL:-}" ] || { echo "An error occurred: $AWS_FAIL" >&2; exit 255; }
"""

# The token writer with the real prelude and scratch directory; at the end, every file of the run
# that holds the token is listed in $LOG/found.
HARNESS = """ME=t
%(prelude)s
%(scratch)s
trap 'grep -rl SWMTKN- "$RUN_DIR" >"$LOG/found" || :; rm -rf "$TMPD"' EXIT
SK_KMS_KEY_ID=alias/swarmkeeper-t SK_REGION=eu-west-1
command -V printf >"$LOG/printf"
%(body)s
token=$(cat "$LOG/token")
put_secure /swarmkeeper/t/join-token/worker "$token"
"""


def _put_secure(tmp_path: Path, token: str, aws_fail: str = "") -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(STUB_AWS)
    (bin_dir / "aws").chmod(0o755)
    (tmp_path / "token").write_text(token + "\n")
    script = tmp_path / "harness.sh"
    parts = {
        "prelude": "\n".join(_body(documents.DOCUMENTS_DIR / "_prelude.sh")),
        "scratch": "\n".join(_body(documents.DOCUMENTS_DIR / "_scratch.sh")),
        "body": "\n".join(_body(TOKENS)),
    }
    script.write_text(HARNESS % parts)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "LOG": str(tmp_path),
        "AWS_FAIL": aws_fail,
        "SWARMKEEPER_RUN_DIR": str(tmp_path / "run"),
    }
    return subprocess.run(["/bin/sh", str(script)], env=env, capture_output=True, text=True, timeout=30)


def test_put_secure_sends_the_token_only_through_a_pipe(tmp_path):
    # When the token writer stores a join token
    proc = _put_secure(tmp_path, FAKE_TOKEN)

    # Then it says nothing, and `aws` read the token on its stdin, never as an argument
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    argv = (tmp_path / "argv").read_text().splitlines()
    assert "SWMTKN-" not in "\n".join(argv)
    assert argv == [
        "ssm", "put-parameter", "--region", "eu-west-1", "--name", "/swarmkeeper/t/join-token/worker",
        "--type", "SecureString", "--key-id", "alias/swarmkeeper-t", "--overwrite",
        "--value", "file:///dev/stdin",
    ]  # fmt: skip
    assert (tmp_path / "stdin").read_text() == FAKE_TOKEN
    # and no file of the run ever held it; the pipe was written by the shell's own printf
    assert (tmp_path / "found").read_text() == ""
    assert "builtin" in (tmp_path / "printf").read_text()


@pytest.mark.parametrize("token", ["", "not-a-token", FAKE_TOKEN + '", "Type": "String', FAKE_TOKEN + " x"])
def test_put_secure_refuses_what_is_not_a_join_token(tmp_path, token):
    proc = _put_secure(tmp_path, token)

    assert proc.returncode == 1
    assert proc.stderr == "t: unexpected join token format for /swarmkeeper/t/join-token/worker\n"
    assert not (tmp_path / "argv").exists(), "aws must not be called"


def test_put_secure_failure_is_one_masked_line_and_leaves_no_token_behind(tmp_path):
    # Given Parameter Store refuses the write with an error that quotes the token
    proc = _put_secure(tmp_path, FAKE_TOKEN, aws_fail=f"bad value {FAKE_TOKEN}")

    # Then the reason is one line with the token masked, and the run's directory is gone
    assert proc.returncode == 1
    assert "SWMTKN-" not in proc.stderr
    assert proc.stderr.startswith("t: put-parameter /swarmkeeper/t/join-token/worker failed: ")
    assert "[join token redacted]" in proc.stderr
    assert list((tmp_path / "run").iterdir()) == []


# --- the scratch directory, the prelude's strict mode, manager_addresses: run alone ---------------


def _run_alone(
    tmp_path: Path, script: str, shell: str = "/bin/sh", **env: str
) -> subprocess.CompletedProcess:
    path = tmp_path / "harness.sh"
    path.write_text(script)
    base = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "LOG": str(tmp_path)}
    return subprocess.run([shell, str(path)], env={**base, **env}, capture_output=True, text=True, timeout=30)


def _included(*names: str) -> str:
    return "\n".join("\n".join(_body(documents.DOCUMENTS_DIR / name)) for name in names)


def test_a_run_removes_the_scratch_directories_of_runs_that_are_gone(tmp_path):
    # Given the directories of a run that was killed (its PID is free) and of one still running
    run_dir = tmp_path / "run"
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    with subprocess.Popen(["sleep", "30"]) as alive:
        for pid in (dead, str(alive.pid)):
            (run_dir / pid).mkdir(parents=True)
            (run_dir / pid / "err").write_text("left behind\n")

        # When a document starts, and while it runs
        script = f'ME=t\n{_included("_prelude.sh", "_scratch.sh")}\nls "$RUN_DIR" >"$LOG/during"\n'
        proc = _run_alone(tmp_path, script, SWARMKEEPER_RUN_DIR=str(run_dir))
        alive.kill()

    # Then the dead run's directory is gone, the live one's kept, its own was there and is gone too
    assert proc.returncode == 0, proc.stderr
    during = (tmp_path / "during").read_text().split()
    assert dead not in during and str(alive.pid) in during and len(during) == 2
    assert [p.name for p in run_dir.iterdir()] == [str(alive.pid)]


@pytest.mark.parametrize(("shell", "pipefail"), [("/bin/bash", True), ("/bin/dash", False)])
def test_the_prelude_sets_pipefail_where_the_shell_has_it(tmp_path, shell, pipefail):
    # Given the prelude under bash (sh on Amazon Linux 2023) and under dash 0.5.12 (no pipefail)
    script = f"ME=t\n{_included('_prelude.sh')}\nfalse | true\necho went-on\n"
    proc = _run_alone(tmp_path, script, shell=shell)
    # Then a failing command in a pipe stops the script where pipefail exists
    assert (proc.stdout == "") is pipefail
    assert proc.returncode == (1 if pipefail else 0)


STUB_DOCKER = """#!/bin/sh
case "$*" in
"node ls -q --filter role=manager") printf 'm1\\nm2\\nm3\\nm4\\n' ;;
"node inspect -f "*) [ -z "$DOCKER_FAIL" ] || { echo "Error: $DOCKER_FAIL" >&2; exit 1; }; cat "$LOG/raft" ;;
*) echo "stub docker: unexpected $*" >&2; exit 2 ;;
esac
"""


def _manager_addresses(tmp_path: Path, raft: str, docker_fail: str = "") -> subprocess.CompletedProcess:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "docker").write_text(STUB_DOCKER)
    (tmp_path / "bin" / "docker").chmod(0o755)
    (tmp_path / "raft").write_text(raft)
    script = f"ME=t\n{_included('_prelude.sh', '_scratch.sh', '_parameters.sh')}\nmanager_addresses\n"
    env = {"SWARMKEEPER_RUN_DIR": str(tmp_path / "run"), "DOCKER_FAIL": docker_fail}
    return _run_alone(tmp_path, script, **env)


def test_manager_addresses_keep_only_what_reads_as_an_address(tmp_path):
    # Given raft status lines: reachable managers (IPv4, IPv6), an unreachable one, and two that are not
    # addresses at all
    raft = (
        "reachable 10.0.1.10:2377\nunreachable 10.0.2.20:2377\nreachable [fd00::3]:2377\n"
        "reachable 6.6.6.6:2377 extra\nreachable evil\n"
    )
    proc = _manager_addresses(tmp_path, raft)

    # Then the reachable addresses are listed, and what is not an address is reported and left out
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "10.0.1.10:2377,[fd00::3]:2377"
    assert proc.stderr.splitlines() == [
        "t: not a manager address, left out: reachable 6.6.6.6:2377 extra",
        "t: not a manager address, left out: reachable evil",
    ]


def test_manager_addresses_fail_when_the_raft_status_cannot_be_read(tmp_path):
    proc = _manager_addresses(tmp_path, "reachable 10.0.1.10:2377\n", docker_fail="rpc error: deadline")

    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == "t: docker node inspect failed: Error: rpc error: deadline \n"
