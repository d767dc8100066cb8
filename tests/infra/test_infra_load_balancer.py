"""The cluster's Network Load Balancer as synthesized: scheme and subnets by context, its own security
group and the workers' target group (no open port until the control plane adds one), and what the
control plane may do to listeners, target groups, rules and the worker group -- and nothing beyond."""

from __future__ import annotations

import pytest
from infra_iam import allowed, arn, role_id_for, statements_of_role

from infra.settings import ClusterSettings, SettingsError
from swarmkeeper.domain.names import ClusterNames

NLB = "AWS::ElasticLoadBalancingV2::LoadBalancer"
GOOD_VPC = {"vpcId": "vpc-0a1b2c3d4e5f60718", "subnetIds": ["subnet-0aaaaaaaaaaaaaaa1"]}
TAG = {"aws:ResourceTag/swarmkeeper:cluster": "demo"}


def _nlb(synth):
    ((logical_id, resource),) = synth.of_type(NLB).items()
    return logical_id, resource["Properties"]


@pytest.fixture(scope="module")
def control(demo):
    return statements_of_role(demo.resources, role_id_for(demo.resources, "ControlPlaneRole"))


def _security_group(synth, prefix):
    logical_id = synth.logical_id("AWS::EC2::SecurityGroup", prefix)
    return logical_id, synth.resources[logical_id]["Properties"]


def test_one_internet_facing_nlb_in_the_public_subnets_by_default(demo):
    # Given the demo stack (loadBalancerScheme internet-facing)
    # When its load balancer is read
    _, props = _nlb(demo)
    # Then it is one network load balancer, internet-facing, in the new VPC's public subnets
    assert props["Type"] == "network"
    assert props["Scheme"] == "internet-facing"
    assert props["Name"] == "swarmkeeper-demo"
    assert props["Subnets"] and all("publicSubnet" in subnet["Ref"] for subnet in props["Subnets"])
    # with its own security group
    (group,) = props["SecurityGroups"]
    assert group["Fn::GetAtt"][0].startswith("LoadBalancerSecurityGroup")


def test_an_internal_nlb_sits_in_the_nodes_subnets(variant):
    # Given the variant stack (existing VPC, loadBalancerScheme internal)
    _, props = _nlb(variant)
    # Then the load balancer is internal, in the given (private) node subnets
    assert props["Scheme"] == "internal"
    assert props["Subnets"] == [
        "subnet-0aaaaaaaaaaaaaaa1",
        "subnet-0bbbbbbbbbbbbbbb2",
        "subnet-0ccccccccccccccc3",
    ]


def test_no_port_is_open_until_the_control_plane_opens_one(demo):
    # Given the two load balancer security groups as synthesized
    lb_id, lb = _security_group(demo, "LoadBalancerSecurityGroup")
    targets_id, targets = _security_group(demo, "LoadBalancerTargetSecurityGroup")
    ingress = [
        r["Properties"]
        for r in demo.of_type("AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"]["Fn::GetAtt"][0] in (lb_id, targets_id)
    ]
    # Then neither admits anything (listener ports and published ports are the control plane's rules)
    assert "SecurityGroupIngress" not in lb and "SecurityGroupIngress" not in targets
    assert ingress == []
    # and the load balancer may send only to the targets' group, which itself sends nothing
    (egress,) = [
        r["Properties"]
        for r in demo.of_type("AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"]["Fn::GetAtt"][0] == lb_id
    ]
    assert egress["DestinationSecurityGroupId"]["Fn::GetAtt"][0] == targets_id
    assert egress["IpProtocol"] == "tcp"
    assert targets["SecurityGroupEgress"][0]["Description"] == "Disallow all traffic"


def test_workers_carry_the_target_group_and_managers_do_not(demo):
    # Given the two launch templates
    templates = {
        r["Properties"]["LaunchTemplateName"]: r["Properties"]["LaunchTemplateData"]
        for r in demo.of_type("AWS::EC2::LaunchTemplate").values()
    }

    def groups(name):
        (interface,) = templates[name]["NetworkInterfaces"]
        return {group["Fn::GetAtt"][0] for group in interface["Groups"]}

    targets_id, _ = _security_group(demo, "LoadBalancerTargetSecurityGroup")
    # Then the workers are reachable through the load balancer's targets group, the managers are not
    assert targets_id in groups("swarmkeeper-demo-workers")
    assert targets_id not in groups("swarmkeeper-demo-managers")


def test_the_functions_know_the_load_balancer_and_its_groups(demo):
    # Given any function's environment
    env = next(iter(demo.of_type("AWS::Lambda::Function").values()))["Properties"]["Environment"]["Variables"]
    # Then it names the load balancer, both groups, the VPC, the client CIDR, the target group prefix
    assert env["LOAD_BALANCER_ARN"]["Ref"].startswith("LoadBalancer")
    assert env["LOAD_BALANCER_SECURITY_GROUP"]["Fn::GetAtt"][0].startswith("LoadBalancerSecurityGroup")
    assert env["TARGET_SECURITY_GROUP"]["Fn::GetAtt"][0].startswith("LoadBalancerTargetSecurityGroup")
    assert env["VPC_ID"]["Ref"].startswith("NetworkVpc")
    assert env["LOAD_BALANCER_CLIENT_CIDR"] == "0.0.0.0/0"
    assert env["TARGET_GROUP_PREFIX"] == ClusterNames("demo").target_group_prefix
    assert env["DEREGISTRATION_DELAY_SECONDS"] == "30"


