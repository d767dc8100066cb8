"""The documents' contract without a lab: files, shell hygiene, rendering as the SSM agent does."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.documents import (
    ACTIONS,
    PARAMETERS,
    RESULT_FORMATS,
    document_content,
    include_paths,
    parse_result,
    render_commands,
    run_command_lines,
    script_path,
)

VENV_SHELLCHECK = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "shellcheck"


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_has_a_posix_script_with_a_documented_last_line(action):
    text = script_path(action).read_text()
    assert text.startswith("#!/bin/sh\n")
    # the shared prelude (strict mode, fail) comes first, named after the action
    commands = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert commands[0] == f"ME={action}"
    assert f"\nME={action}\n# @include _prelude.sh\n" in text
    assert not re.search(r"^\s*set -[a-z]*x", text, re.M), "never trace: tokens would be printed"
    assert "{{" not in text and "}}" not in text, "a double brace is SSM parameter syntax"
    assert action in RESULT_FORMATS
    assert "Last stdout line" in text


@pytest.mark.parametrize("path", include_paths(), ids=lambda p: p.name)
def test_every_include_file_is_posix_shell_lintable_alone(path):
    # Given a file of shell that documents include (never a document itself)
    text = path.read_text()
    # Then shellcheck knows its shell without a shebang, and it obeys the scripts' hygiene
    assert text.startswith("# shellcheck shell=sh\n")
    assert path.stem.lstrip("_") not in ACTIONS
    assert not re.search(r"^\s*set -[a-z]*x", text, re.M), "never trace: tokens would be printed"
    assert "{{" not in text and "}}" not in text, "a double brace is SSM parameter syntax"


def _shellcheck() -> str:
    shellcheck = str(VENV_SHELLCHECK) if VENV_SHELLCHECK.exists() else shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed")
    return shellcheck


def test_scripts_are_shellcheck_clean():
    scripts = [str(script_path(a)) for a in ACTIONS] + [str(p) for p in include_paths()]
    proc = subprocess.run([_shellcheck(), "-s", "sh", *scripts], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("action", ACTIONS)
def test_each_document_as_synthesized_is_shellcheck_clean(action, tmp_path):
    # Given the document's shell exactly as synthesized (exports, then the script with its includes)
    lines = document_content(action)["mainSteps"][0]["inputs"]["runCommand"]
    path = tmp_path / f"{action}.sh"
    path.write_text("\n".join(lines) + "\n")
    # When shellcheck reads it as the POSIX sh the agent runs / Then it reports nothing
    proc = subprocess.run([_shellcheck(), "-s", "sh", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("action", ACTIONS)
def test_document_exports_each_parameter_then_runs_the_script(action):
    doc = document_content(action)
    lines = doc["mainSteps"][0]["inputs"]["runCommand"]
    params = PARAMETERS[action]
    assert set(doc["parameters"]) == {p.name for p in params}
    assert lines[: len(params)] == [f"export {p.env_name}='{{{{ {p.name} }}}}'" for p in params]
    assert lines == run_command_lines(action)
    for spec in doc["parameters"].values():
        assert spec["allowedPattern"].startswith("^") and spec["allowedPattern"].endswith("$")


def test_render_substitutes_values_and_defaults_like_the_agent():
    script = render_commands("drain-node", {"NodeId": "a" * 25})
    assert script.startswith(f"export SK_NODE_ID='{'a' * 25}'\nexport SK_TIMEOUT_SECONDS='60'\n")
    assert "{{" not in script


VERIFY = {
    "NodeId": "a" * 25,
    "Role": "worker",
    "AvailabilityZone": "eu-west-1a",
    "InstanceType": "t4g.small",
    "Lifecycle": "on-demand",
}


@pytest.mark.parametrize(
    "changes",
    [
        {"NodeId": "a" * 24 + "'"},
        {"Role": "worker; reboot"},
        {"TimeoutSeconds": "$(id)"},
        {"NodeId": None},
        {"Extra": "x"},
        {"AvailabilityZone": None},
        {"AvailabilityZone": "eu-west-1"},  # a region, not a zone
        {"AvailabilityZone": "eu-west-1a'"},
        {"AvailabilityZone": "eu-west-1a swarmkeeper.role=manager"},
        {"InstanceType": "t4g"},
        {"InstanceType": "t4g.small,x=y"},
        {"InstanceType": "$(reboot).x"},
        {"Lifecycle": "reserved"},
        {"Lifecycle": None},
    ],
)
def test_render_refuses_what_the_document_would_refuse(changes):
    # Given verify-node's parameters that render, with one missing or ill-formed
    values = {k: v for k, v in {**VERIFY, **changes}.items() if v is not None}
    # Then it does not render
    with pytest.raises(ValueError):
        render_commands("verify-node", values)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"AvailabilityZone": "us-west-2-lax-1a"},  # a Local Zone
        {"AvailabilityZone": "us-gov-west-1b"},
        {"InstanceType": "m7i-flex.large"},
        {"InstanceType": "u-6tb1.metal"},
        {"Lifecycle": "spot", "Role": "manager"},
    ],
)
def test_verify_node_takes_every_zone_and_type_ec2_has(changes):
    script = render_commands("verify-node", {**VERIFY, **changes})
    for name, value in changes.items():
        assert f"='{value}'" in script, name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SK_AVAILABILITY_ZONE", "eu-west-1a $(touch {mark})"),
        ("SK_INSTANCE_TYPE", "t4g.small;touch {mark}"),
        ("SK_INSTANCE_TYPE", "t4g.small --label-add swarmkeeper.role=manager"),
        ("SK_LIFECYCLE", "spot`touch {mark}`"),
    ],
)
def test_verify_node_itself_refuses_shell_in_a_label_value(tmp_path, name, value):
    # Given verify-node as the agent would run it, had a value got past its allowedPattern, and a
    # docker that records every call
    mark = tmp_path / "ran"
    script = render_commands("verify-node", VERIFY)
    env_line = next(line for line in script.splitlines() if line.startswith(f"export {name}="))
    script = script.replace(env_line, f"export {name}='{value.format(mark=mark)}'")
    (tmp_path / "docker").write_text(f'#!/bin/sh\necho "$@" >>{tmp_path / "calls"}\n')
    (tmp_path / "docker").chmod(0o755)
    path = tmp_path / "verify-node.sh"
    path.write_text(script)

    # When it runs
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "SWARMKEEPER_RUN_DIR": str(tmp_path / "run")}
    proc = subprocess.run(["sh", str(path)], env=env, capture_output=True, text=True, timeout=30)

    # Then it stops before any docker call, saying why, and nothing in the value ran
    assert proc.returncode == 1, proc.stderr
    assert "verify-node:" in proc.stderr and "state=ready" not in proc.stdout
    assert not (tmp_path / "calls").exists()
    assert not mark.exists()


def test_bootstrap_docker_version_is_optional():
    base = {
        "Role": "worker",
        "Mode": "join",
        "AdvertiseAddress": "10.0.0.5",
        "ParameterPrefix": "/swarmkeeper/prod",
        "KmsKeyId": "alias/swarmkeeper-prod",
        "Region": "eu-west-1",
    }
    assert "export SK_DOCKER_VERSION=''" in render_commands("bootstrap-node", base)
    pinned = render_commands("bootstrap-node", {**base, "DockerVersion": "25.0.8"})
    assert "export SK_DOCKER_VERSION='25.0.8'" in pinned


def test_parse_result_reads_the_last_line():
    out = "abc worker ready active - 10.0.0.5 ip-10-0-0-5\nnodes=1\n\n"
    assert parse_result(out) == {"nodes": "1"}
    assert parse_result("") == {}


# A command whose failure matters, and what may follow it in a pipeline only once its output has been
# captured and checked (dash, the lab's sh, has no pipefail).
_CHECKED_COMMANDS = ("docker", "aws", "curl", "openssl", "dnf", "systemctl")
_PIPE = re.compile(r"(?<![|])[|](?![|])")
_START = re.compile(r".*(?:\$\(|[(;`]|&&|[|][|]|[|]|\bthen\b|\bdo\b|\belse\b|!)")


def _pipelines_fed_by(lines: list[str]) -> list[str]:
    """The commands that feed a pipe (the first word left of each single `|`), one logical line at
    a time (continuation lines joined); comments dropped."""
    logical, current = [], ""
    for line in lines:
        code = line.split(" # ", 1)[0] if not line.lstrip().startswith("#") else ""
        current += code.rstrip("\\").strip() + " "
        if not re.search(r"(\\|[|])\s*$", code):
            logical.append(current)
            current = ""
    feeders = []
    for line in logical:
        for pipe in _PIPE.finditer(line):
            left = line[: pipe.start()]
            segment = _START.sub("", left).strip()
            segment = re.sub(r"^([A-Za-z_][A-Za-z0-9_]*=\S*\s+)*", "", segment)
            feeders.append(segment.split(" ", 1)[0] if segment else "")
    return feeders


def test_the_pipe_check_sees_a_command_that_feeds_a_pipe():
    assert _pipelines_fed_by(['n=$(docker node ps -q "$x" | grep -c .)']) == ["docker"]
    assert _pipelines_fed_by(["docker node inspect -f x $ids |", "\tawk '{ print }'"]) == ["docker"]
    assert _pipelines_fed_by(['fail "docker rm failed: $(echo "$err" | excerpt)"']) == ["echo"]
    assert _pipelines_fed_by(["a || b", 'printf "%s" "$t" | aws ssm put-parameter']) == ["printf"]


@pytest.mark.parametrize("action", ACTIONS)
def test_no_command_whose_failure_matters_feeds_a_pipe(action):
    # Given the document's shell as synthesized
    lines = document_content(action)["mainSteps"][0]["inputs"]["runCommand"]
    # Then docker, aws, curl, ... never write into a pipe: without pipefail the pipe would hide their
    # failure (their output is captured with `|| fail`, then read)
    feeders = _pipelines_fed_by(lines)
    assert [f for f in feeders if f in _CHECKED_COMMANDS] == []
    assert "" not in feeders
