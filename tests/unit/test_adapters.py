"""Adapters against moto, and against botocore's Stubber where moto lacks the call."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber
from join_world import TABLE, new_session
from moto import mock_aws

from swarmkeeper import inputs
from swarmkeeper.adapters.bus import EventBus, PublishFailed
from swarmkeeper.adapters.clients import AwsClients, client_config
from swarmkeeper.adapters.commands import AgentNotRegistered, RunCommands
from swarmkeeper.adapters.instances import Ec2Instances
from swarmkeeper.adapters.lifecycle import LifecycleActions
from swarmkeeper.adapters.parameters import ClusterParameters
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.adapters.steps import StepQueue
from swarmkeeper.domain.join_types import JoinStepDue
from swarmkeeper.domain.kernel import BusEvent
from swarmkeeper.domain.leave_types import LeaveStepDue
from swarmkeeper.domain.models import JoinOp, Mode, Role, RotationOp, Stage

NOW = 1_800_000_000.0
CID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def aws():
    with mock_aws():
        yield AwsClients(new_session())


@pytest.fixture
def table(aws):
    aws.dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return StateTable(aws.dynamodb, TABLE)


def a_join(**kw) -> JoinOp:
    base = JoinOp(
        "i-0aaaaaaaaaaaaaaa1", Role.MANAGER, "g", Stage.WAITING, 1, NOW, NOW + 300, "evt", "lifecycle"
    )
    return JoinOp(**{**base.__dict__, **kw})


def test_clients_retry_adaptively():
    config = client_config()
    assert config.retries == {"mode": "adaptive", "max_attempts": 8}


def test_op_create_is_conditional_and_save_is_versioned(table):
    # Given a join op
    op = a_join()
    # When created twice, Then the second (a duplicate event) loses
    assert table.create_op(op) and not table.create_op(op)
    # When saved at the next version, Then it round-trips; a stale save loses
    moved = a_join(version=2, stage=Stage.BOOTSTRAPPING, mode=Mode.INIT, command_id="c1")
    assert table.save_op(moved) and table.get_op(op.instance_id) == moved
    assert not table.save_op(a_join(version=2, stage=Stage.FAILED))
    assert table.get_op("i-0ffffffffffffffff") is None


def test_init_lock_expires_and_is_released_only_by_its_holder(table):
    # Given manager A holds the lock
    assert table.acquire_lock("A", NOW, NOW + 60)
    # Then B cannot take it while it is live; A can take it again
    assert not table.acquire_lock("B", NOW + 30, NOW + 90)
    assert table.acquire_lock("A", NOW + 30, NOW + 90)
    # When it has expired, Then B takes it; A can no longer release it
    assert table.acquire_lock("B", NOW + 91, NOW + 151)
    assert not table.release_lock("A")
    assert table.get_lock().holder == "B"
    assert table.release_lock("B") and table.get_lock() is None


def test_nodes_and_health(table):
    table.record_node("i-1", "n1", "manager", NOW)
    table.record_node("i-2", "n2", "manager", NOW)
    table.mark_healthy("i-2", NOW + 5)
    assert table.healthy_at(["i-1", "i-2", "i-3"]) == {"i-1": NOW, "i-2": NOW + 5, "i-3": 0.0}


def test_one_rotation_at_a_time(table):
    first = RotationOp("", "", "", "evt", NOW + 100)
    assert table.start_rotation(first, NOW) and not table.start_rotation(first, NOW + 1)
    table.save_rotation(RotationOp("c1", "i-1", "n1", "evt", NOW + 100))
    assert table.get_rotation().command_id == "c1"
    assert not table.end_rotation("c0") and table.end_rotation("c1")
    assert table.start_rotation(first, NOW + 200)


def test_instances_describe_tag_and_joined_managers(aws):
    ec2 = aws.ec2
    tags = [{"Key": "aws:autoscaling:groupName", "Value": "swarmkeeper-demo-managers"}]
    ids = [
        i["InstanceId"]
        for i in ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=2,
            MaxCount=2,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "x"}]}],
        )["Instances"]
    ]
    ec2.create_tags(Resources=ids, Tags=tags)
    instances = Ec2Instances(ec2)
    facts = instances.describe(ids[0])
    assert facts.state == "running" and facts.private_ip and facts.group == "swarmkeeper-demo-managers"
    assert instances.describe("i-0ffffffffffffffff") is None
    instances.tag_node_id(ids[0], "node1")
    assert instances.describe(ids[0]).node_id == "node1"
    assert [m.instance_id for m in instances.joined_managers("swarmkeeper-demo-managers")] == [ids[0]]
    instances.clear_node_id(ids[0])  # back in the warm pool: no node any more
    assert instances.describe(ids[0]).node_id is None
    assert instances.joined_managers("swarmkeeper-demo-managers") == []


def test_cluster_id_parameter(aws):
    params = ClusterParameters(aws.ssm, "/swarmkeeper/demo")
    assert params.cluster_id() is None
    aws.ssm.put_parameter(Name="/swarmkeeper/demo/cluster-id", Value="s1", Type="String")
    assert params.cluster_id() == "s1"


@pytest.mark.parametrize(
    ("step", "asked", "delay"),
    [
        (JoinStepDue("i-0123456789abcdef0", 2, "e"), 45, 45),
        (LeaveStepDue("i-0123456789abcdef0", 7, "e"), 5000, 900),  # SQS's largest delay
        (JoinStepDue("i-0123456789abcdef0", 3, ""), -5, 0),
    ],
)
def test_steps_are_delayed_messages_on_the_queue(aws, step, asked, delay):
    # Given the step queue (moto's SQS)
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    url = aws.sqs.create_queue(QueueName="swarmkeeper-demo-steps")["QueueUrl"]
    sent: list[dict] = []
    aws.sqs.meta.events.register(
        "before-parameter-build.sqs.SendMessage", lambda params, **_: sent.append(dict(params))
    )

    # When a step is scheduled with a delay
    StepQueue(aws.sqs, url).schedule(step, asked)

    # Then SendMessage asked for that delay (0-900 s: what SQS accepts), with the step as the body,
    # and the queue holds one message with that delay and that body
    assert [(p["DelaySeconds"], inputs.step_body(p["MessageBody"])) for p in sent] == [(delay, step)]
    queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues["swarmkeeper-demo-steps"]
    (message,) = queue._messages
    if delay:
        assert (message.delayed_until - message.sent_timestamp) // 1000 == delay
    else:
        assert not message.delayed
    assert inputs.step_body(message.body) == step

    # And it is delivered only once its delay is up, as the step
    def receive() -> list[str]:
        answer = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        return [m["Body"] for m in answer.get("Messages", [])]

    if delay:
        assert receive() == []
        message.delayed_until = 0  # the delay is up
    assert [inputs.step_body(body) for body in receive()] == [step]


def test_run_command_send_and_invocation(aws):
    commands = RunCommands(aws.ssm)
    with Stubber(aws.ssm) as stub:
        stub.add_client_error("send_command", "InvalidInstanceId", "not registered")
        with pytest.raises(AgentNotRegistered):
            commands.send("doc", "i-1", {"Role": "worker"}, "c")
        stub.add_response(
            "get_command_invocation",
            {
                "Status": "Success",
                "StandardOutputContent": "node-id=x",
                "StandardErrorContent": "",
                "Comment": "c",
            },
            {"CommandId": CID, "InstanceId": "i-1"},
        )
        inv = commands.invocation(CID, "i-1")
        assert (inv.status, inv.stdout, inv.comment) == ("Success", "node-id=x", "c")
        stub.add_client_error("get_command_invocation", "InvocationDoesNotExist")
        assert commands.invocation(CID, "i-1") is None
    # and on moto: the command goes out with output nowhere but GetCommandInvocation
    command_id = commands.send("doc", "i-1", {"Role": "worker"}, "swarmkeeper join i-1")
    assert aws.ssm.list_commands(CommandId=command_id)["Commands"][0]["Comment"] == "swarmkeeper join i-1"


def test_lifecycle_completion_and_nothing_to_complete(aws):
    lifecycle = LifecycleActions(aws.autoscaling)
    expected = {
        "AutoScalingGroupName": "g",
        "LifecycleHookName": "swarmkeeper-launch",
        "InstanceId": "i-1",
        "LifecycleActionResult": "CONTINUE",
    }
    with Stubber(aws.autoscaling) as stub:
        stub.add_response("complete_lifecycle_action", {}, expected)
        assert lifecycle.complete("g", "swarmkeeper-launch", "i-1", "CONTINUE")
        stub.add_client_error(
            "complete_lifecycle_action", "ValidationError", "No active Lifecycle Action found"
        )
        assert not lifecycle.complete("g", "swarmkeeper-launch", "i-1", "CONTINUE")
        stub.add_client_error("complete_lifecycle_action", "ResourceContention")
        with pytest.raises(Exception, match="ResourceContention"):
            lifecycle.complete("g", "swarmkeeper-launch", "i-1", "CONTINUE")


def test_bus_publishes_and_reports_failed_entries(aws):
    aws.events.create_event_bus(Name="swarmkeeper-demo")
    bus = EventBus(aws.events, "swarmkeeper-demo")
    node_id = "n" * 25
    event = BusEvent(
        "Node Joined", "demo", "i-0123456789abcdef0", node_id, "worker", "ok SWMTKN-1-abc", "evt"
    )
    bus.publish(event)  # moto accepts it
    with Stubber(aws.events) as stub:
        stub.add_response(
            "put_events",
            {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}]},
        )
        with pytest.raises(PublishFailed, match="InternalFailure"):
            bus.publish(event)
