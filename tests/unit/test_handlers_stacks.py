"""Stacks end to end through the handlers: S3 events of the stacks bucket (stack_object), the commands'
statuses (command_status), the reconcile pass (reconcile), on moto with a joined manager."""

from __future__ import annotations

import copy
import itertools

import pytest
from join_world import ENV, load_event

from swarmkeeper import inputs, runtime
from swarmkeeper.domain.errors import MalformedEvent
from swarmkeeper.domain.stacks import StackRecord
from swarmkeeper.settings import RuntimeSettings

BUCKET = ENV["STACKS_BUCKET"]
SECRET_VALUE = "hunter2-the-db-password"
_sequence = itertools.count(0x617F08299329D189)


def object_event(
    key: str = "stacks/app.yml",
    version: str = "v1",
    sequencer: str | None = None,
    deletion: str | None = None,
    event_id: str | None = None,
) -> dict:
    """An S3 event as EventBridge delivers it (tests/events), for one key and version."""
    event = load_event("s3-object-deleted" if deletion else "s3-object-created", event_id=event_id)
    event = copy.deepcopy(event)
    detail = event["detail"]
    detail["object"].update(
        {"key": key, "version-id": version, "sequencer": sequencer or f"{next(_sequence):018X}"}
    )
    if deletion:
        detail["deletion-type"] = deletion
    return event


@pytest.fixture
def manager(world):
    (m,) = world.managers(1)
    return m, world.join(m)


def records(world):
    return {i["pk"]: i for i in world.items() if i["pk"].startswith("stack#")}


def refused(world, sent, reason="service web: image nosuch/image:1 does not exist"):
    return world.finish(
        sent, status="Failed", stdout="stack=app refused=true\n", stderr=f"deploy-stack: {reason}\n"
    )


def test_a_new_file_is_deployed_on_a_joined_manager_and_stack_deployed_is_published(world, manager):
    # Given a joined manager
    m, _ = manager

    # When stacks/app.yml version v1 is put
    answer = world.invoke("stack_object", object_event(version="v1"))

    # Then deploy-stack goes to that manager, naming the file and its version, never its content
    assert answer["outcome"] == "deploy"
    (sent,) = world.sent("deploy-stack")
    assert sent.instance_id == m
    assert sent.parameters == {
        "StackName": "app",
        "Bucket": BUCKET,
        "Key": "stacks/app.yml",
        "VersionId": "v1",
        "ParameterPrefix": "/swarmkeeper/demo",
        "Region": "us-east-1",
    }
    assert sent.comment == "swarmkeeper stack app"

    # When the command succeeds
    world.finish(sent, stdout="stack=app version=v1 services=1 secrets=0\n")

    # Then Stack Deployed is on the bus with the stack and the object version
    (event,) = world.published("Stack Deployed")
    assert (event["stack"], event["key"], event["versionId"]) == ("app", "stacks/app.yml", "v1")
    assert event["instanceId"] == m and event["cluster"] == "demo"
    assert records(world)["stack#app"]["deployed"] == "v1"


@pytest.mark.parametrize("order", ["in-order", "reordered"])
def test_two_quick_versions_end_with_the_newer_deployed(world, manager, order):
    # Given two puts of the same file in quick succession
    first, second = object_event(version="v1"), object_event(version="v2")
    events = [first, second] if order == "in-order" else [second, first]

    # When their events arrive (in either order) while the first deploy runs
    for event in events:
        world.invoke("stack_object", event)
    for _ in range(3):  # each deploy finishes; a wanted newer version follows it
        for sent in world.sent("deploy-stack"):
            if sent.command_id not in world.answered:
                world.answered.add(sent.command_id)
                world.finish(sent, stdout=f"stack=app version={sent.parameters['VersionId']}\n")

    # Then the newer one is what runs, and one command ran at a time
    assert records(world)["stack#app"]["deployed"] == "v2"
    versions = [s.parameters["VersionId"] for s in world.sent("deploy-stack")]
    assert versions == (["v1", "v2"] if order == "in-order" else ["v2"])
    assert world.published("Stack Deployed")[-1]["versionId"] == "v2"


def test_bad_input_is_a_clear_stack_deploy_failed_and_is_never_tried_again(world, manager):
    # Given a file whose image does not exist
    version = world.s3.put_object(Bucket=BUCKET, Key="stacks/app.yml", Body=b"x")["VersionId"]
    world.invoke("stack_object", object_event(version=version))
    (sent,) = world.sent("deploy-stack")

    # When deploy-stack refuses it
    answer = refused(world, sent)

    # Then Stack Deploy Failed says why, with the version
    assert answer["outcome"] == "deploy-failed"
    (event,) = world.published("Stack Deploy Failed")
    assert (event["stack"], event["versionId"]) == ("app", version)
    assert "image nosuch/image:1 does not exist" in event["reason"]
    # and no reconcile pass sends it again (no retry loop)
    for _ in range(2):
        world.reconcile_pass()
    assert len(world.sent("deploy-stack")) == 1
    assert records(world)["stack#app"]["refused"] == version


