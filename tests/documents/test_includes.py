"""Include files: shell written once (``_<name>.sh``) and put into each document that says
``# @include _<name>.sh`` when the document is built. Also the token writer they share, run alone."""

from __future__ import annotations

import json
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
for a in "$@"; do
	case "$a" in file://*) cp "${a#file://}" "$LOG/request.json" && stat -c %a "${a#file://}" >"$LOG/mode" ;;
	esac
done
[ -z "${AWS_FAIL:-}" ] || { echo "An error occurred: $AWS_FAIL" >&2; exit 255; }
"""

HARNESS = """ME=t
%(prelude)s
umask 077
TMPD=$(mktemp -d)
trap 'ls -A "$TMPD" >"$LOG/left"; rm -rf "$TMPD"' EXIT
SK_KMS_KEY_ID=alias/swarmkeeper-t SK_REGION=eu-west-1
command -V printf >"$LOG/printf"
%(body)s
put_secure /swarmkeeper/t/join-token/worker "$LOG/token"
"""


def _put_secure(tmp_path: Path, token: str, aws_fail: str = "") -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(STUB_AWS)
    (bin_dir / "aws").chmod(0o755)
    (tmp_path / "token").write_text(token + "\n")
    script = tmp_path / "harness.sh"
    prelude = "\n".join(_body(documents.DOCUMENTS_DIR / "_prelude.sh"))
    script.write_text(HARNESS % {"prelude": prelude, "body": "\n".join(_body(TOKENS))})
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LOG": str(tmp_path), "AWS_FAIL": aws_fail}
    return subprocess.run(["/bin/sh", str(script)], env=env, capture_output=True, text=True, timeout=30)


def test_put_secure_sends_the_token_only_in_a_private_file(tmp_path):
    # When the token writer stores a join token
    proc = _put_secure(tmp_path, FAKE_TOKEN)

    # Then it says nothing, and `aws` got the request as a 0600 file, never the token as an argument
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    argv = (tmp_path / "argv").read_text()
    assert "SWMTKN-" not in argv
    assert argv.split("\n")[:4] == ["ssm", "put-parameter", "--region", "eu-west-1"]
    assert (tmp_path / "mode").read_text().strip() == "600"
    assert json.loads((tmp_path / "request.json").read_text()) == {
        "Name": "/swarmkeeper/t/join-token/worker",
        "Type": "SecureString",
        "KeyId": "alias/swarmkeeper-t",
        "Overwrite": True,
        "Value": FAKE_TOKEN,
    }
    # and the request file is gone; the token went through the shell's own printf, not a process
    assert "put.json" not in (tmp_path / "left").read_text()
    assert "builtin" in (tmp_path / "printf").read_text()


@pytest.mark.parametrize("token", ["", "not-a-token", FAKE_TOKEN + '", "Type": "String', FAKE_TOKEN + " x"])
def test_put_secure_refuses_what_is_not_a_join_token(tmp_path, token):
    proc = _put_secure(tmp_path, token)

    assert proc.returncode == 1
    assert proc.stderr == "t: unexpected join token format for /swarmkeeper/t/join-token/worker\n"
    assert not (tmp_path / "argv").exists(), "aws must not be called"


def test_put_secure_failure_is_one_masked_line_and_leaves_no_request_file(tmp_path):
    # Given Parameter Store refuses the write with an error that quotes the token
    proc = _put_secure(tmp_path, FAKE_TOKEN, aws_fail=f"bad value {FAKE_TOKEN}")

    # Then the reason is one line with the token masked, and the request file is removed
    assert proc.returncode == 1
    assert "SWMTKN-" not in proc.stderr
    assert proc.stderr.startswith("t: put-parameter /swarmkeeper/t/join-token/worker failed: ")
    assert "[join token redacted]" in proc.stderr
    assert "put.json" not in (tmp_path / "left").read_text()
