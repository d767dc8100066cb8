"""S3's EventBridge notifications in the lab: shaped as AWS documents them, one per change of a bucket
that has them on, with sequencers in the order of the changes, routed by the stacks rule's pattern."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pytest

from lab import s3_events
from lab.events import EventFactory, Router, RuleSpec
from lab.provision import Provisioner
from lab.s3_events import S3Events, Sequencer
from lab.template import Template
from swarmkeeper.domain.stacks import newer
from tests.lab import fixture_template
from tests.lab.helpers import embedded_region, factory

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "tests" / "events"


def _fixture(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def _shape(value: object) -> object:
    """The keys of an event, all the way down (values left out)."""
    return {k: _shape(v) for k, v in value.items()} if isinstance(value, dict) else None


def test_the_sequencer_rises_with_every_change_as_s3_sequencers_compare():
    # Given a sequencer
    sequencer = Sequencer(start=0xFF)

    # When it is asked for a few values in a row
    values = [sequencer.next() for _ in range(4)]

    # Then each is S3-shaped and newer than the one before, the way the control plane compares them
    assert values[0] == "0000000000000000FF"
    assert all(newer(later, earlier) for earlier, later in itertools.pairwise(values))


@pytest.mark.parametrize(
    ("fixture", "build"),
    [
        ("s3-object-created.json", lambda e: e.created("b", "stacks/a.yml", 5, '"e"', "v1", "PutObject")),
        ("s3-object-deleted.json", lambda e: e.deleted("b", "stacks/a.yml", "v2", "e", marker=True)),
    ],
)
def test_the_events_have_the_documented_shape(fixture, build):
    event = build(S3Events(EventFactory("eu-west-1", "123456789012")))
    assert _shape(event) == _shape(_fixture(fixture))
    assert event["source"] == "aws.s3" and event["resources"] == ["arn:aws:s3:::b"]


@pytest.fixture
def provisioned(tmp_path: Path):
    """The fixture template provisioned in an embedded region, S3's events patched in, collected."""
    path = fixture_template.write(tmp_path)
    with embedded_region() as region:
        template = Template.load(path, region=region.name, account=region.account)
        out = Provisioner(template, region, subnet_cidr="10.97.0.0/24", repo=REPO, cdk_out=None).run()
        got: list[dict] = []
        s3_events.install(got.append, S3Events(factory(region)))
        yield region, out, got


def _bucket(out, logical: str) -> str:
    (name,) = [b for b in out.buckets if logical.lower() in b]
    return name


def test_every_put_and_delete_of_the_stacks_bucket_is_an_event_in_order(provisioned):
    region, out, got = provisioned
    s3 = region.client("s3")
    bucket = _bucket(out, "stacks")
    key = "stacks/app.yml"
    # Given the stacks bucket, versioned as the template says
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    # When a file is put twice, deleted (a delete marker), the marker deleted, then a version deleted
    first = s3.put_object(Bucket=bucket, Key=key, Body=b"one")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key=key, Body=b"two!")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key=key)["VersionId"]
    s3.delete_object(Bucket=bucket, Key=key, VersionId=marker)
    s3.delete_object(Bucket=bucket, Key=key, VersionId=first)

    # Then each change is one event, in the order of the changes, with what S3 says of it
    seen = [
        (
            e["detail-type"],
            e["detail"]["object"]["version-id"],
            e["detail"]["reason"],
            e["detail"].get("deletion-type"),
        )
        for e in got
    ]
    assert seen == [
        ("Object Created", first, "PutObject", None),
        ("Object Created", second, "PutObject", None),
        ("Object Deleted", marker, "DeleteObject", "Delete Marker Created"),
        ("Object Deleted", marker, "DeleteObject", "Permanently Deleted"),
        ("Object Deleted", first, "DeleteObject", "Permanently Deleted"),
    ]
    sequencers = [e["detail"]["object"]["sequencer"] for e in got]
    assert all(newer(later, earlier) for earlier, later in itertools.pairwise(sequencers))
    assert got[1]["detail"]["object"]["size"] == 4
    assert {e["detail"]["bucket"]["name"] for e in got} == {bucket}


def test_a_copy_is_an_object_created_too(provisioned):
    region, out, got = provisioned
    s3 = region.client("s3")
    bucket = _bucket(out, "stacks")
    s3.put_object(Bucket=bucket, Key="stacks/a.yml", Body=b"x")
    s3.copy_object(Bucket=bucket, Key="stacks/b.yml", CopySource={"Bucket": bucket, "Key": "stacks/a.yml"})
    assert [(e["detail"]["object"]["key"], e["detail"]["reason"]) for e in got] == [
        ("stacks/a.yml", "PutObject"),
        ("stacks/b.yml", "CopyObject"),
    ]


def test_a_bucket_without_eventbridge_notifications_sends_nothing(provisioned):
    region, out, got = provisioned
    s3 = region.client("s3")
    bucket = _bucket(out, "output")
    s3.put_object(Bucket=bucket, Key="stacks/app.yml", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="stacks/app.yml")
    assert got == []


def test_the_stacks_rule_takes_them_to_its_function(provisioned):
    region, out, got = provisioned
    bucket = _bucket(out, "stacks")
    delivered: list[tuple[str, dict]] = []
    arrived = threading.Event()

    def invoke(target: str, event: dict) -> None:
        delivered.append((target, event))
        arrived.set()

    # Given the lab's router with the stacks rule's pattern (as infra/control_plane.py writes it)
    router = Router(invoke)
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created", "Object Deleted"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"wildcard": "stacks/*.yml"}]}},
    }
    router.add_rule(RuleSpec("stack-object", "arn:rule/stack-object", "default", ["fn-stacks"], pattern))
    router.start()
    try:
        s3 = region.client("s3")
        # When a stack file and another file are put
        s3.put_object(Bucket=bucket, Key="notes.txt", Body=b"x")
        s3.put_object(Bucket=bucket, Key="stacks/app.yml", Body=b"x")
        for event in got:
            router.put(event)
        # Then only the stack file's event reaches the function
        assert arrived.wait(5)
        assert [(t, e["detail"]["object"]["key"]) for t, e in delivered] == [("fn-stacks", "stacks/app.yml")]
    finally:
        router.stop()


def test_a_delete_in_an_unversioned_bucket_is_permanent(provisioned):
    region, _out, got = provisioned
    s3 = region.client("s3")
    # Given a bucket without versioning, with EventBridge notifications on
    s3.create_bucket(Bucket="plain-bucket", CreateBucketConfiguration={"LocationConstraint": region.name})
    s3.put_bucket_notification_configuration(
        Bucket="plain-bucket", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    # When an object is put and deleted
    s3.put_object(Bucket="plain-bucket", Key="stacks/app.yml", Body=b"x")
    s3.delete_object(Bucket="plain-bucket", Key="stacks/app.yml")
    # Then the delete removed it for good, and no event names a version
    assert [(e["detail-type"], e["detail"].get("deletion-type")) for e in got] == [
        ("Object Created", None),
        ("Object Deleted", "Permanently Deleted"),
    ]
    assert all("version-id" not in e["detail"]["object"] for e in got)