def test_a_name_swarm_refuses_is_a_deploy_failure_without_a_command(world, manager):
    answer = world.invoke("stack_object", object_event(key="stacks/my.app.yml"))
    assert answer["outcome"] == "deploy-failed"
    (event,) = world.published("Stack Deploy Failed")
    assert event["key"] == "stacks/my.app.yml" and "a stack name is 1-40 letters" in event["reason"]
    assert world.sent("deploy-stack") == [] and records(world) == {}


def test_a_deleted_file_removes_its_stack(world, manager):
    # Given app deployed
    world.invoke("stack_object", object_event(version="v1"))
    world.finish(world.sent("deploy-stack")[0], stdout="stack=app version=v1\n")

    # When the file is deleted (a delete marker)
    answer = world.invoke("stack_object", object_event(version="dm1", deletion="Delete Marker Created"))

    # Then remove-stack goes out, and Stack Removed once it is done
    assert answer["outcome"] == "remove-stack"
    (sent,) = world.sent("remove-stack")
    assert sent.parameters == {"StackName": "app"}
    world.finish(sent, stdout="stack=app removed=true\n")
    (event,) = world.published("Stack Removed")
    assert (event["stack"], event["versionId"]) == ("app", "dm1")
    assert records(world)["stack#app"]["gone"] is True


def test_a_removal_that_fails_is_stack_remove_failed_and_left_to_the_reconcile_pass(world, manager):
    # Given app deployed, then its file deleted
    world.invoke("stack_object", object_event(version="v1"))
    world.finish(world.sent("deploy-stack")[0], stdout="stack=app version=v1\n")
    world.invoke("stack_object", object_event(version="dm1", deletion="Delete Marker Created"))

    # When remove-stack fails on the manager
    (sent,) = world.sent("remove-stack")
    world.finish(sent, status="Failed", stderr="remove-stack: the swarm did not answer\n")

    # Then Stack Remove Failed says so, and the stack is not taken for gone (one try counted)
    (event,) = world.published("Stack Remove Failed")
    assert (event["stack"], event["versionId"]) == ("app", "dm1")
    assert event["reason"].startswith("remove-stack Failed")
    assert world.published("Stack Removed") == []
    record = records(world)["stack#app"]
    assert record["gone"] is False and record["attempts"] == 1


def test_a_version_deleted_for_good_redeploys_the_version_now_current(world, manager):
    # Given two versions in the bucket, the newer deployed
    older = world.s3.put_object(Bucket=BUCKET, Key="stacks/app.yml", Body=b"a")["VersionId"]
    newer = world.s3.put_object(Bucket=BUCKET, Key="stacks/app.yml", Body=b"b")["VersionId"]
    world.invoke("stack_object", object_event(version=newer))
    world.finish(world.sent("deploy-stack")[0], stdout=f"stack=app version={newer}\n")

    # When the newer version is deleted for good
    world.s3.delete_object(Bucket=BUCKET, Key="stacks/app.yml", VersionId=newer)
    world.invoke("stack_object", object_event(version=newer, deletion="Permanently Deleted"))

    # Then the older one, current again, is deployed (the bucket listed once, no file read)
    assert world.sent("deploy-stack")[-1].parameters["VersionId"] == older
    assert len(world.fakes.calls_to("ListObjectVersions")) == 1


def test_the_reconcile_pass_deploys_what_the_events_missed_with_one_listing(world, manager):
    # Given two files in the bucket whose events never came
    v_app = world.s3.put_object(Bucket=BUCKET, Key="stacks/app.yml", Body=b"a")["VersionId"]
    v_web = world.s3.put_object(Bucket=BUCKET, Key="stacks/web.yml", Body=b"b")["VersionId"]
    before = len(world.fakes.calls_to("ListObjectVersions"))

    # When the reconcile schedule fires
    world.reconcile_pass()

    # Then each is deployed at its current version, after one listing of the bucket
    sent = {s.parameters["StackName"]: s.parameters["VersionId"] for s in world.sent("deploy-stack")}
    assert sent == {"app": v_app, "web": v_web}
    assert len(world.fakes.calls_to("ListObjectVersions")) == before + 1
    # and a second pass, while they run, sends nothing more
    world.reconcile_pass()
    assert len(world.sent("deploy-stack")) == 2


def test_the_control_plane_reads_no_file_and_no_secret(world, manager):
    # Given a stack whose file and secret are in the bucket and in Parameter Store
    world.ssm.put_parameter(Name="/swarmkeeper/demo/secrets/db", Value=SECRET_VALUE, Type="SecureString")
    version = world.s3.put_object(Bucket=BUCKET, Key="stacks/app.yml", Body=b"services: {}\n")["VersionId"]

    # When it is deployed, fails once, is passed over by reconcile and deployed again
    world.invoke("stack_object", object_event(version=version))
    world.finish(world.sent("deploy-stack")[0], status="TimedOut")
    world.reconcile_pass()
    world.finish(world.sent("deploy-stack")[-1], stdout=f"stack=app version={version}\n")

    # Then no function read the file or the secret, and the value is nowhere in what they wrote
    assert world.fakes.calls_to("GetObject") == []
    assert not [c for c in world.fakes.calls_to("GetParameter") if "/secrets/" in c["Name"]]
    assert SECRET_VALUE not in world.output()
    assert all(SECRET_VALUE not in str(s.parameters) for s in world.sent())
    assert [e["versionId"] for e in world.published("Stack Deployed")] == [version]


