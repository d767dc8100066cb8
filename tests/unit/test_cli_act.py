"""The CLI's acting verbs (reconcile, rotate-tokens, drain, redrive, deploy / stacks / rm-stack)
against a moto region in which the real handlers run the cluster: each goes through the control
plane's own path, waits for its outcome with progress shown, and exits with the documented code."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from cli_run import add_timeline, cli, fake_control_plane, publish
from join_world import CLUSTER, REGION, WORKERS, load_event

from swarmkeeper_cli.errors import Exit

DLQ = f"swarmkeeper-{CLUSTER}-dlq"
STEPS = f"swarmkeeper-{CLUSTER}-steps"
LEAVE_BUDGET_SPENT = 3 * 3600  # seconds: past any leave's drain and removal budget


@pytest.fixture
def control_plane(world, monkeypatch):
    add_timeline()
    return fake_control_plane(world, monkeypatch)


def steps_of(world, *actions: Callable[[], Any]) -> Callable[[float], None]:
    """A sleep that lets the control plane move on: one action per poll, the world's clock advancing."""
    pending = list(actions)

    def sleep(seconds: float) -> None:
        world.clock.advance(seconds)
        if pending:
            pending.pop(0)()

    return sleep


def idle(world) -> Callable[[float], None]:
    return steps_of(world)


# --- reconcile --------------------------------------------------------------------------------------


def test_reconcile_starts_the_pass_and_waits_for_its_view(world, cluster, control_plane):
    # Given a healthy cluster
    before = world.clock.now

    # When the operator asks for a reconcile pass, and its describe-swarm answers while the CLI waits
    result = cli("reconcile", clock=world.clock, sleep=steps_of(world, world.answer_describe))

    # Then the reconcile function ran with an id of the CLI's, the pass's progress was shown, and the
    # answer is the new view
    assert result.code == Exit.OK, result.err
    ((handler, kind, payload),) = control_plane["lambda"].invoked
    assert handler == "reconcile" and kind == "RequestResponse" and len(payload["id"]) == 36
    assert "describe-swarm on i-" in result.err
    assert "pass done at" in result.out and "4 nodes, quorum margin 1" in result.out
    assert world.clock.now > before


def test_reconcile_no_wait_returns_once_started(world, cluster, control_plane):
    result = cli("reconcile", "--no-wait", "--json", clock=world.clock)
    assert result.code == Exit.OK and result.json["outcome"] == "reconcile"


def test_reconcile_that_never_answers_times_out(world, cluster, control_plane):
    # Given a describe-swarm that never answers / When the CLI waits 10 s / Then it says so
    result = cli("reconcile", "--timeout", "10", clock=world.clock, sleep=idle(world))
    assert result.code == Exit.TIMEOUT and "may still complete" in result.err


def test_reconcile_while_a_pass_is_in_flight_follows_that_pass(world, cluster, control_plane):
    # Given a pass already in flight
    world.invoke("reconcile", load_event("scheduled-event"))

    # When the operator asks for one / Then the CLI follows the one in flight to its view
    result = cli("reconcile", clock=world.clock, sleep=steps_of(world, world.answer_describe))
    assert result.code == Exit.OK, result.err
    assert "pass done" in result.out


def test_reconcile_that_ends_without_a_view_is_a_failure(world, cluster, control_plane):
    # Given a describe-swarm that fails on every manager
    def fail() -> None:
        for sent in world.sent("describe-swarm"):
            if sent.command_id not in world.answered:
                world.answered.add(sent.command_id)
                world.finish(sent, status="Failed", stderr="docker: not reachable")

    # When / Then
    result = cli("reconcile", clock=world.clock, sleep=steps_of(world, *[fail] * 8))
    assert result.code == Exit.FAILED and "without a new swarm view" in result.out


# --- rotate-tokens ----------------------------------------------------------------------------------


def test_rotate_tokens_runs_the_rotation_and_waits_for_join_tokens_rotated(world, cluster, control_plane):
    # Given a cluster; the rotation's command succeeds while the CLI waits
    def rotated() -> None:
        (rotate,) = world.sent("rotate-tokens")
        world.finish(rotate, stdout="rotated=worker,manager\n")

    # When the operator rotates the tokens
    result = cli("rotate-tokens", clock=time.time, sleep=steps_of(world, rotated))

    # Then the rotate_tokens function ran, and the CLI saw its Join Tokens Rotated, by correlation id
    assert result.code == Exit.OK, result.err
    assert "both join tokens rotated on i-" in result.out
    assert "rotate-tokens on i-" in result.err
    ((handler, _, payload),) = control_plane["lambda"].invoked
    assert handler == "rotate_tokens"
    event = cli("events", "--json", "--type", "Join Tokens Rotated", clock=time.time).json
    assert event["detail"]["correlationId"] == payload["id"]


