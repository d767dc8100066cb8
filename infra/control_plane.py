"""The control plane: one Lambda function per `functions/<name>/`, its IAM role and its event sources.

One IAM role for all nine functions. They form one state machine (any of them may send a Run Command,
complete a lifecycle action or enqueue the next step), so per-function roles would each need nearly the
whole set; one role is one policy to review and to test. What it can NOT do matters more: it cannot
read the join tokens (no read of them, an explicit Deny on top, and no use of the cluster KMS key, whose
policy lets only the instance roles use it), cannot send commands outside this stack's documents or to
instances outside the stack's two Auto Scaling groups, and cannot complete lifecycle actions of other
groups.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.load_balancer import LoadBalancer
from infra.names import (
    AGENT_READY,
    ASSOCIATION_ONLY,
    CLUSTER_TAG,
    COMMAND_OUTPUT_PREFIX,
    FUNCTIONS,
    GROUP_NAME_TAG,
    LAUNCH_HOOK,
    METRICS_NAMESPACE,
    STACKS_PREFIX,
    TERMINATE_HOOK,
    document_names,
    document_prefix,
)
from infra.settings import ClusterSettings
from infra.ssm_documents import ECR_REGISTRY
from infra.stacks import StacksBucket
from infra.state import STEPS_FUNCTION_TIMEOUT, State
from swarmkeeper.domain.names import SECRETS_PATH, ClusterNames

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
LAYER_DIR = ROOT / "layers" / "swarmkeeper"
ASSET_EXCLUDES = ["__pycache__", "*.pyc", ".pytest_cache"]
POWERTOOLS_VERSION = "3.37.0"
RUNTIME = lambda_.Runtime.PYTHON_3_13

TIMEOUTS = {"reconcile": Duration.seconds(120), "steps": STEPS_FUNCTION_TIMEOUT}
DEFAULT_TIMEOUT = Duration.seconds(30)
MEMORY_MB = 256

# Retries for EventBridge -> Lambda deliveries and for Lambda async invocations.
RULE_RETRY_ATTEMPTS = 2
RULE_MAX_EVENT_AGE = Duration.hours(1)
ASYNC_RETRY_ATTEMPTS = 2
ASYNC_MAX_EVENT_AGE = Duration.hours(1)


def powertools_layer_parameter(architecture: str) -> str:
    return f"/aws/service/powertools/python/{architecture}/python3.13/{POWERTOOLS_VERSION}"


class ControlPlane(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: ClusterSettings,
        names: ClusterNames,
        state: State,
        bus: events.IEventBus,
        stacks: StacksBucket,
        load_balancer: LoadBalancer,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self._names = names
        self._cluster = settings.cluster_name

        architecture = (
            lambda_.Architecture.ARM_64
            if settings.lambda_architecture == "arm64"
            else lambda_.Architecture.X86_64
        )

        # ---- role ----------------------------------------------------------------------------------
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"swarmkeeper {settings.cluster_name} control plane (all functions)",
        )
        self._grant(stack, state, bus)
        self._grant_listeners(stack, load_balancer)

        # ---- code ----------------------------------------------------------------------------------
        shared_layer = lambda_.LayerVersion(
            self,
            "SharedLayer",
            layer_version_name=f"{names.prefix}-shared",
            code=lambda_.Code.from_asset(str(LAYER_DIR), exclude=ASSET_EXCLUDES),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[architecture],
            description="swarmkeeper package: events in, domain decisions, AWS adapters",
        )
        # The AWS-published Powertools layer; its ARN is read by CloudFormation at deploy time from the
        # public SSM parameter (a template parameter), never looked up at synth time.
        powertools_layer = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "PowertoolsLayer",
            ssm.StringParameter.value_for_string_parameter(
                self, powertools_layer_parameter(settings.lambda_architecture)
            ),
        )

        environment = {
            "CLUSTER_NAME": settings.cluster_name,
            "MANAGER_GROUP_NAME": names.manager_group,
            "WORKER_GROUP_NAME": names.worker_group,
            "LAUNCH_HOOK_NAME": LAUNCH_HOOK,
            "TERMINATE_HOOK_NAME": TERMINATE_HOOK,
            "STATE_TABLE_NAME": names.state_table,
            "EVENT_BUS_NAME": names.event_bus,
            "PARAMETER_PREFIX": names.parameter_prefix,
            # The alias works wherever a key id is accepted (PutParameter --key-id) and is a literal.
            "KMS_KEY_ID": names.kms_alias,
            "DOCUMENT_PREFIX": document_prefix(names),
            "STEP_QUEUE_URL": state.step_queue.queue_url,  # Ref: the URL holds account and region
            "COMMAND_OUTPUT_BUCKET": state.output_bucket.bucket_name,  # Ref: generated, globally unique
            "STACKS_BUCKET": stacks.bucket_name,  # Ref, likewise
            "DOCKER_VERSION": settings.docker_version,
            # bootstrap-node's containers' log group (empty: containerLogs off) and the ECR registry
            # the nodes pull from with their instance role.
            "CONTAINER_LOG_GROUP": names.container_log_group if settings.container_logs else "",
            "ECR_REGISTRY": ECR_REGISTRY,
            "AGENT_WAIT_SECONDS": str(settings.agent_wait_seconds),
            "DRAIN_TIMEOUT_SECONDS": str(settings.drain_timeout_seconds),
            "REBALANCE_DRAIN_WORKERS": "true" if settings.rebalance_drain_workers else "false",
            "RECONCILE_DOWN_GRACE_SECONDS": str(settings.down_grace_seconds),
            "LOAD_BALANCER_ARN": load_balancer.load_balancer.load_balancer_arn,
            "LOAD_BALANCER_SECURITY_GROUP": load_balancer.security_group.security_group_id,
            "TARGET_SECURITY_GROUP": load_balancer.target_security_group.security_group_id,
            "LOAD_BALANCER_CLIENT_CIDR": load_balancer.client_cidr,
            "TARGET_GROUP_PREFIX": names.target_group_prefix,
            "VPC_ID": load_balancer.vpc_id,
            "DEREGISTRATION_DELAY_SECONDS": str(settings.load_balancer_deregistration_seconds),
            "POWERTOOLS_SERVICE_NAME": "swarmkeeper",
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "LOG_LEVEL": settings.log_level,
        }

        self.functions: dict[str, lambda_.Function] = {}
        log_groups = {
            name: logs.LogGroup(
                self,
                f"{_camel(name)}Logs",
                log_group_name=f"/aws/lambda/{names.function(name)}",
                retention=settings.log_retention,
                removal_policy=RemovalPolicy.DESTROY,
            )
            for name in FUNCTIONS
        }
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[group.log_group_arn for group in log_groups.values()],
            )
        )
        for name in FUNCTIONS:
            function_name = names.function(name)
            self.functions[name] = lambda_.Function(
                self,
                _camel(name),
                function_name=function_name,
                description=f"swarmkeeper {settings.cluster_name}: {name}",
                runtime=RUNTIME,
                architecture=architecture,
                handler="handler.lambda_handler",
                code=lambda_.Code.from_asset(str(FUNCTIONS_DIR / name), exclude=ASSET_EXCLUDES),
                layers=[shared_layer, powertools_layer],
                role=self.role,
                memory_size=MEMORY_MB,
                timeout=TIMEOUTS.get(name, DEFAULT_TIMEOUT),
                tracing=lambda_.Tracing.ACTIVE,
                log_group=log_groups[name],
                environment=environment,
                # Async invocations (EventBridge): two retries, then the dead-letter queue, whose
                # messages carry ErrorCode/ErrorMessage attributes (the reason).
                retry_attempts=ASYNC_RETRY_ATTEMPTS,
                max_event_age=ASYNC_MAX_EVENT_AGE,
                dead_letter_queue=state.dead_letter_queue,
            )

        # ---- event sources -------------------------------------------------------------------------
        self.rules: dict[str, events.Rule] = {}
        self._rule(
            "instance-state",
            "instance_state",
            state,
            events.EventPattern(
                source=["aws.ec2"],
                detail_type=["EC2 Instance State-change Notification"],
                detail={"state": ["running", "shutting-down", "terminated"]},
            ),
        )
        self._rule(
            "agent-ready",
            "instance_state",
            state,
            events.EventPattern(
                source=["aws.ssm"],
                detail_type=["EC2 State Manager Instance Association State Change"],
                detail={"document-name": [document_names(names)[AGENT_READY]], "status": ["Success"]},
            ),
        )
        self._rule(
            "lifecycle-action",
            "lifecycle_action",
            state,
            events.EventPattern(
                source=["aws.autoscaling"],
                detail_type=[
                    "EC2 Instance-launch Lifecycle Action",
                    "EC2 Instance-terminate Lifecycle Action",
                ],
                detail={"AutoScalingGroupName": [names.manager_group, names.worker_group]},
            ),
        )
        interruption_types = ["EC2 Spot Instance Interruption Warning"]
        if settings.rebalance_drain_workers:
            interruption_types.append("EC2 Instance Rebalance Recommendation")
        self._rule(
            "interruption",
            "interruption",
            state,
            events.EventPattern(source=["aws.ec2"], detail_type=interruption_types),
        )
        self._rule(
            "command-status",
            "command_status",
            state,
            events.EventPattern(
                source=["aws.ssm"],
                detail_type=["EC2 Command Invocation Status-change Notification"],
                # Exact names, not a prefix: "swarmkeeper-demo-" would also match cluster "demo-2".
                detail={"document-name": sorted(document_names(names).values())},
            ),
        )
        self._rule(
            "alarm",
            "alarm",
            state,
            events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                # Exact names, not the prefix "swarmkeeper-C-" (which another cluster "C-x" shares).
                detail={"alarmName": list(names.alarms)},
            ),
        )
        self._rule(
            "reconcile",
            "reconcile",
            state,
            schedule=events.Schedule.rate(Duration.minutes(settings.reconcile_minutes)),
        )
        self._rule(
            "rotate-tokens",
            "rotate_tokens",
            state,
            schedule=events.Schedule.rate(Duration.days(settings.token_rotation_days)),
        )
        # S3 sends its events to the account's default bus, where this rule is.
        self._rule(
            "stack-object",
            "stack_object",
            state,
            events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created", "Object Deleted"],
                detail={
                    "bucket": {"name": [stacks.bucket_name]},
                    "object": {"key": events.Match.wildcard(f"{STACKS_PREFIX}*.yml")},
                },
            ),
        )
        stacks.grant_list(self.role)

        self.functions["steps"].add_event_source(
            sources.SqsEventSource(state.step_queue, batch_size=10, report_batch_item_failures=True)
        )

    # ---------------------------------------------------------------------------------------------------
    def _rule(
        self,
        what: str,
        function: str,
        state: State,
        pattern: events.EventPattern | None = None,
        schedule: events.Schedule | None = None,
    ) -> None:
        rule = events.Rule(
            self,
            f"{_camel(what.replace('-', '_'))}Rule",
            rule_name=self._names.rule(what),
            description=f"swarmkeeper {self._names.cluster}: {what} -> {function}",
            event_pattern=pattern,
            schedule=schedule,
        )
        rule.add_target(
            targets.LambdaFunction(
                self.functions[function],
                retry_attempts=RULE_RETRY_ATTEMPTS,
                max_event_age=RULE_MAX_EVENT_AGE,
                dead_letter_queue=state.dead_letter_queue,
            )
        )
        self.rules[what] = rule

    def _grant(self, stack: Stack, state: State, bus: events.IEventBus) -> None:
        names = self._names
        role = self.role

        def arn(service: str, resource: str, name: str) -> str:
            return stack.format_arn(service=service, resource=resource, resource_name=name)

        group_arns = [
            stack.format_arn(
                service="autoscaling",
                resource="autoScalingGroup",
                resource_name=f"*:autoScalingGroupName/{group}",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            for group in names.groups
        ]
        # Every document but those only their State Manager associations run.
        document_arns = [
            arn("ssm", "document", name)
            for action, name in document_names(names).items()
            if action not in ASSOCIATION_ONLY
        ]
        instances_arn = stack.format_arn(service="ec2", resource="instance", resource_name="*")
        parameters = names.parameter_prefix.lstrip("/")

        statements = [
            iam.PolicyStatement(
                sid="DescribeFleet",
                # These calls support no resource-level permissions. Group membership is read from the
                # instances' aws:autoscaling:groupName tag (DescribeInstances); DescribeAutoScalingGroups
                # tells a manager removal whether a replacement is launching; DescribeAutoScalingInstances
                # tells the `running` fallback whether the instance waits in a warm pool (not to join).
                actions=[
                    "ec2:DescribeInstances",
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "ssm:GetCommandInvocation",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="DriveLifecycleOfOwnGroups",
                actions=[
                    "autoscaling:CompleteLifecycleAction",
                    "autoscaling:RecordLifecycleActionHeartbeat",
                    "autoscaling:SetInstanceHealth",
                ],
                resources=group_arns,
            ),
            iam.PolicyStatement(
                sid="SendOwnDocuments",
                actions=["ssm:SendCommand"],
                resources=document_arns,
            ),
            iam.PolicyStatement(
                sid="SendToOwnGroupsInstances",
                actions=["ssm:SendCommand"],
                resources=[instances_arn],
                conditions={"StringEquals": {f"ssm:resourceTag/{GROUP_NAME_TAG}": list(names.groups)}},
            ),
            iam.PolicyStatement(
                sid="ReadClusterId",
                actions=["ssm:GetParameter"],
                resources=[arn("ssm", "parameter", names.cluster_id_parameter.lstrip("/"))],
            ),
            iam.PolicyStatement(
                sid="NeverReadJoinTokens",
                effect=iam.Effect.DENY,
                actions=["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory"],
                resources=[arn("ssm", "parameter", f"{parameters}/join-token/*")],
            ),
            iam.PolicyStatement(
                sid="NeverReadStackSecrets",
                effect=iam.Effect.DENY,
                actions=["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParameterHistory"],
                resources=[arn("ssm", "parameter", f"{parameters}/{SECRETS_PATH}/*")],
            ),
            iam.PolicyStatement(
                sid="NeverReadParametersByPath",
                # A path above the tokens (/swarmkeeper/C, /swarmkeeper, /) would return them.
                effect=iam.Effect.DENY,
                actions=["ssm:GetParametersByPath"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="TagOwnGroupsInstances",
                actions=["ec2:CreateTags"],
                resources=[instances_arn],
                conditions={
                    "StringEquals": {f"aws:ResourceTag/{GROUP_NAME_TAG}": list(names.groups)},
                    # Only the node-id tag: the control plane cannot move an instance between clusters.
                    "ForAllValues:StringEquals": {"aws:TagKeys": ["swarmkeeper:node-id"]},
                },
            ),
            iam.PolicyStatement(
                sid="ReadCommandOutput",
                actions=["s3:GetObject"],
                resources=[state.output_bucket.arn_for_objects(f"{COMMAND_OUTPUT_PREFIX}/*")],
            ),
        ]
        for statement in statements:
            role.add_to_policy(statement)
        state.table.grant_read_write_data(role)
        state.step_queue.grant_send_messages(role)
        bus.grant_put_events_to(role)

    def _grant_listeners(self, stack: Stack, load_balancer: LoadBalancer) -> None:
        """Listeners of this stack's load balancer only; target groups named with this cluster's prefix
        and tagged with its name (at creation, and checked on every later change); rules of the load
        balancer's two security groups only; target groups attached to the worker group only."""
        names = self._names

        def elb_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="elasticloadbalancing", resource=resource, resource_name=name)

        listeners = elb_arn("listener", f"net/{names.load_balancer}/*")
        target_groups = elb_arn("targetgroup", f"{names.target_group_prefix}*/*")
        own_tag = {f"aws:ResourceTag/{CLUSTER_TAG}": self._cluster}
        worker_group = stack.format_arn(
            service="autoscaling",
            resource="autoScalingGroup",
            resource_name=f"*:autoScalingGroupName/{names.worker_group}",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        groups = [
            stack.format_arn(service="ec2", resource="security-group", resource_name=group.security_group_id)
            for group in (load_balancer.security_group, load_balancer.target_security_group)
        ]
        statements = [
            iam.PolicyStatement(
                sid="DescribeLoadBalancing",
                # Describe calls support no resource-level permissions.
                actions=[
                    "elasticloadbalancing:DescribeListeners",
                    "elasticloadbalancing:DescribeTargetGroups",
                    "elasticloadbalancing:DescribeTargetHealth",
                    "elasticloadbalancing:DescribeTags",
                    "ec2:DescribeSecurityGroups",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="CreateListenersOnOwnLoadBalancer",
                actions=["elasticloadbalancing:CreateListener"],
                resources=[load_balancer.load_balancer.load_balancer_arn],
            ),
            iam.PolicyStatement(
                sid="ChangeListenersOfOwnLoadBalancer",
                actions=[
                    "elasticloadbalancing:ModifyListener",
                    "elasticloadbalancing:DeleteListener",
                    "elasticloadbalancing:AddTags",
                ],
                resources=[listeners],
            ),
            iam.PolicyStatement(
                sid="CreateOwnTargetGroups",
                actions=["elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:AddTags"],
                resources=[target_groups],
                conditions={"StringEquals": {f"aws:RequestTag/{CLUSTER_TAG}": self._cluster}},
            ),
            iam.PolicyStatement(
                sid="ChangeOwnTargetGroups",
                actions=[
                    "elasticloadbalancing:ModifyTargetGroupAttributes",
                    "elasticloadbalancing:DeleteTargetGroup",
                    "elasticloadbalancing:DeregisterTargets",
                ],
                resources=[target_groups],
                conditions={"StringEquals": own_tag},
            ),
            iam.PolicyStatement(
                sid="AttachTargetGroupsToWorkers",
                actions=[
                    "autoscaling:AttachLoadBalancerTargetGroups",
                    "autoscaling:DetachLoadBalancerTargetGroups",
                ],
                resources=[worker_group],
            ),
            iam.PolicyStatement(
                sid="PublishedPortRules",
                actions=["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
                resources=groups,
            ),
        ]
        for statement in statements:
            self.role.add_to_policy(statement)


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))
