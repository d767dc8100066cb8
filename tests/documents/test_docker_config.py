"""bootstrap-node's Docker configuration on a real lab node: the containers' log driver (daemon.json)
and the ECR credential helper (the CLI's config.json), merged with what is there, idempotent, and
used by the real docker CLI. One node, its own swarm, a moto server on the bridge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_documents import IMAGE, KMS_ALIAS, REGION, Lab, lab_with_aws

pytestmark = pytest.mark.lab

PREFIX = "skc"
SUBNET = "10.99.8.0/24"
PARAMS = "/swarmkeeper/doctest"
LOG_GROUP = "/swarmkeeper/doctest/containers"
REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
# A stand-in for docker-credential-ecr-login: records each request, answers with a credential.
FAKE_HELPER = """#!/bin/sh
read -r server
echo "$1 $server" >>"$HELPER_LOG"
printf '{"ServerURL": "%s", "Username": "AWS", "Secret": "token-from-the-instance-role"}\\n' "$server"
"""


@pytest.fixture(scope="module")
def lab():
    with lab_with_aws(PREFIX, SUBNET, (11,)) as (net, (node,), ssm, endpoint, _):
        yield Lab(net, node, node, node, node, ssm=ssm, endpoint=endpoint)


def _bootstrap(lab: Lab, helper: bool = True, **values: str):
    return lab.run(
        lab.a,
        "bootstrap-node",
        shims={"docker-credential-ecr-login": FAKE_HELPER} if helper else None,
        Role="manager",
        Mode="init",
        AdvertiseAddress=lab.a.ip,
        ParameterPrefix=PARAMS,
        KmsKeyId=KMS_ALIAS,
        Region=REGION,
        **values,
    )


def _helper_dir(lab: Lab) -> Path:
    helpers = lab.a.root_dir / "helpers"
    if not helpers.exists():
        helpers.mkdir()
        (helpers / "docker-credential-ecr-login").write_text(FAKE_HELPER)
        (helpers / "docker-credential-ecr-login").chmod(0o755)
    return helpers


def _daemon_json(lab: Lab) -> dict:
    return json.loads((lab.a.root_dir / "daemon.json").read_text())


def _cli_config(lab: Lab) -> Path:
    return lab.a.home / ".docker" / "config.json"


def test_without_a_log_group_the_daemon_file_is_left_as_it_is(lab: Lab):
    # Given the node's dockerd and its daemon file (the lab's own keys)
    before = (lab.a.root_dir / "daemon.json").read_text()

    # When bootstrap-node inits with no log group and no registry (containerLogs off)
    run = _bootstrap(lab)

    # Then the swarm exists, the daemon file is unchanged, and there is no CLI config
    assert run.returncode == 0, run.stderr
    assert run.result["role"] == "manager"
    assert (lab.a.root_dir / "daemon.json").read_text() == before
    assert not _cli_config(lab).exists()
    assert lab.docker(lab.a, "info", "-f", "{{.LoggingDriver}}") == "json-file"


def test_the_log_group_becomes_the_default_log_driver_merged_into_the_daemon_file(lab: Lab):
    # Given a daemon file with keys of its own
    own = _daemon_json(lab)
    assert own

    # When bootstrap-node runs with the cluster's containers' log group
    run = _bootstrap(lab, ContainerLogGroup=LOG_GROUP)

    # Then awslogs is the default driver for that group and region, the file keeps its own keys
    assert run.returncode == 0, run.stderr
    config = _daemon_json(lab)
    assert config == {
        **own,
        "log-driver": "awslogs",
        "log-opts": {
            "awslogs-region": REGION,
            "awslogs-group": LOG_GROUP,
            "awslogs-create-group": "false",
            "tag": "{{.Name}}",
            "mode": "non-blocking",
            "max-buffer-size": "4m",
        },
    }
    assert oct((lab.a.root_dir / "daemon.json").stat().st_mode & 0o777) == "0o644"
    # and the running dockerd (a member now, and not run by systemd from /etc/docker) was not restarted
    assert "was not restarted" in run.stderr
    assert lab.docker(lab.a, "info", "-f", "{{.Swarm.LocalNodeState}}") == "active"


def test_the_same_configuration_again_changes_nothing(lab: Lab):
    path = lab.a.root_dir / "daemon.json"
    before = path.stat().st_mtime_ns, path.read_text()
    run = _bootstrap(lab, ContainerLogGroup=LOG_GROUP)
    assert run.returncode == 0, run.stderr
    assert (path.stat().st_mtime_ns, path.read_text()) == before
    assert "changed" not in run.stderr


def test_dockerd_accepts_the_log_options(lab: Lab):
    # Given the options bootstrap-node wrote / When a container is created with them (not started:
    # the lab has no CloudWatch) / Then dockerd accepts every one
    opts = [f"--log-opt={k}={v}" for k, v in _daemon_json(lab)["log-opts"].items()]
    created = lab.a.docker("create", "--log-driver=awslogs", *opts, IMAGE, "true")
    assert created.returncode == 0, created.stderr
    lab.docker(lab.a, "rm", created.stdout.strip())


def test_the_registry_gets_the_ecr_credential_helper_in_the_cli_config(lab: Lab):
    # Given a CLI config with an entry of its own
    _cli_config(lab).parent.mkdir(exist_ok=True)
    _cli_config(lab).write_text(
        json.dumps({"credHelpers": {"public.ecr.aws": "ecr-login"}, "detachKeys": "ctrl-q"})
    )

    # When bootstrap-node runs with the account's registry, on a node without the helper or dnf
    run = _bootstrap(lab, helper=False, ContainerLogGroup=LOG_GROUP, EcrRegistry=REGISTRY)

    # Then the registry's helper is ecr-login, next to what was there, in a file only root reads
    assert run.returncode == 0, run.stderr
    assert json.loads(_cli_config(lab).read_text()) == {
        "credHelpers": {"public.ecr.aws": "ecr-login", REGISTRY: "ecr-login"},
        "detachKeys": "ctrl-q",
    }
    assert oct(_cli_config(lab).stat().st_mode & 0o777) == "0o600"
    # and it said the helper could not be installed (no dnf), and went on
    assert "docker-credential-ecr-login is missing and dnf is not available" in run.stderr
    # When the helper is there / Then nothing is said about it, and the file stays as it is
    again = _bootstrap(lab, ContainerLogGroup=LOG_GROUP, EcrRegistry=REGISTRY)
    assert again.returncode == 0, again.stderr
    assert "docker-credential-ecr-login" not in again.stderr
    assert REGISTRY in json.loads(_cli_config(lab).read_text())["credHelpers"]


def test_the_docker_cli_asks_the_helper_for_the_registry_not_docker_login(lab: Lab):
    # Given the CLI config bootstrap-node wrote and the helper on PATH
    log = lab.a.root_dir / "helper.log"
    env = {
        "PATH": f"{_helper_dir(lab)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HELPER_LOG": str(log),
    }
    # When a manager creates a service from an image of the account's registry, with registry auth
    made = lab.a.run(
        ["docker", "service", "create", "--detach", "--with-registry-auth", "--name", "private",
         f"{REGISTRY}/team/app:1"],
        env=env,
    )  # fmt: skip
    try:
        # Then the CLI got the credential from the helper (nobody ran docker login)
        assert made.returncode == 0, made.stderr
        asked = log.read_text().splitlines()
        assert asked and set(asked) == {f"get {REGISTRY}"}
    finally:
        lab.a.docker("service", "rm", "private")


def test_a_daemon_file_that_is_not_json_is_never_overwritten(lab: Lab):
    path = lab.a.root_dir / "daemon.json"
    good = path.read_text()
    path.write_text("{ not json")
    try:
        run = _bootstrap(lab, ContainerLogGroup="/swarmkeeper/other/containers")
        assert run.returncode == 1
        assert f"cannot update {path}" in run.stderr
        assert path.read_text() == "{ not json"
    finally:
        path.write_text(good)
