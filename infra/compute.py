"""Manager and worker Auto Scaling groups: launch templates, instance roles, lifecycle hooks, updates."""

from __future__ import annotations

from dataclasses import dataclass

import jsii
from aws_cdk import Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.load_balancer import LoadBalancer
from infra.names import (
    AGENT_READY,
    CLUSTER_TAG,
    COMMAND_OUTPUT_PREFIX,
    LAUNCH_HOOK,
    REFRESH_REGISTRY_AUTH,
    TERMINATE_HOOK,
    document_names,
)
from infra.network import Network
from infra.settings import ClusterSettings
from infra.state import State
from swarmkeeper.domain.names import ClusterNames

AL2023_PARAMETER_PREFIX = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-"
ROOT_DEVICE = "/dev/xvda"  # Amazon Linux 2023
ROOT_VOLUME_GIB = 30  # images and container layers live on the root volume
ROLE_TAG = "swarmkeeper:role"
# The agent's two message channels: Run Command arrives on either (ec2messages, or ssmmessages' control
# channel for newer agents); the data channels carry Session Manager sessions.
EC2_MESSAGES = (
    "AcknowledgeMessage",
    "DeleteMessage",
    "FailMessage",
    "GetEndpoint",
    "GetMessages",
    "SendReply",
)
SSM_MESSAGES = ("CreateControlChannel", "CreateDataChannel", "OpenControlChannel", "OpenDataChannel")


@jsii.implements(ec2.IMachineImage)
class FixedImage:
    """An explicit AMI id, valid in whatever region the stack is deployed to (no region map)."""

    def __init__(self, ami_id: str) -> None:
        self.ami_id = ami_id

    def get_image(self, scope: Construct) -> ec2.MachineImageConfig:
        return ec2.MachineImageConfig(
            image_id=self.ami_id, os_type=ec2.OperatingSystemType.LINUX, user_data=ec2.UserData.for_linux()
        )


@dataclass(frozen=True)
class _Group:
    role_name: str  # manager | worker
    group_name: str
    instance_type: str


