"""refresh-registry-auth on a real swarm of one: the services whose image is in the account's ECR
registry get a fresh credential from the helper, their running tasks are left alone, every other
service is untouched; only the leader acts; a service mid-update waits for the next run. A moto
server on the bridge (the documents' AWS), a stand-in for docker-credential-ecr-login."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from test_documents import IMAGE, Lab, lab_with_aws

pytestmark = pytest.mark.lab

PREFIX = "skr"  # own names, so a lab running elsewhere on this machine is never touched
SUBNET = "10.99.5.0/24"
REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
PRIVATE = f"{REGISTRY}/team/app:1"


@pytest.fixture(scope="module")
def lab():
    with lab_with_aws(PREFIX, SUBNET, (11,)) as (net, (node,), ssm, endpoint, _):
        lab = Lab(net, node, node, node, node, ssm=ssm, endpoint=endpoint)
        lab.docker(node, "swarm", "init", "--advertise-addr", node.ip)
        # the account's image, as a node that pulled it before has it
        lab.docker(node, "tag", IMAGE, PRIVATE)
        config = node.home / ".docker" / "config.json"
        config.parent.mkdir(exist_ok=True)
        config.write_text(json.dumps({"credHelpers": {REGISTRY: "ecr-login"}}))
        yield lab


def _helper(lab: Lab, secret: str) -> dict[str, str]:
    """docker-credential-ecr-login that answers ``secret`` and records each request, and whether
    its cache was off."""
    log = lab.a.root_dir / "helper.log"
    text = (
        "#!/bin/sh\nread -r server\n"
        f'echo "$1 $server cache-off=${{AWS_ECR_DISABLE_CACHE:-}}" >>{log}\n'
        f'printf \'{{"ServerURL": "%s", "Username": "AWS", "Secret": "{secret}"}}\\n\' "$server"\n'
    )
    return {"docker-credential-ecr-login": text}


def _asked(lab: Lab) -> list[str]:
    log = lab.a.root_dir / "helper.log"
    return log.read_text().splitlines() if log.exists() else []


def _create(lab: Lab, name: str, image: str) -> None:
    helpers = lab.a.root_dir / "create-helpers"
    if not helpers.exists():
        helpers.mkdir()
        for program, text in _helper(lab, "token-of-the-deploy").items():
            (helpers / program).write_text(text)
            (helpers / program).chmod(0o755)
    made = lab.a.run(
        ["docker", "service", "create", "--detach", "--with-registry-auth", "--no-resolve-image",
         "--name", name, image, "sleep", "3600"],
        env={"PATH": f"{helpers}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr


def _tasks(lab: Lab, name: str) -> list[str]:
    out = lab.docker(
        lab.a, "service", "ps", "--no-trunc", name, "--format", "{{.ID}} {{.DesiredState}} {{.CurrentState}}"
    )
    return out.splitlines()


def _running(lab: Lab, name: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = _tasks(lab, name)
        running = [t.split()[0] for t in tasks if t.split()[1:3] == ["Running", "Running"]]
        if running:
            return running[0]
        time.sleep(0.5)
    raise AssertionError(f"{name} never ran: {_tasks(lab, name)}")


def _version(lab: Lab, name: str) -> int:
    return int(lab.docker(lab.a, "service", "inspect", "-f", "{{.Version.Index}}", name))


def _refresh(lab: Lab, shims: dict[str, str] | None = None, registry: str = REGISTRY):
    return lab.run(lab.a, "refresh-registry-auth", shims=shims, EcrRegistry=registry)


def test_ecr_services_get_a_fresh_credential_and_keep_their_running_tasks(lab: Lab):
    # Given a service of the account's registry deployed with registry auth, and one of another
    _create(lab, "private", PRIVATE)
    _create(lab, "public", IMAGE)
    try:
        task = _running(lab, "private")
        _running(lab, "public")
        versions = {name: _version(lab, name) for name in ("private", "public")}
        asked = len(_asked(lab))

        # When the refresh runs on the leader
        started = time.monotonic()
        run = _refresh(lab, shims=_helper(lab, "token-of-the-refresh"))
        took = time.monotonic() - started

        # Then the private service was updated with a credential asked of the helper, its cache off
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip().splitlines()[-1] == "refreshed=1 skipped=0 leader=true"
        assert _asked(lab)[asked:] == [f"get {REGISTRY} cache-off=true"]
        assert _version(lab, "private") > versions["private"]
        # and the other service was not touched
        assert _version(lab, "public") == versions["public"]
        # and Swarm left the running task alone (measured: none replaced 5 s after the update)
        time.sleep(5)
        assert _running(lab, "private") == task
        assert len(_tasks(lab, "private")) == 1, _tasks(lab, "private")
        print(f"refresh of 1 service: {took:.2f}s; running task kept: {task}")
    finally:
        lab.docker(lab.a, "service", "rm", "private", "public")


def test_a_replacement_task_is_started_with_the_refreshed_service(lab: Lab):
    # Given a refreshed private service
    _create(lab, "private2", PRIVATE)
    try:
        first = _running(lab, "private2")
        assert _refresh(lab, shims=_helper(lab, "token-of-the-refresh")).returncode == 0
        # When its container dies
        container = lab.docker(lab.a, "ps", "-q", "--filter", f"label=com.docker.swarm.task.id={first}")
        lab.docker(lab.a, "kill", container)
        # Then Swarm starts another task of it (from the image the node has)
        deadline = time.monotonic() + 60
        while (second := _running(lab, "private2")) == first and time.monotonic() < deadline:
            time.sleep(0.5)
        assert second != first
    finally:
        lab.docker(lab.a, "service", "rm", "private2")


# A docker that answers the questions the script asks as given, records the rest, runs nothing.
FAKE_DOCKER = """#!/bin/sh
echo "$*" >>%(calls)s
case "$*" in
"node inspect self"*) echo %(leader)s ;;
"service ls -q") printf 'bad\\nok1\\nmid\\nother\\n' ;;
"service inspect"*mid) echo "%(registry)s/app:2 paused" ;;
"service inspect"*other) echo "docker.io/library/nginx:1 " ;;
"service inspect"*) echo "%(registry)s/app:1 completed" ;;
"service update"*bad) echo "Error: update out of sequence" >&2; exit 1 ;;
esac
exit 0
"""


def _fake_docker(lab: Lab, leader: str = "true") -> tuple[dict[str, str], object]:
    calls = lab.a.root_dir / f"calls-{time.monotonic_ns()}"
    return {"docker": FAKE_DOCKER % {"calls": calls, "leader": leader, "registry": REGISTRY}}, calls


def test_every_service_is_tried_a_mid_update_one_waits_and_a_failure_fails_the_run(lab: Lab):
    # Given four services: one whose update fails, one of the registry, one paused mid-update, one
    # of another registry
    shims, calls = _fake_docker(lab)
    # When the refresh runs
    run = _refresh(lab, shims=shims)
    # Then the failure is reported after the others were tried, the paused one is left as it is
    assert run.returncode == 1
    assert "cannot refresh the registry credential of bad: Error: update out of sequence" in run.stderr
    updates = [c for c in calls.read_text().splitlines() if c.startswith("service update")]
    assert updates == [
        f"service update --detach --quiet --with-registry-auth --no-resolve-image {service}"
        for service in ("bad", "ok1")
    ]


@pytest.mark.parametrize(
    ("leader", "registry"), [("false", REGISTRY), ("true", "")], ids=["follower", "no-registry"]
)
def test_only_the_leader_refreshes_and_only_with_a_registry(lab: Lab, leader: str, registry: str):
    shims, calls = _fake_docker(lab, leader=leader)
    run = _refresh(lab, shims=shims, registry=registry)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == f"refreshed=0 skipped=0 leader={leader}"
    assert (
        not [c for c in calls.read_text().splitlines() if c.startswith("service")] if calls.exists() else True
    )


def test_outside_a_swarm_nothing_is_refreshed(lab: Lab):
    real = shutil.which("docker")
    shims = {"docker": f'#!/bin/sh\n[ "$1 $2" = "node inspect" ] && exit 1\nexec {real} "$@"\n'}
    run = _refresh(lab, shims=shims)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "refreshed=0 skipped=0 leader=false"
