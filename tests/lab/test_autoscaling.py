"""Lifecycle emulation: instances wait in Pending:Wait / Terminating:Wait until the action completes."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from lab.autoscaling import AutoScaling, AutoScalingKnobs
from tests.lab.helpers import embedded_region, factory

GROUP = "swarmkeeper-t-workers"


@pytest.fixture
def asg():
    with embedded_region() as region:
        events: list[dict] = []
        engine = AutoScaling(
            region,
            factory(region),
            events.append,
            AutoScalingKnobs(heartbeat_scale=1.0, health_check_delay=0.2, tick=0.05),
        )
        engine.install()
        engine.start()
        ec2, client = region.client("ec2"), region.client("autoscaling")
        lt = ec2.create_launch_template(
            LaunchTemplateName="lt", LaunchTemplateData={"ImageId": "ami-12345678"}
        )
        client.create_auto_scaling_group(
            AutoScalingGroupName=GROUP,
            MinSize=0,
            MaxSize=5,
            DesiredCapacity=0,
            LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplate"]["LaunchTemplateId"], "Version": "1"},
            AvailabilityZones=["eu-west-1a"],
        )
        for name, transition, timeout in (
            ("swarmkeeper-launch", "autoscaling:EC2_INSTANCE_LAUNCHING", 60),
            ("swarmkeeper-terminate", "autoscaling:EC2_INSTANCE_TERMINATING", 30),
        ):
            client.put_lifecycle_hook(
                AutoScalingGroupName=GROUP,
                LifecycleHookName=name,
                LifecycleTransition=transition,
                HeartbeatTimeout=timeout,
                DefaultResult="ABANDON" if "LAUNCH" in transition else "CONTINUE",
            )
        yield engine, client, ec2, events
        engine.stop()


def _states(client) -> dict[str, str]:
    group = client.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0]
    return {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}


def _ec2_state(ec2, iid) -> str:
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]


def _until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.05)
    return pred()


def _in_service(client, count: int) -> list[str]:
    """``count`` instances launched and put in service (their launch actions CONTINUEd), sorted."""
    client.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=count)
    launched = sorted(_states(client))
    for iid in launched:
        client.complete_lifecycle_action(
            AutoScalingGroupName=GROUP,
            LifecycleHookName="swarmkeeper-launch",
            InstanceId=iid,
            LifecycleActionResult="CONTINUE",
        )
    return launched


def test_launch_waits_for_the_hook_then_continue_puts_it_in_service(asg):
    _engine, client, _, events = asg
    # When capacity rises to 2
    client.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=2)
    # Then both instances wait, and one launch event per instance goes out
    states = _states(client)
    assert sorted(states.values()) == ["Pending:Wait", "Pending:Wait"]
    launches = [e for e in events if e["detail-type"] == "EC2 Instance-launch Lifecycle Action"]
    assert sorted(e["detail"]["EC2InstanceId"] for e in launches) == sorted(states)
    # When the first completes by token and the second by instance id
    first, second = launches[0]["detail"], launches[1]["detail"]
    client.complete_lifecycle_action(
        AutoScalingGroupName=GROUP,
        LifecycleHookName="swarmkeeper-launch",
        LifecycleActionToken=first["LifecycleActionToken"],
        LifecycleActionResult="CONTINUE",
    )
    client.complete_lifecycle_action(
        AutoScalingGroupName=GROUP,
        LifecycleHookName="swarmkeeper-launch",
        InstanceId=second["EC2InstanceId"],
        LifecycleActionResult="CONTINUE",
    )
    assert set(_states(client).values()) == {"InService"}
    # And completing again is refused, as in AWS
    with pytest.raises(ClientError):
        client.complete_lifecycle_action(
            AutoScalingGroupName=GROUP,
            LifecycleHookName="swarmkeeper-launch",
            InstanceId=second["EC2InstanceId"],
            LifecycleActionResult="CONTINUE",
        )


def test_abandoned_launch_is_terminated_and_replaced(asg):
    _engine, client, ec2, _events = asg
    client.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=1)
    (iid,) = _states(client)
    client.complete_lifecycle_action(
        AutoScalingGroupName=GROUP,
        LifecycleHookName="swarmkeeper-launch",
        InstanceId=iid,
        LifecycleActionResult="ABANDON",
    )
    assert _ec2_state(ec2, iid) == "terminated"
    states = _states(client)
    assert iid not in states and list(states.values()) == ["Pending:Wait"]


def test_scale_in_holds_the_instance_until_the_terminate_action_completes(asg):
    _engine, client, ec2, events = asg
    client.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=1)
    (iid,) = _states(client)
    client.complete_lifecycle_action(
        AutoScalingGroupName=GROUP,
        LifecycleHookName="swarmkeeper-launch",
        InstanceId=iid,
        LifecycleActionResult="CONTINUE",
    )
    # When capacity drops to 0
    client.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=0)
    # Then the instance waits in Terminating:Wait, still running, with a terminate event out
    assert _states(client) == {iid: "Terminating:Wait"}
    assert _ec2_state(ec2, iid) == "running"
    assert events[-1]["detail-type"] == "EC2 Instance-terminate Lifecycle Action"
    # When the action completes, Then only now is the instance terminated
    client.complete_lifecycle_action(
        AutoScalingGroupName=GROUP,
        LifecycleHookName="swarmkeeper-terminate",
        InstanceId=iid,
        LifecycleActionResult="CONTINUE",
    )
    assert _states(client) == {}
    assert _ec2_state(ec2, iid) == "terminated"


def test_heartbeat_timeout_applies_the_default_result(asg):
    engine, client, ec2, _ = asg
    engine.knobs.heartbeat_scale = 0.01  # 60 s -> 0.6 s
    client.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=1)
    (iid,) = _states(client)
    client.record_lifecycle_action_heartbeat(
        AutoScalingGroupName=GROUP, LifecycleHookName="swarmkeeper-launch", InstanceId=iid
    )
    assert _until(lambda: _ec2_state(ec2, iid) == "terminated")  # default ABANDON
    assert [c.how for c in engine.completed] == ["timeout"]


def test_instance_terminated_outside_auto_scaling_is_replaced(asg):
    _engine, client, ec2, _ = asg
    client.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=1)
    (iid,) = _states(client)
    ec2.terminate_instances(InstanceIds=[iid])
    assert _until(lambda: iid not in _states(client) and len(_states(client)) == 1)


def test_terminating_without_decrement_launches_the_replacement_at_once(asg):
    _engine, client, ec2, events = asg
    # Given two instances in service
    old = _in_service(client, 2)
    # When both are terminated at once without decrementing the desired capacity
    for iid in old:
        client.terminate_instance_in_auto_scaling_group(InstanceId=iid, ShouldDecrementDesiredCapacity=False)
    # Then, as in AWS, two replacements launch right away while the old ones wait (still running)
    states = _states(client)
    new = sorted(i for i in states if i not in old)
    assert [states[i] for i in old] == ["Terminating:Wait"] * 2
    assert len(new) == 2 and [states[i] for i in new] == ["Pending:Wait"] * 2
    assert all(_ec2_state(ec2, i) == "running" for i in old)
    group = client.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0]
    assert group["DesiredCapacity"] == 2
    launches = {e["detail"]["EC2InstanceId"] for e in events if "launch" in e["detail-type"]}
    assert set(new) <= launches


def test_scale_in_deregisters_and_waits_out_the_delay_before_the_terminate_hook(asg):
    from lab import patches
    from lab.forwarder import Deregistrations

    engine, client, ec2, events = asg
    # Given two workers InService, registered in a target group attached to their group (delay 20 s,
    # played at a tenth)
    deregistrations = Deregistrations(scale=0.1)
    deregistrations.install()
    engine.deregistrations = deregistrations
    try:
        client.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=2)
        for iid in list(_states(client)):
            client.complete_lifecycle_action(
                AutoScalingGroupName=GROUP, LifecycleHookName="swarmkeeper-launch", InstanceId=iid,
                LifecycleActionResult="CONTINUE",
            )  # fmt: skip
        elb = engine.region.client("elbv2")
        vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
        group = elb.create_target_group(Name="sk-t-tcp-80", Protocol="TCP", Port=80, VpcId=vpc)
        arn = group["TargetGroups"][0]["TargetGroupArn"]
        elb.modify_target_group_attributes(
            TargetGroupArn=arn, Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "20"}]
        )
        client.attach_load_balancer_target_groups(AutoScalingGroupName=GROUP, TargetGroupARNs=[arn])
        # When the group scales in by one
        client.set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=1)
        (leaving,) = [i for i, state in _states(client).items() if state == "Terminating"]
        # Then it is draining in the target group and no terminate action has fired yet
        (health,) = elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": leaving}])[
            "TargetHealthDescriptions"
        ]
        assert health["TargetHealth"]["State"] == "draining"
        terminate = "EC2 Instance-terminate Lifecycle Action"
        assert not [e for e in events if e["detail-type"] == terminate]
        # and once the delay is over it is out (unused) and the hook fires
        time.sleep(2.5)
        (health,) = elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": leaving}])[
            "TargetHealthDescriptions"
        ]
        assert health["TargetHealth"]["State"] == "unused"
        assert [e["detail"]["EC2InstanceId"] for e in events if e["detail-type"] == terminate] == [leaving]
        assert _states(client)[leaving] == "Terminating:Wait"
    finally:
        engine.deregistrations = None
        patches.undo_all()


def test_terminating_with_decrement_waits_for_the_hook_and_launches_no_replacement(asg):
    _engine, client, ec2, events = asg
    # Given two instances in service
    old = _in_service(client, 2)
    # When one is terminated through the API, decrementing the desired capacity
    answer = client.terminate_instance_in_auto_scaling_group(
        InstanceId=old[0], ShouldDecrementDesiredCapacity=True
    )
    # Then, as in AWS, it waits in Terminating:Wait (still running) with a terminate lifecycle action
    # out, the group shrinks to 1 and nothing is launched in its place
    assert answer["Activity"]["ActivityId"]
    assert _states(client) == {old[0]: "Terminating:Wait", old[1]: "InService"}
    assert _ec2_state(ec2, old[0]) == "running"
    group = client.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0]
    assert group["DesiredCapacity"] == 1
    (action,) = [e for e in events if "terminate" in e["detail-type"]]
    assert action["detail"]["EC2InstanceId"] == old[0]
    assert action["detail"]["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
    # and only CONTINUE lets it go
    client.complete_lifecycle_action(
        AutoScalingGroupName=GROUP,
        LifecycleHookName="swarmkeeper-terminate",
        InstanceId=old[0],
        LifecycleActionResult="CONTINUE",
    )
    assert _until(lambda: _states(client) == {old[1]: "InService"})
    assert _until(lambda: _ec2_state(ec2, old[0]) in ("shutting-down", "terminated"))


def test_terminating_with_decrement_at_the_min_size_is_refused_as_aws_refuses_it(asg):
    _engine, client, _ec2, _ = asg
    # Given a group at its minimum size
    client.update_auto_scaling_group(AutoScalingGroupName=GROUP, MinSize=1, DesiredCapacity=1)
    (iid,) = _states(client)
    # When its instance is terminated with the desired capacity decremented / Then the call is refused
    with pytest.raises(ClientError) as raised:
        client.terminate_instance_in_auto_scaling_group(InstanceId=iid, ShouldDecrementDesiredCapacity=True)
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationError" and "min size constraint" in error["Message"]
    # and the instance is left as it was
    assert _states(client)[iid] == "Pending:Wait"