def test_rotate_tokens_waits_for_its_own_rotation_not_anothers(world, cluster, control_plane):
    # Given another rotation's Join Tokens Rotated arriving while ours runs
    def rotated() -> None:
        (rotate,) = world.sent("rotate-tokens")
        world.finish(rotate, stdout="rotated=worker,manager\n")

    def another() -> None:
        publish("Join Tokens Rotated", role="manager", instanceId="i-0fffffffffffffff0")

    # When / Then: the CLI's answer is its own rotation's event
    result = cli("rotate-tokens", "--json", clock=time.time, sleep=steps_of(world, another, rotated))
    ((_, _, payload),) = control_plane["lambda"].invoked
    assert result.code == Exit.OK and result.json["event"]["detail"]["correlationId"] == payload["id"]


def test_rotate_tokens_that_fails_on_the_manager(world, cluster, control_plane):
    def failed() -> None:
        (rotate,) = world.sent("rotate-tokens")
        world.finish(rotate, status="Failed", stderr="rotate-tokens: put-parameter failed")

    result = cli("rotate-tokens", clock=time.time, sleep=steps_of(world, failed))
    assert result.code == Exit.FAILED and "without Join Tokens Rotated" in result.out


def test_rotate_tokens_without_a_manager_to_run_on(world, control_plane):
    # Given no joined manager / When / Then: the function says so, the CLI exits 1 at once
    result = cli("rotate-tokens", clock=time.time)
    assert result.code == Exit.FAILED and "not started" in result.out


# --- drain ------------------------------------------------------------------------------------------


def _leave_to_the_end(world, nodes: dict[str, str], instance_id: str) -> list[Callable[[], Any]]:
    node = nodes[instance_id]

    def drained() -> None:
        (drain,) = world.commands_for("drain-node", node)[-1:]
        world.finish(drain, stdout=f"node-id={node} tasks-remaining=0\n")

    def left() -> None:
        (leave,) = [s for s in world.sent("leave-swarm") if s.instance_id == instance_id][-1:]
        world.finish(leave, stdout="left=true\n")

    def removed() -> None:
        remove = world.commands_for("remove-node", node)[-1]
        world.finish(remove, stdout=f"node-id={node} removed=true\n")

    return [drained, left, removed]


def test_drain_a_worker_leaves_gracefully_through_auto_scaling(world, cluster, control_plane):
    # Given a joined worker
    _, workers, nodes = cluster
    worker = workers[0]

    # When the operator drains it, and the control plane's leave goes on while the CLI waits
    result = cli(
        "drain", worker, clock=time.time, sleep=steps_of(world, *_leave_to_the_end(world, nodes, worker))
    )

    # Then Auto Scaling was asked to terminate it without shrinking the group, the leave's stages
    # were shown, and it ends drained and removed
    assert result.code == Exit.OK, result.err
    assert control_plane["autoscaling"].terminated == [
        {"InstanceId": worker, "ShouldDecrementDesiredCapacity": False}
    ]
    assert "leave: draining" in result.err and "leave: done" in result.err
    assert "drained and removed from the swarm" in result.out
    assert world.terminate_results(worker) == ["CONTINUE"]


def test_drain_whose_leave_ends_without_the_node_removed_fails(world, cluster, control_plane):
    # Given a joined worker whose drain and leave go through, but whose remove-node fails after the
    # leave's budget is spent (the control plane gives up and leaves the node to reconcile)
    _, workers, nodes = cluster
    worker = workers[0]
    drained, left, _ = _leave_to_the_end(world, nodes, worker)

    def removal_fails_too_late() -> None:
        remove = world.commands_for("remove-node", nodes[worker])[-1]
        world.clock.advance(LEAVE_BUDGET_SPENT)
        world.finish(remove, status="Failed", stderr="Error response from daemon: node is busy\n")

    # When the operator drains it and waits
    result = cli(
        "drain",
        worker,
        "--json",
        clock=time.time,
        sleep=steps_of(world, drained, left, removal_fails_too_late),
    )

    # Then the leave ended (the instance let go) but without its node removed: the CLI says so, exit 1
    assert result.code == Exit.FAILED, result.err
    assert result.json["removed"] is False and result.json["reason"].startswith("gave up removing")
    assert world.terminate_results(worker) == ["CONTINUE"]


