"""The listeners flow on moto (elbv2, Auto Scaling, EC2, EventBridge): the load balancer follows the
published ports in one run, a second run changes nothing, a port no longer published loses its
listener, target group and rules, a foreign listener stays, TLS with an ACM certificate; the leave's
deregistration; a rejection announced once per cause, through crashes and a race. Given / When / Then."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from swarmkeeper.adapters.bus import EventBus
from swarmkeeper.adapters.load_balancer import LoadBalancerTargets, rule_description
from swarmkeeper.adapters.rejections import PublishedRejections
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.domain.listeners import ListenerPolicy, PublishedPort, Rejection, RejectionsPublished
from swarmkeeper.domain.swarm import SwarmListing
from swarmkeeper.flows.listeners import ListenersFlow
from swarmkeeper.settings import LoadBalancerSettings, RuntimeSettings

REGION = "us-east-1"
WORKERS = "swarmkeeper-demo-workers"
PREFIX = "sk-2a97516c-"


class Cloud:
    def __init__(self) -> None:
        self.ec2 = boto3.client("ec2", region_name=REGION)
        self.elb = boto3.client("elbv2", region_name=REGION)
        self.asg = boto3.client("autoscaling", region_name=REGION)
        self.events = boto3.client("events", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")
        subnet_id = subnet["Subnet"]["SubnetId"]
        self.lb_group = self.ec2.create_security_group(GroupName="lb", Description="lb", VpcId=vpc)["GroupId"]
        self.targets_group = self.ec2.create_security_group(GroupName="t", Description="t", VpcId=vpc)[
            "GroupId"
        ]
        self.lb = self.elb.create_load_balancer(
            Name="swarmkeeper-demo", Subnets=[subnet_id], Type="network", SecurityGroups=[self.lb_group]
        )["LoadBalancers"][0]["LoadBalancerArn"]
        self.ec2.create_launch_template(
            LaunchTemplateName="workers",
            LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
        )
        self.asg.create_auto_scaling_group(
            AutoScalingGroupName=WORKERS,
            LaunchTemplate={"LaunchTemplateName": "workers"},
            MinSize=0,
            MaxSize=4,
            DesiredCapacity=2,
            VPCZoneIdentifier=subnet_id,
        )
        self.events.create_event_bus(Name="swarmkeeper-demo")
        queue = self.sqs.create_queue(QueueName="bus")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.events.put_rule(
            Name="all", EventBusName="swarmkeeper-demo", EventPattern=json.dumps({"source": ["swarmkeeper"]})
        )
        self.events.put_targets(
            Rule="all", EventBusName="swarmkeeper-demo", Targets=[{"Id": "q", "Arn": queue_arn}]
        )
        self.queue = queue
        self.settings = LoadBalancerSettings(
            self.lb, self.lb_group, self.targets_group, "0.0.0.0/0", PREFIX, vpc, 30
        )
        self.targets = LoadBalancerTargets(self.elb, self.asg, self.ec2, self.settings, "demo", WORKERS)
        bus = EventBus(self.events, "swarmkeeper-demo")
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.rejections = PublishedRejections(StateTable(ddb, "state"))
        self.flow = ListenersFlow(ListenerPolicy("demo", REGION), self.targets, bus, self.rejections)

    def follow(self, *ports: PublishedPort, skipped: bool = False):
        from swarmkeeper.domain.swarm import SkippedLine

        lines = (SkippedLine(1, "bad", False),) if skipped else ()
        return self.flow.follow(SwarmListing((), (), tuple(ports), lines), "corr-1")

    def listeners(self) -> dict[int, dict]:
        return {
            item["Port"]: item for item in self.elb.describe_listeners(LoadBalancerArn=self.lb)["Listeners"]
        }

    def rules(self, group: str) -> set[int]:
        (described,) = self.ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
        return {p["FromPort"] for p in described["IpPermissions"]}

    def published_events(self) -> list[tuple[str, dict]]:
        out = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in messages:
                body = json.loads(message["Body"])
                out.append((body["detail-type"], body["detail"]))
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return out

    def workers(self) -> list[str]:
        (group,) = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[WORKERS])["AutoScalingGroups"]
        return [instance["InstanceId"] for instance in group["Instances"]]


@pytest.fixture
def cloud():
    with mock_aws():
        yield Cloud()


def web(port: int, certificate: str = "", service: str = "web_service") -> PublishedPort:
    return PublishedPort(service, "tcp", port, 80, "host", certificate)


def test_published_ports_become_listeners_with_their_target_groups_and_rules(cloud):
    # When the swarm publishes 8080 and 9090
    decision = cloud.follow(web(8080), web(9090, service="api"))
    # Then two TCP listeners forward to target groups named by the cluster on the same ports
    listeners = cloud.listeners()
    assert set(listeners) == {8080, 9090} and decision.outcome == "reconciled"
    for port, listener in listeners.items():
        (action,) = listener["DefaultActions"]
        (group,) = cloud.elb.describe_target_groups(TargetGroupArns=[action["TargetGroupArn"]])[
            "TargetGroups"
        ]
        assert group["TargetGroupName"] == f"{PREFIX}tcp-{port}" and group["Port"] == port
        assert group["HealthCheckProtocol"] == "TCP"
        # with the workers registered by Auto Scaling (the group is attached to the worker group)
        health = cloud.elb.describe_target_health(TargetGroupArn=group["TargetGroupArn"])[
            "TargetHealthDescriptions"
        ]
        assert {h["Target"]["Id"] for h in health} == set(cloud.workers())
    # and exactly those ports are open, clients to the load balancer and it to the workers
    assert cloud.rules(cloud.lb_group) == cloud.rules(cloud.targets_group) == {8080, 9090}
    # and each is announced
    assert sorted(d["port"] for t, d in cloud.published_events() if t == "Listener Created") == [
        "8080",
        "9090",
    ]


def test_a_second_run_changes_nothing(cloud):
    cloud.follow(web(8080))
    cloud.published_events()
    # When the same listing is followed again
    again = cloud.follow(web(8080))
    # Then nothing is done or announced
    assert again.outcome == "ignore" and again.actions == ()
    assert cloud.published_events() == []
    assert set(cloud.listeners()) == {8080}


def test_an_unpublished_port_loses_its_listener_target_group_and_rules(cloud):
    cloud.follow(web(8080), web(9090))
    # When 9090 is no longer published
    cloud.follow(web(8080))
    # Then its listener, target group and rules are gone, 8080's are not
    assert set(cloud.listeners()) == {8080}
    names = {g["TargetGroupName"] for g in cloud.elb.describe_target_groups()["TargetGroups"]}
    assert names == {f"{PREFIX}tcp-8080"}
    assert cloud.rules(cloud.lb_group) == cloud.rules(cloud.targets_group) == {8080}
    attached = cloud.asg.describe_load_balancer_target_groups(AutoScalingGroupName=WORKERS)[
        "LoadBalancerTargetGroups"
    ]
    assert len(attached) == 1
    assert [d["port"] for t, d in cloud.published_events() if t == "Listener Removed"] == ["9090"]


def test_an_incomplete_listing_removes_nothing(cloud):
    cloud.follow(web(8080), web(9090))
    cloud.follow(web(8080), skipped=True)
    assert set(cloud.listeners()) == {8080, 9090}


def test_a_foreign_listener_and_rule_stay_and_its_port_is_rejected(cloud):
    # Given someone else's listener on 8080 and their own rule on the load balancer's group
    group = cloud.elb.create_target_group(
        Name="theirs", Protocol="TCP", Port=8080, VpcId=cloud.settings.vpc_id
    )
    theirs = group["TargetGroups"][0]["TargetGroupArn"]
    cloud.elb.create_listener(
        LoadBalancerArn=cloud.lb,
        Protocol="TCP",
        Port=8080,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": theirs}],
    )
    cloud.ec2.authorize_security_group_ingress(
        GroupId=cloud.lb_group,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
        ],
    )
    # When the swarm publishes 8080, then nothing
    cloud.follow(web(8080))
    cloud.follow()
    # Then their listener and rule are as they were
    assert cloud.listeners()[8080]["DefaultActions"][0]["TargetGroupArn"] == theirs
    assert 22 in cloud.rules(cloud.lb_group)
    rejected = [d for t, d in cloud.published_events() if t == "Listener Rejected"]
    assert rejected and "did not create" in rejected[0]["reason"]


def test_a_certificate_label_gives_a_tls_listener(cloud):
    # Given a certificate in ACM
    acm = boto3.client("acm", region_name=REGION)
    certificate = acm.request_certificate(DomainName="web.example.com")["CertificateArn"]
    # When web publishes 443 with the label
    cloud.follow(web(443, certificate))
    # Then its listener is TLS with that certificate
    listener = cloud.listeners()[443]
    assert listener["Protocol"] == "TLS"
    assert listener["Certificates"] == [{"CertificateArn": certificate}]


def test_a_wrong_label_is_rejected_and_opens_nothing(cloud):
    cloud.follow(web(443, "$(curl evil)"))
    assert cloud.listeners() == {} and cloud.rules(cloud.lb_group) == set()
    (rejected,) = [d for t, d in cloud.published_events() if t == "Listener Rejected"]
    assert "not an ACM certificate ARN" in rejected["reason"]


def test_rules_carry_the_clusters_description(cloud):
    cloud.follow(web(8080))
    (described,) = cloud.ec2.describe_security_groups(GroupIds=[cloud.targets_group])["SecurityGroups"]
    (permission,) = described["IpPermissions"]
    (pair,) = permission["UserIdGroupPairs"]
    assert pair["GroupId"] == cloud.lb_group and pair["Description"] == rule_description("demo", 8080)


def test_a_leaving_worker_is_deregistered_from_every_target_group(cloud):
    cloud.follow(web(8080), web(9090))
    leaving = cloud.workers()[0]
    assert len(cloud.targets.targeted(leaving)) == 2
    # When the leave deregisters it
    cloud.targets.deregister(leaving)
    # Then no target group holds it (moto completes deregistration at once)
    assert cloud.targets.targeted(leaving) == ()
    assert cloud.targets.targeted(cloud.workers()[1])


def test_the_runtime_wires_the_listeners_only_with_a_load_balancer(monkeypatch):
    from swarmkeeper import runtime

    base = RuntimeSettings.from_env()
    assert base.load_balancer is None
    monkeypatch.setenv(
        "LOAD_BALANCER_ARN", "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/x/1"
    )
    for name, value in {
        "LOAD_BALANCER_SECURITY_GROUP": "sg-0123456789abcdef0",
        "TARGET_SECURITY_GROUP": "sg-0123456789abcdef1",
        "LOAD_BALANCER_CLIENT_CIDR": "0.0.0.0/0",
        "TARGET_GROUP_PREFIX": PREFIX,
        "VPC_ID": "vpc-0123456789abcdef0",
        "DEREGISTRATION_DELAY_SECONDS": "30",
    }.items():
        monkeypatch.setenv(name, value)
    settings = RuntimeSettings.from_env()
    assert settings.load_balancer is not None and settings.load_balancer.deregistration_delay_seconds == 30
    wired = runtime.Runtime.build(settings)
    assert wired.reconcile.follow_ports is not None
    assert runtime.Runtime.build(base).reconcile.follow_ports is None
    monkeypatch.setenv("TARGET_GROUP_PREFIX", "evil;")
    with pytest.raises(ValueError, match="TARGET_GROUP_PREFIX"):
        RuntimeSettings.from_env()


class _Stacks:
    def __init__(self, outcome: str):
        self.outcome = outcome

    def finished(self, *args):
        from swarmkeeper.domain.kernel import Decision, Outcome

        return Decision(Outcome(self.outcome), "done")


class _Reconcile:
    def __init__(self, follows: bool):
        self.follow_ports = (lambda *a: None) if follows else None
        self.started: list[str] = []

    def start(self, correlation_id, why="schedule", exclude=()):
        from swarmkeeper.domain.kernel import Decision, Outcome

        self.started.append(why)
        return Decision(Outcome.RECONCILE, why)


@pytest.mark.parametrize(
    ("outcome", "follows", "passes"),
    [("deployed", True, 1), ("stack-removed", True, 1), ("deploy-failed", True, 0), ("deployed", False, 0)],
)
def test_a_stack_deployed_or_removed_starts_a_pass_the_listeners_follow_in(outcome, follows, passes):
    from swarmkeeper.flows.commands import CommandStatusRouter
    from swarmkeeper.inputs import CommandStatusChange

    # Given the stacks flow finishing a deploy-stack with this outcome
    reconcile = _Reconcile(follows)
    router = CommandStatusRouter(RuntimeSettings.from_env(), None, None, None, reconcile, _Stacks(outcome))
    change = CommandStatusChange(
        command_id="c",
        document_name="swarmkeeper-demo-deploy-stack",
        instance_id="i-1",
        status="Success",
        correlation_id="e",
    )
    # When its status is routed
    router.handle(change)
    # Then a reconcile pass starts only for a stack that changed, and only with a load balancer
    assert len(reconcile.started) == passes


class _Draining:
    """elbv2 as it answers while a deregistration delay runs (moto completes it at once)."""

    def __init__(self, elb, state: str):
        self._elb = elb
        self._state = state

    def __getattr__(self, name):
        return getattr(self._elb, name)

    def describe_target_health(self, TargetGroupArn, Targets):
        (target,) = Targets
        return {"TargetHealthDescriptions": [{"Target": target, "TargetHealth": {"State": self._state}}]}


@pytest.mark.parametrize(
    ("state", "held"), [("draining", True), ("healthy", True), ("initial", True), ("unused", False)]
)
def test_a_draining_target_is_still_in_the_group(cloud, state, held):
    # Given the worker's target is in this state in both groups
    cloud.follow(web(8080), web(9090))
    cloud.targets._elb = _Draining(cloud.elb, state)
    # Then only "unused" (deregistration complete) counts as out
    assert bool(cloud.targets.targeted(cloud.workers()[0])) is held


# --------------------------------------------------------------- Listener Rejected, once per cause


def udp(port: int, service: str = "dns") -> PublishedPort:
    return PublishedPort(service, "udp", port, port, "ingress")


def rejected_ports(cloud) -> list[str]:
    return [detail["port"] for kind, detail in cloud.published_events() if kind == "Listener Rejected"]


def test_a_rejection_is_published_once_over_three_passes(cloud):
    # When three passes follow a listing with 53/udp
    for _ in range(3):
        cloud.follow(udp(53), web(8080))
    # Then Listener Rejected was published once, and its cause is stored
    assert rejected_ports(cloud) == ["53"]
    stored = cloud.rejections.get()
    assert [(cause.port, cause.services) for cause in stored.rejections] == [
        (53, ("dns",))
    ] and stored.version == 1


def test_a_changed_reason_is_published_again(cloud):
    # Given 8443's label is no ARN, then names another region's certificate
    other_region = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
    # When passes follow each twice
    for label in ("nope", "nope", other_region, other_region):
        cloud.follow(web(8443, label))
    # Then each reason was published once
    reasons = [detail["reason"] for kind, detail in cloud.published_events() if kind == "Listener Rejected"]
    assert len(reasons) == 2 and "eu-west-1" in reasons[1]


def test_a_rejection_cleared_then_back_is_published_again(cloud):
    # Given 53/udp rejected, then no longer published, then published again
    cloud.follow(udp(53))
    cloud.follow()
    assert rejected_ports(cloud) == ["53"]
    # When it is rejected again later
    cloud.follow(udp(53))
    cloud.follow(udp(53))
    # Then it is published again, once
    assert rejected_ports(cloud) == ["53"]


def test_rejected_ports_are_independent(cloud):
    cloud.follow(udp(53), udp(5353, "mdns"))
    cloud.follow(udp(53))
    cloud.follow(udp(53), udp(5353, "mdns"))
    assert rejected_ports(cloud) == ["53", "5353", "5353"]


class Crash(Exception):
    pass


def test_a_crash_between_publishing_and_remembering_publishes_again(cloud, monkeypatch):
    # Given a pass that dies after publishing the rejection, before remembering it
    def crash(published):
        raise Crash("the invocation died")

    monkeypatch.setattr(cloud.rejections, "save", crash)
    with pytest.raises(Crash):
        cloud.follow(udp(53))
    assert rejected_ports(cloud) == ["53"]
    monkeypatch.undo()
    # When the next passes follow
    cloud.follow(udp(53))
    cloud.follow(udp(53))
    # Then the next one publishes it again (at least once), and then no more
    assert rejected_ports(cloud) == ["53"]


def test_a_crash_while_publishing_loses_no_rejection(cloud, monkeypatch):
    # Given a pass whose publication fails
    def fail(event):
        raise Crash("PutEvents failed")

    monkeypatch.setattr(cloud.flow.bus, "publish", fail)
    with pytest.raises(Crash):
        cloud.follow(udp(53))
    monkeypatch.undo()
    # When the next pass follows
    cloud.follow(udp(53))
    # Then it publishes the rejection
    assert rejected_ports(cloud) == ["53"]


def test_two_passes_racing_lose_no_rejection(cloud, monkeypatch):
    # Given 53/udp rejected and remembered
    cloud.follow(udp(53))
    assert rejected_ports(cloud) == ["53"]
    # When a pass on an older listing (53/udp, 54/udp) reads the memory, then a pass on a newer one
    # (nothing published) runs whole before the older one remembers
    read = cloud.rejections.get

    def read_then_newer_pass_runs():
        before = read()
        monkeypatch.setattr(cloud.rejections, "get", read)
        cloud.follow()
        return before

    monkeypatch.setattr(cloud.rejections, "get", read_then_newer_pass_runs)
    cloud.follow(udp(53), udp(54))
    # Then the older pass's write lost (the newer pass's memory stands) ...
    assert cloud.rejections.get().rejections == frozenset()
    assert rejected_ports(cloud) == ["54"]
    # ... so 53 rejected again later is published again
    cloud.follow(udp(53))
    assert rejected_ports(cloud) == ["53"]


def test_the_memory_is_written_only_on_the_version_before(cloud):
    # Given nothing stored
    cause = Rejection(53, ("dns",), "udp port 53: the load balancer forwards TCP only")
    first = RejectionsPublished(frozenset({cause}), 1)
    # When two passes write the first version, then two the second
    firsts = [cloud.rejections.save(first), cloud.rejections.save(first)]
    seconds = [cloud.rejections.save(RejectionsPublished(frozenset(), 2)) for _ in range(2)]
    # Then only one of each wins, and what is read is what the winners wrote
    assert firsts == seconds == [True, False]
    assert cloud.rejections.get() == RejectionsPublished(frozenset(), 2)
    assert cloud.rejections.save(RejectionsPublished(frozenset({cause}), 3))
    assert cloud.rejections.get() == RejectionsPublished(frozenset({cause}), 3)
