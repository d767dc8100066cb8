"""cdk-nag (AwsSolutions) acknowledgments, each on the narrowest construct, each with its reason.

Fixed instead of acknowledged: flow logs, SSL-only and encrypted queues/bucket, PITR, key rotation,
exact parameter ARNs for the instance roles, the SSM agent's permissions inline instead of the
AmazonSSMManagedInstanceCore managed policy (IAM4), a native log-group resource policy (no custom
resource).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, Annotations, Stack, Validations
from constructs import IConstruct

from infra.names import COMMAND_OUTPUT_PREFIX, GROUP_NAME_TAG, STACKS_PREFIX

if TYPE_CHECKING:
    from infra.stack import SwarmkeeperStack

PACK = "AwsSolutions-"


def _ack(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=PACK + rule, reason=reason))


def acknowledge(stack: SwarmkeeperStack) -> None:
    names = stack.names
    compute = stack.compute
    control = stack.control_plane
    state = stack.state
    partition_arn = "arn:<AWS::Partition>:{}:<AWS::Region>:<AWS::AccountId>:{}"
    command_output = (
        f"Resource::<{Stack.of(stack).get_logical_id(state.output_bucket.node.default_child)}.Arn>"
        f"/{COMMAND_OUTPUT_PREFIX}/*"
    )

    # ---- instances --------------------------------------------------------------------------------
    for role in (compute.manager_role, compute.worker_role):
        _ack(
            role,
            "IAM5[Resource::*]",
            "Only the SSM agent's own calls (UpdateInstanceInformation, ListInstanceAssociations, "
            "UpdateInstanceAssociationStatus, PutComplianceItems, the ec2messages and ssmmessages "
            "channels), which act on the calling instance and are not scoped by resource here, and "
            "ecr:GetAuthorizationToken, which has no resource-level permission.",
        )
        _ack(
            role,
            "IAM5[Resource::" + partition_arn.format("ecr", "repository/*") + "]",
            "Image pulls (BatchGetImage, GetDownloadUrlForLayer, BatchCheckLayerAvailability; no push) "
            "from any repository of the account in the stack's region: the images the swarm runs are "
            "the operators' choice, not known to the stack.",
        )
        if compute.container_logs is not None:
            _ack(
                role,
                f"IAM5[Resource::<{Stack.of(stack).get_logical_id(compute.container_logs.node.default_child)}.Arn>]",
                "The containers' log group's ARN (log-group:NAME:*) covers its streams, one per "
                "container, named when the container starts; CreateLogStream and PutLogEvents only.",
            )
    _ack(
        compute.manager_role,
        f"IAM5[{command_output}]",
        "Run Command writes each command's output under a key named after the command id, unknown in "
        f"advance; s3:PutObject only, under {COMMAND_OUTPUT_PREFIX}/ in this stack's output bucket.",
    )
    for group in (compute.manager_group, compute.worker_group):
        Annotations.of(group).acknowledge_warning(
            "@aws-cdk/aws-autoscaling:desiredCapacitySet",
            "Intended: managerCount / workerDesiredCapacity in cdk.json are the sizes each deploy restores.",
        )
        _ack(
            group,
            "AS3",
            "Scaling events already reach the control plane through EventBridge (lifecycle actions, "
            "instance state changes) and are republished on the operators' bus; an SNS topic would "
            "duplicate that with nobody subscribed.",
        )

    if stack.settings.worker_spot:
        _ack(
            compute.worker_group,
            "EC26",
            "The workers' launch template encrypts every EBS volume (Encrypted: true, tested); cdk-nag's "
            "EC26 cannot follow a MixedInstancesPolicy (used for Spot) to that template and throws.",
        )

    # ---- control plane ----------------------------------------------------------------------------
    for function in control.functions.values():
        _ack(
            function,
            "L1",
            "Pinned to python3.13 on purpose: the AWS-published Powertools layer used here "
            "(/aws/service/powertools/python/<arch>/python3.13/3.37.0) is built for python3.13.",
        )
    _ack(
        control.role,
        "IAM5[Resource::*]",
        "Only actions without resource-level permissions (ec2:DescribeInstances, "
        "autoscaling:DescribeAutoScalingGroups/Instances, ssm:GetCommandInvocation, the X-Ray "
        "PutTraceSegments/PutTelemetryRecords added by active tracing, the load balancer's "
        "elasticloadbalancing:Describe* and ec2:DescribeSecurityGroups), and the Deny of "
        "ssm:GetParametersByPath on every path.",
    )
    _ack(
        control.role,
        "IAM5[Resource::"
        + partition_arn.format("elasticloadbalancing", f"listener/net/{names.load_balancer}/*")
        + "]",
        "A listener ARN ends in ids ELB picks at creation; the wildcard stands only for those: the "
        f"listeners of this stack's load balancer ({names.load_balancer}), created for the swarm's "
        "published ports.",
    )
    _ack(
        control.role,
        "IAM5[Resource::"
        + partition_arn.format("elasticloadbalancing", f"targetgroup/{names.target_group_prefix}*/*")
        + "]",
        f"The target groups the control plane creates per published port, named {names.target_group_prefix}"
        "<protocol>-<port> (the id after the name is ELB's); creation requires the cluster tag "
        "(aws:RequestTag) and every change the tag on the group (aws:ResourceTag).",
    )
    for group in names.groups:
        _ack(
            control.role,
            "IAM5[Resource::"
            + partition_arn.format("autoscaling", f"autoScalingGroup:*:autoScalingGroupName/{group}")
            + "]",
            "An Auto Scaling group ARN contains a UUID unknown before creation; the wildcard stands only "
            f"for that UUID, the group name ({group}) is fixed.",
        )
    _ack(
        control.role,
        "IAM5[Resource::" + partition_arn.format("ec2", "instance/*") + "]",
        "ssm:SendCommand and ec2:CreateTags on instances are conditioned on the tag "
        f"{GROUP_NAME_TAG} (set by Auto Scaling, settable by no principal) being one of the stack's "
        "two groups (and CreateTags on the node-id tag key only): instances come and go, the group "
        "tag is what scopes them to this cluster.",
    )
    _ack(
        control.role,
        f"IAM5[{command_output}]",
        "The control plane reads Run Command output whose keys are named after command ids; "
        f"s3:GetObject only, under {COMMAND_OUTPUT_PREFIX}/ in this stack's output bucket.",
    )

    # ---- load balancer ----------------------------------------------------------------------------
    _ack(
        stack.load_balancer.load_balancer,
        "ELB2",
        "A Network Load Balancer writes access logs only for TLS listeners; every connection to the "
        "nodes is in the VPC flow logs (a new VPC has them), and the listeners swarmkeeper creates or "
        "removes are published on the operators' bus.",
    )

    # ---- state ------------------------------------------------------------------------------------
    _ack(
        state.output_bucket,
        "S1",
        "Holds only transient Run Command output (expires after one day), written by the managers' role "
        "and read by the control plane's role; access logs would need another bucket for no audit gain.",
    )

    # ---- stacks -----------------------------------------------------------------------------------
    stacks = stack.stacks
    _ack(
        stacks.bucket,
        "S1",
        "Every version of every Compose file is kept (versioning) and every change reaches the control "
        "plane as an EventBridge event; each deploy and removal is published on the operators' bus with "
        "the object version. Who wrote a version is CloudTrail's (data events), not an access log's.",
    )
    stacks_objects = (
        f"Resource::<{Stack.of(stack).get_logical_id(stacks.bucket.node.default_child)}.Arn>/{STACKS_PREFIX}*"
    )
    _ack(
        compute.manager_role,
        f"IAM5[{stacks_objects}]",
        f"A manager reads the Compose file of whichever stack it deploys (stacks/<name>.yml, named by "
        f"the user); s3:GetObject(Version) only, under {STACKS_PREFIX} in the stacks bucket.",
    )
    secrets = partition_arn.format("ssm", f"parameter{names.secrets_parameter_prefix}/*")
    _ack(
        compute.manager_role,
        f"IAM5[Resource::{secrets}]",
        "A manager reads the SecureStrings of the secrets its stacks name (external: true), chosen by "
        f"the user; ssm:GetParameter only, under {names.secrets_parameter_prefix}/, denied to the "
        "control plane.",
    )
