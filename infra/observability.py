"""What operators watch: the swarmkeeper event bus (archived, logged), the schemas of its events and the
stack's alarms."""

from __future__ import annotations

import json

import jsii
from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_eventschemas as eventschemas
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import event_schemas
from infra.names import EVENT_SOURCE, METRICS_NAMESPACE
from infra.settings import ClusterSettings
from swarmkeeper.domain.names import ClusterNames

ARCHIVE_RETENTION = Duration.days(30)


class OperatorsBus(Construct):
    """Bus `swarmkeeper-C`: every event with source `swarmkeeper` is archived and written to a log group."""

    def __init__(self, scope: Construct, id: str, *, settings: ClusterSettings, names: ClusterNames) -> None:
        super().__init__(scope, id)
        self.bus = events.EventBus(self, "Bus", event_bus_name=names.event_bus)
        own_events = events.EventPattern(source=[EVENT_SOURCE])
        self.archive = self.bus.archive(
            "Archive",
            archive_name=names.prefix,
            description=f"swarmkeeper {settings.cluster_name}: everything the control plane published",
            event_pattern=own_events,
            retention=ARCHIVE_RETENTION,
        )
        log_group_name = names.timeline_log_group
        self.log_group = logs.LogGroup(
            self,
            "Timeline",
            log_group_name=log_group_name,
            retention=settings.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.rule = events.Rule(
            self,
            "TimelineRule",
            rule_name=names.rule("timeline"),
            description=f"swarmkeeper {settings.cluster_name}: operators' timeline -> CloudWatch Logs",
            event_bus=self.bus,
            event_pattern=own_events,
        )
        self.rule.add_target(LogGroupTarget(self.log_group, log_group_name))


class EventSchemaRegistry(Construct):
    """Registry `swarmkeeper-C`: the schema of each detail-type the bus carries (schemas/*.json, as
    they are in the repo), so that consumers can browse them and generate code bindings."""

    def __init__(self, scope: Construct, id: str, *, settings: ClusterSettings, names: ClusterNames) -> None:
        super().__init__(scope, id)
        self.registry = eventschemas.CfnRegistry(
            self,
            "Registry",
            registry_name=names.schema_registry,
            description=f"swarmkeeper {settings.cluster_name}: the events on bus {names.event_bus}",
        )
        self.schemas: dict[str, eventschemas.CfnSchema] = {}
        for schema in event_schemas.load().values():
            resource = eventschemas.CfnSchema(
                self,
                schema.name.replace("@", "-"),
                registry_name=names.schema_registry,
                schema_name=schema.name,
                type=event_schemas.SCHEMA_TYPE,
                content=json.dumps(schema.content, separators=(",", ":")),
                description=schema.description,
            )
            resource.node.add_dependency(self.registry)
            self.schemas[schema.detail_type] = resource


@jsii.implements(events.IRuleTarget)
class LogGroupTarget:
    """A CloudWatch Logs target with a native AWS::Logs::ResourcePolicy.

    (aws_events_targets.CloudWatchLogGroup writes the policy through a Lambda-backed custom resource;
    this does the same with a plain CloudFormation resource: one less function, role and runtime.)
    """

    def __init__(self, log_group: logs.LogGroup, log_group_name: str) -> None:
        self.log_group = log_group
        self.log_group_name = log_group_name

    def bind(self, rule: events.IRule, id: str | None = None) -> events.RuleTargetConfig:
        self.log_group.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[
                    iam.ServicePrincipal("events.amazonaws.com"),
                    iam.ServicePrincipal("delivery.logs.amazonaws.com"),
                ],
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        arn = Stack.of(self.log_group).format_arn(
            service="logs",
            resource="log-group",
            resource_name=self.log_group_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        return events.RuleTargetConfig(arn=arn, target_resource=self.log_group)


class Alarms(Construct):
    """The four alarms of the README contract; EventBridge carries their state changes to `alarm`."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: ClusterSettings,
        names: ClusterNames,
        dead_letter_queue: sqs.IQueue,
        functions: dict[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, id)
        cluster = {"Cluster": settings.cluster_name}
        every = Duration.minutes(settings.reconcile_minutes)  # reconcile publishes the node metrics

        self.nodes_down = cloudwatch.Alarm(
            self,
            "NodesDown",
            alarm_name=names.alarm("nodes-down"),
            alarm_description="Swarm nodes are down (NodesDown > 0)",
            metric=cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name="NodesDown",
                dimensions_map=cluster,
                statistic="Maximum",
                period=every,
            ),
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            threshold=0,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.quorum_at_risk = cloudwatch.Alarm(
            self,
            "QuorumAtRisk",
            alarm_name=names.alarm("quorum-at-risk"),
            alarm_description="Losing one more manager loses the raft quorum (QuorumMargin < 1)",
            metric=cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name="QuorumMargin",
                dimensions_map=cluster,
                statistic="Minimum",
                period=every,
            ),
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            threshold=1,
            evaluation_periods=1,
            # No data means reconcile is not reporting: say so (INSUFFICIENT_DATA), do not guess.
            treat_missing_data=cloudwatch.TreatMissingData.MISSING,
        )
        self.dlq_depth = cloudwatch.Alarm(
            self,
            "DlqDepth",
            alarm_name=names.alarm("dlq-depth"),
            alarm_description=f"Events or steps failed for good: {names.dead_letter_queue} is not empty",
            metric=dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            threshold=0,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        errors = {
            f"e{i}": function.metric_errors(period=Duration.minutes(1), statistic="Sum")
            for i, function in enumerate(functions.values())
        }
        self.function_errors = cloudwatch.Alarm(
            self,
            "FunctionErrors",
            alarm_name=names.alarm("function-errors"),
            alarm_description="A control-plane function raised (sum of Errors over all functions)",
            metric=cloudwatch.MathExpression(
                expression="SUM([" + ",".join(errors) + "])",
                using_metrics=errors,
                label="Errors",
                period=Duration.minutes(1),
            ),
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            threshold=1,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