def test_drain_decrement_shrinks_the_group(world, cluster, control_plane):
    _, workers, _ = cluster
    result = cli("drain", workers[0], "--decrement", "--no-wait", clock=time.time)
    assert result.code == Exit.OK
    assert control_plane["autoscaling"].terminated[0]["ShouldDecrementDesiredCapacity"] is True


@pytest.mark.parametrize(
    "forged",
    ["i-0123", "i-0123456789abcdef0; rm -rf /", "../i-0123456789abcdef0", "I-0123456789ABCDEF0", ""],
)
def test_drain_refuses_what_is_not_an_instance_id(world, cluster, control_plane, forged):
    result = cli("drain", forged, clock=time.time)
    assert result.code == Exit.REFUSED and "is not an EC2 instance id" in result.err
    assert control_plane.get("autoscaling") is None or control_plane["autoscaling"].terminated == []


def test_drain_refuses_an_instance_of_another_group(world, cluster, control_plane):
    # Given an instance of another cluster's group, tagged as if it were this cluster's
    other = world.launch("other-cluster-workers")[0]
    world.ec2.create_tags(Resources=[other], Tags=[{"Key": "swarmkeeper:cluster", "Value": CLUSTER}])

    # When / Then: Auto Scaling says which group it is in, and that is not this cluster's
    result = cli("drain", other, clock=time.time)
    assert result.code == Exit.REFUSED and "is not in cluster demo's groups" in result.err
    assert control_plane["autoscaling"].terminated == []


def test_drain_refuses_an_instance_in_no_group(world, cluster, control_plane):
    (loose,) = [
        i["InstanceId"]
        for i in world.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"]
    ]
    result = cli("drain", loose, clock=time.time)
    assert result.code == Exit.REFUSED and control_plane["autoscaling"].terminated == []


def test_drain_refuses_an_instance_already_leaving(world, cluster, control_plane, monkeypatch):
    # Given a worker Auto Scaling holds in Terminating:Wait
    _, workers, _ = cluster
    asg = boto3.client("autoscaling", region_name=REGION)
    real = asg.describe_auto_scaling_instances(InstanceIds=[workers[0]])
    real["AutoScalingInstances"][0]["LifecycleState"] = "Terminating:Wait"
    from botocore.client import BaseClient

    original = BaseClient._make_api_call

    def answer(self, operation, params):
        if operation == "DescribeAutoScalingInstances":
            return real
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", answer)

    # When / Then
    result = cli("drain", workers[0], clock=time.time)
    assert (
        result.code == Exit.REFUSED and "Terminating:Wait, not InService: a leave is under way" in result.err
    )


def test_drain_refuses_a_manager_whose_removal_would_lose_quorum(world, cluster, control_plane):
    # Given a pass that saw one manager unreachable: two of three reachable
    managers, _, nodes = cluster
    world.reconcile_pass(overrides={nodes[managers[2]]: ("ready", "unreachable")})

    # When the operator drains a reachable manager / Then the quorum guard refuses it
    result = cli("drain", managers[0], clock=time.time)
    assert result.code == Exit.REFUSED and "would lose quorum" in result.err
    assert control_plane["autoscaling"].terminated == []

    # And --force leaves it to the control plane's own guard
    forced = cli("drain", managers[0], "--force", "--no-wait", clock=time.time)
    assert forced.code == Exit.OK and len(control_plane["autoscaling"].terminated) == 1


def test_drain_a_manager_the_guard_allows(world, cluster, control_plane):
    managers, _, _ = cluster
    result = cli("drain", managers[1], "--no-wait", clock=time.time)
    assert result.code == Exit.OK and "(manager) leaves" in result.err


# --- redrive ----------------------------------------------------------------------------------------


