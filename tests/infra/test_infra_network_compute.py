"""Network and compute as synthesized: Swarm ports only, private nodes, IMDSv2, hooks, rolling updates."""

from __future__ import annotations

from aws_cdk.assertions import Match

SWARM_INGRESS = {
    ("tcp", 7946, 7946),
    ("udp", 7946, 7946),
    ("udp", 4789, 4789),
    ("50", None, None),
}


def _ingress_rules(synth):
    """Every ingress rule: standalone AWS::EC2::SecurityGroupIngress plus inline SecurityGroupIngress."""
    rules = [r["Properties"] for r in synth.of_type("AWS::EC2::SecurityGroupIngress").values()]
    for sg in synth.of_type("AWS::EC2::SecurityGroup").values():
        rules.extend(sg["Properties"].get("SecurityGroupIngress", []))
    return rules


def _sg_id(synth, name_suffix):
    (sg_id,) = [
        k
        for k, r in synth.of_type("AWS::EC2::SecurityGroup").items()
        if r["Properties"]["GroupName"].endswith(name_suffix)
    ]
    return sg_id


def test_security_groups_open_exactly_the_swarm_ports_among_cluster_nodes(demo):
    # Given the synthesized demo stack
    nodes, managers = _sg_id(demo, "-nodes"), _sg_id(demo, "-managers")
    # When the ingress rules are collected
    rules = _ingress_rules(demo)
    got = {
        (r["IpProtocol"], r.get("FromPort"), r.get("ToPort"), r["GroupId"]["Fn::GetAtt"][0],
         r["SourceSecurityGroupId"]["Fn::GetAtt"][0])
        for r in rules
    }  # fmt: skip
    # Then gossip/VXLAN/ESP are open among all nodes, 2377 only to managers, from nodes, and nothing else
    expected = {(p, lo, hi, nodes, nodes) for p, lo, hi in SWARM_INGRESS} | {
        ("tcp", 2377, 2377, managers, nodes)
    }
    assert got == expected


def test_nothing_is_reachable_from_the_internet_and_there_is_no_ssh(demo):
    # Given every ingress rule / Then none has a CIDR source and none covers port 22
    for rule in _ingress_rules(demo):
        assert "CidrIp" not in rule and "CidrIpv6" not in rule, rule
        if rule["IpProtocol"] in ("tcp", "-1"):
            assert not (rule.get("FromPort", 0) <= 22 <= rule.get("ToPort", 65535)), rule


