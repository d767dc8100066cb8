"""The SSM agent and the Run Command operations the lab adds to moto, with a fake node."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from lab.agent import AgentKnobs, SsmAgents, render_commands
from lab.provision import AssociationSpec
from tests.lab.helpers import FakeNode, embedded_region, factory

DOC = {
    "schemaVersion": "2.2",
    "description": "test",
    "parameters": {
        "Name": {"type": "String", "allowedPattern": "^[a-z]+$"},
        "Code": {"type": "String", "allowedPattern": "^[0-9]$", "default": "0"},
    },
    "mainSteps": [
        {
            "action": "aws:runShellScript",
            "name": "step",
            "inputs": {
                "runCommand": [
                    "export SK_NAME='{{ Name }}'",
                    "echo hello $SK_NAME from $AWS_SSM_INSTANCE_ID; echo oops >&2; exit {{ Code }}",
                ]
            },
        }
    ],
}


@pytest.fixture
def lab_ssm():
    with embedded_region() as region:
        events: list[dict] = []
        agents = SsmAgents(
            region,
            factory(region),
            events.append,
            lambda agent: {"PATH": "/usr/bin:/bin"},
            knobs=AgentKnobs(registration_delay=0.3),
        )
        agents.install()
        ssm, ec2 = region.client("ssm"), region.client("ec2")
        ssm.create_document(
            Name="test-doc", Content=json.dumps(DOC), DocumentType="Command", DocumentFormat="JSON"
        )
        iid = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        yield agents, ssm, iid, events
        agents.close()


def _wait_done(ssm, command_id, iid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inv = ssm.get_command_invocation(CommandId=command_id, InstanceId=iid)
        if inv["Status"] not in ("Pending", "InProgress"):
            return inv
        time.sleep(0.05)
    raise AssertionError("command did not finish")


def test_render_substitutes_parameters_and_defaults():
    steps = render_commands(DOC, {"Name": ["world"]})
    assert steps[0][1].splitlines()[0] == "export SK_NAME='world'"
    assert steps[0][1].endswith("exit 0")


def test_send_command_before_registration_fails_like_aws(lab_ssm):
    agents, ssm, iid, _ = lab_ssm
    # Given an instance whose agent has not registered yet
    agents.attach(iid, FakeNode(), "10.97.0.5", "host", delay=5)
    # When a command is sent to it, Then AWS's InvalidInstanceId comes back
    with pytest.raises(ClientError) as err:
        ssm.send_command(InstanceIds=[iid], DocumentName="test-doc", Parameters={"Name": ["x"]})
    assert err.value.response["Error"]["Code"] == "InvalidInstanceId"
    with pytest.raises(ClientError):
        ssm.send_command(
            InstanceIds=["i-0000000000000000f"], DocumentName="test-doc", Parameters={"Name": ["x"]}
        )


def test_command_runs_the_document_and_reports_truthfully(lab_ssm):
    agents, ssm, iid, events = lab_ssm
    node = FakeNode()
    agents.attach(iid, node, "10.97.0.5", "host", delay=0)
    # When the command runs
    cid = ssm.send_command(InstanceIds=[iid], DocumentName="test-doc", Parameters={"Name": ["world"]})[
        "Command"
    ]["CommandId"]
    inv = _wait_done(ssm, cid, iid)
    # Then status, exit code and output are the script's
    assert inv["Status"] == "Success" and inv["ResponseCode"] == 0
    assert inv["StandardOutputContent"] == f"hello world from {iid}\n"
    assert inv["StandardErrorContent"] == "oops\n"
    listed = ssm.list_command_invocations(CommandId=cid, Details=True)["CommandInvocations"]
    assert [x["Status"] for x in listed] == ["Success"]
    assert "hello world" in listed[0]["CommandPlugins"][0]["Output"]
    statuses = [
        e["detail"]["status"] for e in events if e["detail-type"].startswith("EC2 Command Invocation")
    ]
    assert statuses == ["Pending", "InProgress", "Success"]
    assert any(e["detail-type"] == "EC2 Command Status-change Notification" for e in events)
    # and the documents' scratch directories go under the node's own directory
    ((_, env),) = node.ran
    assert env["SWARMKEEPER_RUN_DIR"] == str(node.run_dir) == str(node.root_dir / "run")


def test_command_runs_only_on_the_instances_it_names(lab_ssm):
    agents, ssm, iid, _ = lab_ssm
    # Given two registered instances (moto alone would send a Targets-less command to both)
    other = lab_ssm_other_instance(ssm)
    first, second = FakeNode(), FakeNode()
    agents.attach(iid, first, "10.97.0.5", "host", delay=0)
    agents.attach(other, second, "10.97.0.6", "other", delay=0)
    # When a command names only the first
    cid = ssm.send_command(InstanceIds=[iid], DocumentName="test-doc", Parameters={"Name": ["one"]})[
        "Command"
    ]["CommandId"]
    _wait_done(ssm, cid, iid)
    # Then only the first ran it, and only it has an invocation
    listed = ssm.list_command_invocations(CommandId=cid)["CommandInvocations"]
    assert [x["InstanceId"] for x in listed] == [iid]
    assert first.ran and not second.ran


def lab_ssm_other_instance(ssm) -> str:
    ec2 = boto3.client(
        "ec2",
        region_name=ssm.meta.region_name,
        endpoint_url=ssm.meta.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


def test_failing_script_is_failed_with_its_exit_code(lab_ssm):
    agents, ssm, iid, _ = lab_ssm
    agents.attach(iid, FakeNode(), "10.97.0.5", "host", delay=0)
    cid = ssm.send_command(
        InstanceIds=[iid], DocumentName="test-doc", Parameters={"Name": ["x"], "Code": ["3"]}
    )["Command"]["CommandId"]
    inv = _wait_done(ssm, cid, iid)
    assert (inv["Status"], inv["ResponseCode"]) == ("Failed", 3)
    assert ssm.list_commands(CommandId=cid)["Commands"][0]["Status"] == "Failed"


def test_parameters_that_do_not_fit_the_document_are_refused(lab_ssm):
    agents, ssm, iid, _ = lab_ssm
    agents.attach(iid, FakeNode(), "10.97.0.5", "host", delay=0)
    for params in ({"Name": ["a b"]}, {}, {"Name": ["x"], "Bogus": ["1"]}):
        with pytest.raises(ClientError) as err:
            ssm.send_command(InstanceIds=[iid], DocumentName="test-doc", Parameters=params)
        assert err.value.response["Error"]["Code"] == "InvalidParameters"


def test_describe_instance_information_lists_registered_agents(lab_ssm):
    agents, ssm, iid, _ = lab_ssm
    assert ssm.describe_instance_information()["InstanceInformationList"] == []
    agents.attach(iid, FakeNode(), "10.97.0.5", "host", delay=0)
    info = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [iid]}])
    assert [(i["InstanceId"], i["PingStatus"]) for i in info["InstanceInformationList"]] == [(iid, "Online")]


def _association_events(events, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [
            e for e in events if e["detail-type"] == "EC2 State Manager Instance Association State Change"
        ]
        if found:
            return found
        time.sleep(0.05)
    return []


def test_registering_agent_applies_the_associations_that_target_it(lab_ssm):
    agents, _, iid, events = lab_ssm
    # Given an association on the tag swarmkeeper:cluster=demo, and an instance with that tag
    agents.associations = [
        AssociationSpec("a-1", "test-doc", [{"Key": "tag:swarmkeeper:cluster", "Values": ["demo"]}]),
        AssociationSpec("a-2", "test-doc", [{"Key": "tag:swarmkeeper:cluster", "Values": ["other"]}]),
    ]
    agents.region.client("ec2").create_tags(
        Resources=[iid], Tags=[{"Key": "swarmkeeper:cluster", "Value": "demo"}]
    )
    node = FakeNode()
    # When its agent registers
    agents.attach(iid, node, "10.97.0.5", "host", delay=0.2)
    # Then the matching association ran its document on the node (default parameters) and its
    # documented status event says Success for that instance; the other association did not run
    (event,) = _association_events(events)
    assert event["source"] == "aws.ssm"
    assert event["detail"]["association-id"] == "a-1"
    assert event["detail"]["instance-id"] == iid
    assert event["detail"]["document-name"] == "test-doc"
    assert event["detail"]["status"] == "Success"
    assert json.loads(event["detail"]["targets"]) == [{"key": "tag:swarmkeeper:cluster", "values": ["demo"]}]
    assert event["resources"][0].endswith(f":instance/{iid}")
    assert len(node.ran) == 1


def test_association_whose_script_fails_reports_failed(lab_ssm):
    agents, ssm, iid, events = lab_ssm
    # Given an association whose document exits 1 (the default Code is 0: a failing copy of the doc)
    failing = json.loads(json.dumps(DOC).replace("exit {{ Code }}", "exit 1"))
    ssm.create_document(
        Name="failing-doc", Content=json.dumps(failing), DocumentType="Command", DocumentFormat="JSON"
    )
    agents.associations = [AssociationSpec("a-3", "failing-doc", [{"Key": "InstanceIds", "Values": [iid]}])]
    # When the agent registers / Then the event says Failed
    agents.attach(iid, FakeNode(), "10.97.0.5", "host", delay=0)
    (event,) = _association_events(events)
    assert event["detail"]["status"] == "Failed"


def test_a_held_result_is_reported_only_once_released(lab_ssm):
    agents, ssm, iid, events = lab_ssm
    agents.attach(iid, FakeNode(), "10.97.0.5", "host", delay=0)
    # Given the results of the document on this instance are held back
    hold = agents.hold("test-doc", lambda instance_id: instance_id == iid)
    # When the command runs to its end
    cid = ssm.send_command(InstanceIds=[iid], DocumentName="test-doc", Parameters={"Name": ["world"]})[
        "Command"
    ]["CommandId"]
    deadline = time.monotonic() + 10
    while not hold.held and time.monotonic() < deadline:
        time.sleep(0.05)

    # Then what it would report is there, but the invocation says InProgress and no final status went out
    (held,) = hold.held
    assert (held.command_id, held.instance_id, held.status) == (cid, iid, "Success")
    time.sleep(0.3)
    assert ssm.get_command_invocation(CommandId=cid, InstanceId=iid)["Status"] == "InProgress"

    def statuses():
        return [
            e["detail"]["status"] for e in events if e["detail-type"].startswith("EC2 Command Invocation")
        ]

    assert statuses() == ["Pending", "InProgress"]

    # When the hold is released, then the result and its status event come
    hold.release()
    inv = _wait_done(ssm, cid, iid)
    assert inv["Status"] == "Success" and inv["StandardOutputContent"] == f"hello world from {iid}\n"
    assert statuses() == ["Pending", "InProgress", "Success"]