def _dead_letters(world) -> str:
    """The DLQ with what Lambda and the step queue leave there: a failed lifecycle action, a failed
    Scheduled Event of the reconcile rule, a step, and a message nobody can tell."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    attrs = {
        "RequestID": {"DataType": "String", "StringValue": "0f6c4e6e-1b7c-4d7e-9a3b-1c2d3e4f5a6b"},
        "ErrorCode": {"DataType": "Number", "StringValue": "200"},
        "ErrorMessage": {"DataType": "String", "StringValue": "Task timed out"},
    }
    (worker,) = world.workers(1)
    lifecycle = load_event(
        "ec2-instance-launch-lifecycle-action", EC2InstanceId=worker, AutoScalingGroupName=WORKERS
    )
    scheduled = load_event("scheduled-event")
    scheduled["resources"] = [f"arn:aws:events:{REGION}:123456789012:rule/swarmkeeper-{CLUSTER}-reconcile"]
    step = {"kind": "join", "instanceId": worker, "version": 1, "wait": "agent"}
    for body in (lifecycle, scheduled, step, {"what": "is this"}):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body), MessageAttributes=attrs)
    return url


def _depth(url: str) -> int:
    sqs = boto3.client("sqs", region_name=REGION)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def test_redrive_dry_run_counts_and_moves_nothing(world, cluster, control_plane):
    # Given four dead letters
    url = _dead_letters(world)

    # When the operator asks for a dry run
    result = cli("redrive", "--dry-run", "--json", clock=time.time)

    # Then each is counted by where it would go, nothing was sent, all are still there
    assert result.json["plan"] == {"lifecycle_action": 1, "reconcile": 1, "step queue": 1, "kept": 1}
    assert result.json["redriven"] == {} and "lambda" not in control_plane
    assert _depth(url) == 4
    assert result.code == Exit.FAILED  # one of them could not be redriven


def test_redrive_sends_each_back_to_its_function_or_the_step_queue(world, cluster, control_plane):
    # Given four dead letters
    url = _dead_letters(world)
    steps_before = len(world.steps_sent())

    # When the operator redrives them
    result = cli("redrive", clock=time.time)

    # Then the events went back to their functions, asynchronously as EventBridge invokes them, the
    # step to the step queue, and only the unknown one is left, said so, exit 1
    invoked = [(handler, kind) for handler, kind, _ in control_plane["lambda"].invoked]
    assert sorted(invoked) == [("lifecycle_action", "Event"), ("reconcile", "Event")]
    sqs = boto3.client("sqs", region_name=REGION)
    steps_url = sqs.get_queue_url(QueueName=STEPS)["QueueUrl"]
    assert _depth(steps_url) >= 1 or len(world.steps_sent()) > steps_before
    assert _depth(url) == 1
    assert "kept in the queue: 1" in result.out and result.code == Exit.FAILED


def test_redrive_of_an_empty_queue(world, cluster, control_plane):
    boto3.client("sqs", region_name=REGION).create_queue(QueueName=DLQ)
    result = cli("redrive", clock=time.time)
    assert result.code == Exit.OK and "empty, nothing to redrive" in result.out


def test_redrive_by_the_rule_that_could_not_deliver(world, cluster, control_plane):
    # Given an event a rule could not deliver (EventBridge's DLQ attributes name the target)
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    target = f"arn:aws:lambda:{REGION}:123456789012:function:swarmkeeper-{CLUSTER}-alarm"
    body = json.dumps({"detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch"})
    sqs.send_message(
        QueueUrl=url,
        MessageBody=body,
        MessageAttributes={"TARGET_ARN": {"DataType": "String", "StringValue": target}},
    )

    # When / Then: it is planned for the rule's target
    result = cli("redrive", "--dry-run", "--json", clock=time.time)
    assert result.json["plan"] == {"alarm": 1}


def test_redrive_never_sends_to_another_clusters_function(world, cluster, control_plane):
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    target = f"arn:aws:lambda:{REGION}:123456789012:function:swarmkeeper-other-alarm"
    sqs.send_message(
        QueueUrl=url,
        MessageBody="{}",
        MessageAttributes={"TARGET_ARN": {"DataType": "String", "StringValue": target}},
    )
    result = cli("redrive", "--dry-run", "--json", clock=time.time)
    assert result.json["plan"] == {"kept": 1}


def test_redrive_without_the_queue(world, control_plane):
    result = cli("redrive", clock=time.time)
    assert result.code == Exit.NO_CLUSTER and "cluster demo not found" in result.err