class Compute(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: ClusterSettings,
        names: ClusterNames,
        network: Network,
        state: State,
        load_balancer: LoadBalancer,
    ) -> None:
        super().__init__(scope, id)
        self._settings = settings
        self._names = names
        stack = Stack.of(self)

        def parameter_arn(name: str) -> str:
            return stack.format_arn(service="ssm", resource="parameter", resource_name=name.lstrip("/"))

        # ---- instance roles -----------------------------------------------------------------------
        # What the shell of infra/documents calls (aws ssm get-parameter / put-parameter, nothing else):
        # a manager reads its own join token, the manager addresses and the cluster id and writes all
        # four parameters; a worker reads only the worker token and the manager addresses.
        worker_token = parameter_arn(names.worker_token_parameter)
        manager_token = parameter_arn(names.manager_token_parameter)
        addresses = parameter_arn(names.manager_addresses_parameter)
        cluster_id = parameter_arn(names.cluster_id_parameter)
        agent_document = stack.format_arn(
            service="ssm", resource="document", resource_name=document_names(names)[AGENT_READY]
        )
        ssm_via = f"ssm.{stack.region}.amazonaws.com"

        self.manager_role = self._instance_role("ManagerRole", "manager", agent_document)
        # The managers' own association: State Manager's agent reads the document it runs.
        self.manager_role.add_to_policy(
            iam.PolicyStatement(
                sid="RefreshRegistryAuthDocument",
                actions=["ssm:GetDocument"],
                resources=[
                    stack.format_arn(
                        service="ssm",
                        resource="document",
                        resource_name=document_names(names)[REFRESH_REGISTRY_AUTH],
                    )
                ],
            )
        )
        self.manager_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadClusterParameters",
                actions=["ssm:GetParameter"],
                resources=[manager_token, addresses, cluster_id],
            )
        )
        self.manager_role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteClusterParameters",
                actions=["ssm:PutParameter"],
                resources=[worker_token, manager_token, addresses, cluster_id],
            )
        )
        self.manager_role.add_to_policy(
            iam.PolicyStatement(
                sid="CommandOutput",
                actions=["s3:PutObject"],
                resources=[state.output_bucket.arn_for_objects(f"{COMMAND_OUTPUT_PREFIX}/*")],
            )
        )

        self.worker_role = self._instance_role("WorkerRole", "worker", agent_document)
        self.worker_role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadWorkerJoinParameters",
                actions=["ssm:GetParameter"],
                resources=[worker_token, addresses],
            )
        )
        self.container_logs = self._container_logs(settings, names)
        for role in (self.manager_role, self.worker_role):
            self._allow_ecr_pulls(role)

        # The cluster key: each use needs both the role's policy and the key policy (whose account
        # statement grants no use at all), always through Parameter Store and for one token's context.
        key_uses = (
            (self.manager_role, "ManagersEncryptJoinTokens", ("kms:Encrypt", "kms:GenerateDataKey"),
             [worker_token, manager_token]),
            (self.manager_role, "ManagersDecryptManagerToken", ("kms:Decrypt",), [manager_token]),
            (self.worker_role, "WorkersDecryptWorkerToken", ("kms:Decrypt",), [worker_token]),
        )  # fmt: skip
        for role, sid, actions, tokens in key_uses:
            via_ssm = {"kms:ViaService": ssm_via, "kms:EncryptionContext:PARAMETER_ARN": tokens}
            role.add_to_policy(
                iam.PolicyStatement(
                    sid=sid,
                    actions=list(actions),
                    resources=[state.key.key_arn],
                    conditions={"StringEquals": via_ssm},
                )
            )
            state.key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    principals=[iam.AccountRootPrincipal()],
                    actions=list(actions),
                    resources=["*"],
                    conditions={"ArnEquals": {"aws:PrincipalArn": role.role_arn}, "StringEquals": via_ssm},
                )
            )

        # ---- groups --------------------------------------------------------------------------------
        managers = _Group("manager", names.manager_group, settings.manager_instance_type)
        workers = _Group("worker", names.worker_group, settings.worker_instance_type)

        self.manager_template = self._launch_template(
            "ManagerTemplate", managers, self.manager_role, [network.node_sg, network.manager_sg]
        )
        self.worker_template = self._launch_template(
            "WorkerTemplate",
            workers,
            self.worker_role,
            [network.node_sg, load_balancer.target_security_group],
        )

        n = settings.manager_count
        self.manager_group = autoscaling.AutoScalingGroup(
            self,
            "Managers",
            auto_scaling_group_name=managers.group_name,
            vpc=network.vpc,
            vpc_subnets=network.node_subnets,
            launch_template=self.manager_template,
            min_capacity=n,
            desired_capacity=n,
            max_capacity=n + 1,  # room for one replacement during a rolling update
            group_metrics=[autoscaling.GroupMetrics.all()],
            # One manager at a time, never below the full count: the new manager joins (launch hook
            # completes -> InService) before an old one is drained, demoted and removed.
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                max_batch_size=1,
                min_instances_in_service=n,
                pause_time=Duration.minutes(2),
            ),
        )

        if settings.worker_spot:
            worker_capacity: dict = {
                "mixed_instances_policy": autoscaling.MixedInstancesPolicy(
                    launch_template=self.worker_template,
                    instances_distribution=autoscaling.InstancesDistribution(
                        on_demand_base_capacity=0,
                        on_demand_percentage_above_base_capacity=0,
                        spot_allocation_strategy=autoscaling.SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED,
                    ),
                ),
                # Replace a Spot worker on a rebalance recommendation, through the terminate hook (drain).
                "capacity_rebalance": settings.rebalance_drain_workers,
            }
        else:
            worker_capacity = {"launch_template": self.worker_template}
        worker_min_in_service = min(settings.worker_desired_capacity, settings.worker_max_size - 1)
        self.worker_group = autoscaling.AutoScalingGroup(
            self,
            "Workers",
            auto_scaling_group_name=workers.group_name,
            vpc=network.vpc,
            vpc_subnets=network.node_subnets,
            min_capacity=settings.worker_min_size,
            desired_capacity=settings.worker_desired_capacity,
            max_capacity=settings.worker_max_size,
            group_metrics=[autoscaling.GroupMetrics.all()],
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                max_batch_size=1,
                min_instances_in_service=max(0, worker_min_in_service),
                pause_time=Duration.minutes(1),
            ),
            **worker_capacity,
        )

        for group, spec in ((self.manager_group, managers), (self.worker_group, workers)):
            Tags.of(group).add(CLUSTER_TAG, settings.cluster_name, apply_to_launched_instances=True)
            Tags.of(group).add(ROLE_TAG, spec.role_name, apply_to_launched_instances=True)
            self._add_lifecycle_hooks(group)

    # ---------------------------------------------------------------------------------------------------
    def _container_logs(self, settings: ClusterSettings, names: ClusterNames) -> logs.LogGroup | None:
        """The containers' log group (dockerd's awslogs driver on every node), the cluster's
        retention; the nodes may add streams and events to it, nothing else (not create groups)."""
        if not settings.container_logs:
            return None
        group = logs.LogGroup(
            self,
            "ContainerLogs",
            log_group_name=names.container_log_group,
            retention=settings.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        for role in (self.manager_role, self.worker_role):
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="ContainerLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[group.log_group_arn],  # arn:...:log-group:NAME:* (its streams)
                )
            )
        return group

    def _allow_ecr_pulls(self, role: iam.Role) -> None:
        """Pull (never push) from the account's ECR repositories in the stack's region, through
        docker-credential-ecr-login: GetAuthorizationToken has no resource-level permission."""
        repositories = Stack.of(self).format_arn(service="ecr", resource="repository", resource_name="*")
        role.add_to_policy(
            iam.PolicyStatement(sid="EcrToken", actions=["ecr:GetAuthorizationToken"], resources=["*"])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EcrPull",
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                resources=[repositories],
            )
        )

    def _instance_role(self, id: str, role: str, agent_document: str) -> iam.Role:
        instance_role = iam.Role(
            self,
            id,
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description=f"swarmkeeper {self._settings.cluster_name} {role} nodes",
        )
        # What the SSM agent calls for Run Command, the agent-ready association and Session Manager:
        # AmazonSSMManagedInstanceCore without its ssm:GetParameter(s) on every parameter of the
        # account and without Inventory, Patch Manager and Distributor, which the nodes do not use.
        instance_role.add_to_policy(
            iam.PolicyStatement(
                sid="SsmAgent",
                actions=[
                    "ssm:UpdateInstanceInformation",
                    "ssm:ListInstanceAssociations",
                    "ssm:UpdateInstanceAssociationStatus",
                    "ssm:PutComplianceItems",
                    *(f"ec2messages:{action}" for action in EC2_MESSAGES),
                    *(f"ssmmessages:{action}" for action in SSM_MESSAGES),
                ],
                resources=["*"],
            )
        )
        instance_role.add_to_policy(
            iam.PolicyStatement(
                sid="AssociationDocument", actions=["ssm:GetDocument"], resources=[agent_document]
            )
        )
        return instance_role

    def _launch_template(
        self, id: str, group: _Group, role: iam.Role, security_groups: list[ec2.ISecurityGroup]
    ) -> ec2.LaunchTemplate:
        instance_type = ec2.InstanceType(group.instance_type)
        if self._settings.ami_id:
            image: ec2.IMachineImage = FixedImage(self._settings.ami_id)
        else:
            # Latest Amazon Linux 2023 with AWS's default kernel, resolved by CloudFormation at deploy
            # time from the public SSM parameter (template parameter of type
            # AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>): no synth-time lookup, no credentials.
            # (latest_amazon_linux2023() pins the kernel-6.1 parameter whatever kernel is asked for.)
            arch = "arm64" if instance_type.architecture == ec2.InstanceArchitecture.ARM_64 else "x86_64"
            image = ec2.MachineImage.from_ssm_parameter(
                f"{AL2023_PARAMETER_PREFIX}{arch}", os=ec2.OperatingSystemType.LINUX
            )
        template = ec2.LaunchTemplate(
            self,
            id,
            launch_template_name=group.group_name,
            instance_type=instance_type,
            machine_image=image,
            role=role,
            security_group=security_groups[0],
            associate_public_ip_address=False,
            # IMDSv2 only, and a hop limit of 1: containers behind Docker's bridge cannot reach the
            # metadata service, so workloads never get the node role's credentials.
            require_imdsv2=True,
            http_tokens=ec2.LaunchTemplateHttpTokens.REQUIRED,
            http_put_response_hop_limit=1,
            http_endpoint=True,
            block_devices=[
                ec2.BlockDevice(
                    device_name=ROOT_DEVICE,
                    volume=ec2.BlockDeviceVolume.ebs(
                        ROOT_VOLUME_GIB,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                        encrypted=True,
                        delete_on_termination=True,
                    ),
                )
            ],
        )
        for extra in security_groups[1:]:
            template.add_security_group(extra)
        # Instance and volume tags from the first moment (the group's propagated tags repeat them).
        Tags.of(template).add(CLUSTER_TAG, self._settings.cluster_name)
        Tags.of(template).add(ROLE_TAG, group.role_name)
        return template

    def _add_lifecycle_hooks(self, group: autoscaling.AutoScalingGroup) -> None:
        # The hooks are part of the group itself (LifecycleHookSpecificationList), not separate
        # AWS::AutoScaling::LifecycleHook resources: those are created after the group, so the very
        # first instances (including the manager that initialises the swarm) would skip the hooks.
        # With no notification target, Auto Scaling sends the lifecycle events to EventBridge.
        cfn = group.node.default_child
        assert isinstance(cfn, autoscaling.CfnAutoScalingGroup)
        cfn.lifecycle_hook_specification_list = [
            autoscaling.CfnAutoScalingGroup.LifecycleHookSpecificationProperty(
                lifecycle_hook_name=LAUNCH_HOOK,
                lifecycle_transition="autoscaling:EC2_INSTANCE_LAUNCHING",
                heartbeat_timeout=self._settings.launch_heartbeat_seconds,
                # ABANDON: an instance that never finishes joining is terminated and replaced, it never
                # goes InService half-configured.
                default_result="ABANDON",
            ),
            autoscaling.CfnAutoScalingGroup.LifecycleHookSpecificationProperty(
                lifecycle_transition="autoscaling:EC2_INSTANCE_TERMINATING",
                lifecycle_hook_name=TERMINATE_HOOK,
                # Long enough to drain the node (drainTimeoutSeconds), demote a manager and remove it.
                heartbeat_timeout=self._settings.terminate_heartbeat_seconds,
                # On termination both results terminate the instance; ABANDON would also skip any other
                # terminate hooks (log shipping, backups someone adds later). If our drain times out we
                # still want those to run, so CONTINUE; the dead node is removed by reconcile.
                default_result="CONTINUE",
            ),
        ]