def _listener(lb="swarmkeeper-demo"):
    return arn("elasticloadbalancing", f"listener/net/{lb}/50dc6c495c0c9188/f2f7dc8efc522ab2")


def _target_group(name):
    return arn("elasticloadbalancing", f"targetgroup/{name}/73e2d6bc24d8a067")


def test_listeners_only_on_the_clusters_load_balancer(demo, control):
    lb_id, _ = _nlb(demo)
    # Then CreateListener is allowed on this stack's load balancer and no other
    assert allowed(control, "elasticloadbalancing:CreateListener", f"ref:{lb_id}")
    foreign = arn("elasticloadbalancing", "loadbalancer/net/someone-else/50dc6c495c0c9188")
    assert not allowed(control, "elasticloadbalancing:CreateListener", foreign)
    # and listeners are changed or deleted only on this load balancer
    for action in ("ModifyListener", "DeleteListener"):
        assert allowed(control, f"elasticloadbalancing:{action}", _listener())
        assert not allowed(control, f"elasticloadbalancing:{action}", _listener("someone-else"))
        assert not allowed(control, f"elasticloadbalancing:{action}", _listener("swarmkeeper-demo-2"))


def test_target_groups_only_with_the_clusters_name_and_tag(control):
    own = _target_group(ClusterNames("demo").target_group_prefix + "tcp-8080")
    other = _target_group(ClusterNames("other").target_group_prefix + "tcp-8080")
    # Then a target group is created only under the cluster's prefix and with the cluster tag
    create = "elasticloadbalancing:CreateTargetGroup"
    assert allowed(control, create, own, {"aws:RequestTag/swarmkeeper:cluster": "demo"})
    assert not allowed(control, create, own, {"aws:RequestTag/swarmkeeper:cluster": "other"})
    assert not allowed(control, create, own)
    assert not allowed(control, create, other, {"aws:RequestTag/swarmkeeper:cluster": "demo"})
    # and changed, deregistered from or deleted only when it carries the cluster tag
    for action in ("DeleteTargetGroup", "ModifyTargetGroupAttributes", "DeregisterTargets"):
        assert allowed(control, f"elasticloadbalancing:{action}", own, TAG)
        assert not allowed(control, f"elasticloadbalancing:{action}", own)
        assert not allowed(control, f"elasticloadbalancing:{action}", other, TAG)
    # and the control plane never registers targets itself (Auto Scaling does)
    assert not allowed(control, "elasticloadbalancing:RegisterTargets", own, TAG)


def test_target_groups_attach_only_to_the_worker_group(control):
    def group(name):
        return arn("autoscaling", f"autoScalingGroup:1234-abcd:autoScalingGroupName/{name}")

    for action in ("AttachLoadBalancerTargetGroups", "DetachLoadBalancerTargetGroups"):
        assert allowed(control, f"autoscaling:{action}", group("swarmkeeper-demo-workers"))
        assert not allowed(control, f"autoscaling:{action}", group("swarmkeeper-demo-managers"))
        assert not allowed(control, f"autoscaling:{action}", group("someone-elses-group"))


def test_rules_only_on_the_load_balancers_two_groups(demo, control):
    lb_id, _ = _security_group(demo, "LoadBalancerSecurityGroup")
    targets_id, _ = _security_group(demo, "LoadBalancerTargetSecurityGroup")
    nodes_id, _ = _security_group(demo, "NetworkNodeSecurityGroup")
    for action in ("AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress"):
        for own in (lb_id, targets_id):
            assert allowed(control, f"ec2:{action}", arn("ec2", f"security-group/arn:aws:test:::{own}"))
        assert not allowed(control, f"ec2:{action}", arn("ec2", f"security-group/arn:aws:test:::{nodes_id}"))
        assert not allowed(control, f"ec2:{action}", arn("ec2", "security-group/sg-0123456789abcdef0"))
    assert not allowed(control, "ec2:AuthorizeSecurityGroupEgress", arn("ec2", f"security-group/{lb_id}"))


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"loadBalancerScheme": "public"}, "'loadBalancerScheme' = 'public'"),
        ({**GOOD_VPC}, "give 'loadBalancerSubnetIds'"),
        ({**GOOD_VPC, "loadBalancerScheme": "internal"}, "give 'loadBalancerClientCidr'"),
        ({"loadBalancerSubnetIds": "subnet-0aaaaaaaaaaaaaaa1"}, "only with 'vpcId'"),
        ({"loadBalancerClientCidr": "10.0.0.1/16"}, "'loadBalancerClientCidr'"),
        ({"loadBalancerClientCidr": "0.0.0.0/0; rm -rf /"}, "'loadBalancerClientCidr'"),
        ({"loadBalancerDeregistrationSeconds": "3601"}, "'loadBalancerDeregistrationSeconds'"),
    ],
)
def test_bad_load_balancer_context_is_refused_by_name(context, expected):
    # Given a bad load balancer context value / combination
    # When the settings are parsed
    with pytest.raises(SettingsError) as raised:
        ClusterSettings.from_mapping(context)
    # Then the error names it
    assert expected in str(raised.value)


def test_long_cluster_names_still_give_valid_elb_names():
    # Given the longest cluster name allowed
    names = ClusterNames("a" * 31)
    # Then the load balancer and target group names fit ELB's 32 characters and keep the cluster apart
    assert len(names.load_balancer) <= 32 and not names.load_balancer.endswith("-")
    assert len(names.target_group_prefix + "tcp-65535") <= 32
    assert ClusterNames("a" * 30 + "b").load_balancer != names.load_balancer
    assert ClusterNames("a" * 30 + "b").target_group_prefix != names.target_group_prefix
