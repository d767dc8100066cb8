"""The CLI's stack verbs: deploy FILE --name N and rm-stack N through the stacks bucket, waiting for
the outcome event of that very object version (as the stacks flow publishes it), and stacks (the
stack#<name> records); their refusals and exit codes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import boto3
import pytest
from cli_run import add_timeline, cli, publish
from join_world import CLUSTER, REGION

from swarmkeeper.adapters.stack_records import StackRecords
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.domain.stacks import StackRecord
from swarmkeeper_cli.errors import Exit

BUCKET = "swarmkeeper-demo-stacks-0123"
COMPOSE = "services:\n  web:\n    image: busybox:latest\n"


@pytest.fixture
def stacks_bucket(world, monkeypatch):
    add_timeline()
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    monkeypatch.setenv("SWARMKEEPER_STACKS_BUCKET", BUCKET)
    return s3


@pytest.fixture
def compose(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text(COMPOSE)
    return str(path)


def versions(s3, key: str = "stacks/web.yml") -> list[dict]:
    answer = s3.list_object_versions(Bucket=BUCKET, Prefix=key)
    return [*answer.get("Versions", []), *answer.get("DeleteMarkers", [])]


def latest(s3, key: str = "stacks/web.yml") -> str:
    return next(v["VersionId"] for v in versions(s3, key) if v["IsLatest"])


def outcome(
    s3, detail_type: str, version: Callable[[], str] | None = None, **detail: str
) -> Callable[[], None]:
    """What the stacks flow publishes once the command for a version ended."""

    def publish_it() -> None:
        version_id = version() if version else latest(s3)
        publish(
            detail_type,
            stack="web",
            key="stacks/web.yml",
            versionId=version_id,
            instanceId="i-0123456789abcdef0",
            role="manager",
            nodeId="",
            **detail,
        )

    return publish_it


def polls(*actions: Callable[[], None]) -> Callable[[float], None]:
    pending = list(actions)

    def sleep(seconds: float) -> None:
        if pending:
            pending.pop(0)()

    return sleep


def test_deploy_puts_the_file_and_waits_for_stack_deployed_of_its_version(world, stacks_bucket, compose):
    # Given a Compose file / When it is deployed, and the stacks flow deploys that version meanwhile
    result = cli(
        "deploy",
        compose,
        "--name",
        "web",
        clock=time.time,
        sleep=polls(outcome(stacks_bucket, "Stack Deployed", reason="deployed")),
    )

    # Then the file is stacks/web.yml in the bucket, and the outcome is that version's
    assert result.code == Exit.OK, result.err
    body = stacks_bucket.get_object(Bucket=BUCKET, Key="stacks/web.yml")["Body"].read().decode()
    assert body == COMPOSE
    assert f"version {latest(stacks_bucket)}" in result.err and "waiting for the stacks flow" in result.err
    assert "deploy: Stack Deployed: web" in result.out


def test_deploy_waits_for_its_own_version_not_an_older_ones_outcome(world, stacks_bucket, compose):
    # Given an older version's outcome arriving first
    result = cli(
        "deploy",
        compose,
        "--name",
        "web",
        "--json",
        clock=time.time,
        sleep=polls(
            outcome(stacks_bucket, "Stack Deploy Failed", version=lambda: "older-version", reason="no image"),
            outcome(stacks_bucket, "Stack Deployed", reason="deployed"),
        ),
    )

    # Then only its own counts
    assert result.code == Exit.OK and result.json["outcome"] == "Stack Deployed"
    assert result.json["versionId"] == latest(stacks_bucket)


def test_deploy_refused_by_the_manager_is_a_failure(world, stacks_bucket, compose):
    result = cli(
        "deploy",
        compose,
        "--name",
        "web",
        clock=time.time,
        sleep=polls(outcome(stacks_bucket, "Stack Deploy Failed", reason="image nginx:nope exists nowhere")),
    )
    assert result.code == Exit.FAILED and "image nginx:nope exists nowhere" in result.out


def test_deploy_no_wait(world, stacks_bucket, compose):
    result = cli("deploy", compose, "--name", "web", "--no-wait", "--json", clock=time.time)
    assert result.code == Exit.OK and result.json["versionId"] == latest(stacks_bucket)


def test_deploy_that_never_ends_times_out(world, stacks_bucket, compose):
    clock = [time.time()]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    result = cli("deploy", compose, "--name", "web", "--timeout", "6", clock=lambda: clock[0], sleep=sleep)
    assert result.code == Exit.TIMEOUT


@pytest.mark.parametrize("name", ["../etc", "web/x", "-web", "a" * 41, "web stack", ""])
def test_deploy_refuses_a_name_swarm_would_not_take(world, stacks_bucket, compose, name):
    result = cli("deploy", compose, f"--name={name}", clock=time.time)
    assert result.code == Exit.REFUSED and "is not a stack name" in result.err
    assert stacks_bucket.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_deploy_refuses_a_missing_or_empty_file(world, stacks_bucket, tmp_path):
    empty = tmp_path / "empty.yml"
    empty.write_text("  \n")
    missing = cli("deploy", str(tmp_path / "nope.yml"), "--name", "web", clock=time.time)
    blank = cli("deploy", str(empty), "--name", "web", clock=time.time)
    assert missing.code == Exit.REFUSED and "cannot read" in missing.err
    assert blank.code == Exit.REFUSED and "empty" in blank.err
    assert stacks_bucket.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_the_bucket_from_the_stack_output(world, stacks_bucket, compose, monkeypatch):
    # Given no bucket named, and the cluster's stack with its StacksBucketName output
    monkeypatch.delenv("SWARMKEEPER_STACKS_BUCKET")
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"StacksBucketName": {"Value": BUCKET}},
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=f"swarmkeeper-{CLUSTER}", TemplateBody=json.dumps(template)
    )

    # When / Then
    result = cli("deploy", compose, "--name", "web", "--no-wait", clock=time.time)
    assert result.code == Exit.OK and f"s3://{BUCKET}/stacks/web.yml" in result.err


def test_no_bucket_and_no_stack(world, stacks_bucket, compose, monkeypatch):
    monkeypatch.delenv("SWARMKEEPER_STACKS_BUCKET")
    result = cli("deploy", compose, "--name", "web", clock=time.time)
    assert result.code == Exit.NO_CLUSTER and result.err.count("\n") == 1


def test_rm_stack_deletes_the_file_and_waits_for_stack_removed_of_its_delete_marker(world, stacks_bucket):
    # Given a deployed stack's file
    stacks_bucket.put_object(Bucket=BUCKET, Key="stacks/web.yml", Body=COMPOSE.encode())

    # When it is removed, and the stacks flow removes the stack
    result = cli("rm-stack", "web", clock=time.time, sleep=polls(outcome(stacks_bucket, "Stack Removed")))

    # Then a delete marker is the file's latest version, and the outcome is that marker's
    assert result.code == Exit.OK, result.err
    (marker,) = stacks_bucket.list_object_versions(Bucket=BUCKET)["DeleteMarkers"]
    assert marker["IsLatest"] and marker["VersionId"] in result.err
    assert "rm-stack: Stack Removed: web" in result.out


def test_rm_stack_of_a_stack_that_is_not_there(world, stacks_bucket):
    result = cli("rm-stack", "web", clock=time.time)
    assert result.code == Exit.REFUSED and "no stack web" in result.err
    assert versions(stacks_bucket) == []


def test_stacks_lists_the_records(world, stacks_bucket):
    # Given two stacks as the stacks flow records them
    records = StackRecords(
        StateTable(boto3.client("dynamodb", region_name=REGION), f"swarmkeeper-{CLUSTER}-state")
    )
    records.save(StackRecord(name="web", version=1, wanted="v2", deployed="v2"))
    records.save(StackRecord(name="api", version=1, wanted="v7", refused="v7", reason="no image"))

    # When / Then
    result = cli("stacks", clock=time.time)
    rows = [line.split()[:2] for line in result.lines[1:]]
    assert result.code == Exit.OK and rows == [["api", "refused"], ["web", "deployed"]]
    assert cli("stacks", "--json", clock=time.time).json["stacks"][0]["reason"] == "no image"