def test_launch_templates_require_imdsv2_encrypted_gp3_and_no_public_ip(demo):
    # Given both launch templates
    templates = demo.of_type("AWS::EC2::LaunchTemplate")
    assert {t["Properties"]["LaunchTemplateName"] for t in templates.values()} == {
        "swarmkeeper-demo-managers",
        "swarmkeeper-demo-workers",
    }
    for template in templates.values():
        data = template["Properties"]["LaunchTemplateData"]
        # Then IMDSv2 is required with a hop limit of 1 (containers cannot reach the node's credentials)
        assert data["MetadataOptions"] == {
            "HttpEndpoint": "enabled",
            "HttpTokens": "required",
            "HttpPutResponseHopLimit": 1,
        }
        # and the root volume is encrypted gp3
        (root,) = data["BlockDeviceMappings"]
        assert root["DeviceName"] == "/dev/xvda"
        assert root["Ebs"]["Encrypted"] is True
        assert root["Ebs"]["VolumeType"] == "gp3"
        # and no interface gets a public address
        for nic in data["NetworkInterfaces"]:
            assert nic["AssociatePublicIpAddress"] is False
        # and the image is the public AL2023 arm64 parameter, resolved at deploy time
        image_param = demo.raw["Parameters"][data["ImageId"]["Ref"]]
        assert image_param["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
        assert (
            image_param["Default"] == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
        )
        assert data["InstanceType"] == "t4g.small"


def test_nodes_live_in_private_subnets(demo):
    # Given the VPC's subnets
    subnets = demo.of_type("AWS::EC2::Subnet")
    private = {k for k, s in subnets.items() if s["Properties"]["MapPublicIpOnLaunch"] is False}
    # When the groups' subnets are read / Then they are all private ones
    for group in demo.of_type("AWS::AutoScaling::AutoScalingGroup").values():
        ids = {ref["Ref"] for ref in group["Properties"]["VPCZoneIdentifier"]}
        assert ids and ids <= private


def test_vpc_has_nat_s3_endpoint_and_flow_logs(demo):
    # Given the new VPC / Then one NAT gateway (natGateways=1), an S3 gateway endpoint, flow logs
    demo.template.resource_count_is("AWS::EC2::NatGateway", 1)
    demo.template.has_resource_properties(
        "AWS::EC2::VPCEndpoint",
        {"VpcEndpointType": "Gateway", "ServiceName": Match.object_like({"Fn::Join": Match.any_value()})},
    )
    demo.template.has_resource_properties("AWS::EC2::FlowLog", {"ResourceType": "VPC", "TrafficType": "ALL"})


def test_manager_group_size_and_rolling_update(demo):
    # Given the manager group (managerCount = 3)
    demo.template.has_resource(
        "AWS::AutoScaling::AutoScalingGroup",
        {
            "Properties": Match.object_like(
                {
                    "AutoScalingGroupName": "swarmkeeper-demo-managers",
                    "MinSize": "3",
                    "DesiredCapacity": "3",
                    "MaxSize": "4",
                }
            ),
            # Then updates replace one manager at a time, never below the full count
            "UpdatePolicy": {
                "AutoScalingRollingUpdate": Match.object_like({"MaxBatchSize": 1, "MinInstancesInService": 3})
            },
        },
    )


def test_worker_group_size(demo):
    demo.template.has_resource_properties(
        "AWS::AutoScaling::AutoScalingGroup",
        {
            "AutoScalingGroupName": "swarmkeeper-demo-workers",
            "MinSize": "1",
            "DesiredCapacity": "2",
            "MaxSize": "10",
        },
    )


def test_both_groups_have_launch_and_terminate_hooks_in_the_group_itself(demo):
    # Given both groups
    for group in demo.of_type("AWS::AutoScaling::AutoScalingGroup").values():
        hooks = {h["LifecycleHookName"]: h for h in group["Properties"]["LifecycleHookSpecificationList"]}
        # Then a launch hook that abandons (terminates) an instance that never joins
        assert hooks["swarmkeeper-launch"] == {
            "LifecycleHookName": "swarmkeeper-launch",
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            "HeartbeatTimeout": 2400,
            "DefaultResult": "ABANDON",
        }
        # and a terminate hook long enough for drain + demotion
        assert hooks["swarmkeeper-terminate"] == {
            "LifecycleHookName": "swarmkeeper-terminate",
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
            "HeartbeatTimeout": 900,
            "DefaultResult": "CONTINUE",
        }
    # and no separate hook resources (they would miss the first instances)
    demo.template.resource_count_is("AWS::AutoScaling::LifecycleHook", 0)


def test_groups_are_created_after_the_control_plane_that_bootstraps_them(demo):
    # Given the groups' DependsOn / Then the lifecycle rule and the bootstrap document come first
    lifecycle_rule = next(
        k for k in demo.of_type("AWS::Events::Rule") if k.startswith("ControlPlaneLifecycleActionRule")
    )
    bootstrap_doc = next(
        k
        for k, r in demo.of_type("AWS::SSM::Document").items()
        if r["Properties"]["Name"].endswith("bootstrap-node")
    )
    for group in demo.of_type("AWS::AutoScaling::AutoScalingGroup").values():
        assert lifecycle_rule in group["DependsOn"]
        assert bootstrap_doc in group["DependsOn"]


def test_instances_are_tagged_with_cluster_and_role_at_launch(demo):
    roles = {"swarmkeeper-demo-managers": "manager", "swarmkeeper-demo-workers": "worker"}
    for group in demo.of_type("AWS::AutoScaling::AutoScalingGroup").values():
        tags = {t["Key"]: t for t in group["Properties"]["Tags"]}
        role = roles[group["Properties"]["AutoScalingGroupName"]]
        assert tags["swarmkeeper:cluster"] == {
            "Key": "swarmkeeper:cluster",
            "Value": "demo",
            "PropagateAtLaunch": True,
        }
        assert tags["swarmkeeper:role"] == {
            "Key": "swarmkeeper:role",
            "Value": role,
            "PropagateAtLaunch": True,
        }


def test_existing_vpc_mode_uses_the_given_subnets_and_creates_no_network(variant):
    # Given vpcId + subnetIds in the context
    # Then no VPC, subnet, NAT or flow log is created
    for cfn_type in ("AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::NatGateway", "AWS::EC2::FlowLog"):
        variant.template.resource_count_is(cfn_type, 0)
    # and both groups use exactly the given subnets, the security groups the given VPC
    for group in variant.of_type("AWS::AutoScaling::AutoScalingGroup").values():
        assert group["Properties"]["VPCZoneIdentifier"] == [
            "subnet-0aaaaaaaaaaaaaaa1",
            "subnet-0bbbbbbbbbbbbbbb2",
            "subnet-0ccccccccccccccc3",
        ]
    for sg in variant.of_type("AWS::EC2::SecurityGroup").values():
        assert sg["Properties"]["VpcId"] == "vpc-0a1b2c3d4e5f60718"


def test_variant_spot_workers_fixed_ami_and_five_managers(variant):
    # Given workerSpot=true, amiId, managerCount=5
    variant.template.has_resource_properties(
        "AWS::AutoScaling::AutoScalingGroup",
        {
            "AutoScalingGroupName": "swarmkeeper-blue-workers",
            "CapacityRebalance": False,  # rebalanceDrainWorkers=false
            "MixedInstancesPolicy": Match.object_like(
                {
                    "InstancesDistribution": Match.object_like(
                        {"OnDemandBaseCapacity": 0, "OnDemandPercentageAboveBaseCapacity": 0}
                    )
                }
            ),
        },
    )
    variant.template.has_resource(
        "AWS::AutoScaling::AutoScalingGroup",
        {
            "Properties": Match.object_like(
                {"AutoScalingGroupName": "swarmkeeper-blue-managers", "MaxSize": "6"}
            ),
            "UpdatePolicy": {"AutoScalingRollingUpdate": Match.object_like({"MinInstancesInService": 5})},
        },
    )
    for template in variant.of_type("AWS::EC2::LaunchTemplate").values():
        assert template["Properties"]["LaunchTemplateData"]["ImageId"] == "ami-0123456789abcdef0"