def test_a_duplicate_event_is_handled_once(world, manager):
    event = object_event(version="v1")
    first = world.invoke("stack_object", event)
    again = world.invoke("stack_object", event)
    assert again == first and len(world.sent("deploy-stack")) == 1


@pytest.mark.parametrize(
    "broken",
    [
        lambda e: e["detail"]["object"].pop("sequencer"),
        lambda e: e["detail"]["object"].update({"version-id": "v1'; reboot"}),
        lambda e: e["detail"]["object"].update({"sequencer": "not-hex"}),
        lambda e: e["detail"].pop("bucket"),
        lambda e: e["detail"].update({"deletion-type": "Vanished"}),
    ],
    ids=["no-sequencer", "version-not-an-id", "sequencer-not-hex", "no-bucket", "unknown-deletion-type"],
)
def test_a_malformed_event_is_rejected_and_nothing_is_sent(world, manager, broken):
    event = object_event(deletion="Delete Marker Created")
    broken(event)
    with pytest.raises(MalformedEvent):
        world.invoke("stack_object", event)
    assert "malformed event rejected" in world.output()
    assert world.sent("deploy-stack") == world.sent("remove-stack") == []


def test_an_event_of_another_bucket_is_ignored(world, manager):
    event = object_event()
    event["detail"]["bucket"]["name"] = "someone-elses-bucket"
    assert world.invoke("stack_object", event)["outcome"] == "ignore"
    assert world.sent("deploy-stack") == []


def test_without_a_joined_manager_the_file_waits_for_the_reconcile_pass(world):
    assert world.invoke("stack_object", object_event(version="v1"))["outcome"] == "wait"
    assert world.sent("deploy-stack") == []
    # When a manager has joined, the pass sends it
    (m,) = world.managers(1)
    world.join(m)
    world.s3.put_object(Bucket=BUCKET, Key="stacks/app.yml", Body=b"x")
    world.reconcile_pass()
    assert [s.parameters["StackName"] for s in world.sent("deploy-stack")] == ["app"]


def test_an_event_that_loses_a_race_for_the_record_decides_again_on_it(world, manager):
    # Given v1's deploy in flight
    world.invoke("stack_object", object_event(version="v1", sequencer="0010"))
    (first,) = world.sent("deploy-stack")
    # and a handler of v2's event that read the record just before v1's deploy was recorded
    flow = runtime.get(RuntimeSettings.from_env()).stacks
    stored = flow.adapters.records.get("app")
    reads = iter([StackRecord("app")])  # what it saw: no record yet
    real_get = flow.adapters.records.get
    flow.adapters.records.get = lambda name: next(reads, None) or real_get(name)  # type: ignore[method-assign]
    try:
        # When it decides (deploy v2 at once) and its conditional write fails
        decision = flow.object_changed(
            inputs.stack_object_change(object_event(version="v2", sequencer="0011"))
        )
    finally:
        flow.adapters.records.get = real_get  # type: ignore[method-assign]

    # Then it decided again on the record as stored: v2 waits for v1's deploy, nothing else is sent
    assert decision.outcome == "wait"
    assert world.sent("deploy-stack") == [first]
    record = flow.adapters.records.get("app")
    assert (record.wanted, record.command_version, record.version) == ("v2", "v1", stored.version + 1)


def _manager_reads(world) -> int:
    return len(world.fakes.calls_to("DescribeInstances")) + len(world.fakes.calls_to("BatchGetItem"))


def test_a_pass_reads_the_managers_only_when_it_has_a_command_to_send(world, manager):
    # Given a stack deployed at its file's current version
    version = world.s3.put_object(Bucket=BUCKET, Key="stacks/app.yml", Body=b"a")["VersionId"]
    world.invoke("stack_object", object_event(version=version))
    (sent,) = world.sent("deploy-stack")
    world.finish(sent, stdout=f"stack=app version={version} services=1 secrets=0\n")
    flow = runtime.get(RuntimeSettings.from_env()).stacks
    before = _manager_reads(world)

    # When the stacks pass finds every stack as its file says
    decision = flow.reconcile("pass-1")

    # Then it sent nothing and read neither the managers' group nor their health records
    assert decision.outcome == "stacks-checked" and decision.actions == ()
    assert _manager_reads(world) == before

    # When a new version came whose event was missed
    newer = world.s3.put_object(Bucket=BUCKET, Key="stacks/app.yml", Body=b"b")["VersionId"]
    flow.reconcile("pass-2")

    # Then the pass read the managers and sent the deploy
    assert _manager_reads(world) > before
    assert world.sent("deploy-stack")[-1].parameters["VersionId"] == newer
