"""The operators' CloudWatch dashboard `swarmkeeper-C`: the swarm (nodes Ready/Down, quorum margin), what
the control plane did (joins, leaves, failures), its functions (errors, duration), its queues (dead
letters, the step queue's oldest step) and the state of every alarm in the stack."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.names import METRICS_NAMESPACE
from infra.settings import ClusterSettings
from swarmkeeper.domain.names import ClusterNames

# Metrics the control plane publishes (namespace Swarmkeeper, dimension Cluster): the swarm's gauges from
# each reconcile pass, and the counts of the outcomes that know a metric (domain.kernel.Outcome.metric).
NODE_GAUGES = ("NodesReady", "NodesDown")
QUORUM_GAUGES = ("ManagersReachable", "QuorumMargin")
JOIN_COUNTS = ("NodeJoinStarted", "NodeJoined")
LEAVE_COUNTS = ("NodeDrainStarted", "NodeRemoved")
FAILURE_COUNTS = (
    "NodeJoinFailed",
    "NodeRemovalGaveUp",
    "InstancesMarkedUnhealthy",
    "ReconcileFailed",
    "TokenRotationFailed",
)
WIDTH = 24  # a dashboard row
ONE_MINUTE = Duration.minutes(1)


class OperatorsDashboard(Construct):
    """Built last in the stack: every alarm the stack holds by then is on the alarm status widget."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: ClusterSettings,
        names: ClusterNames,
        functions: dict[str, lambda_.IFunction],
        step_queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, id)
        every_pass = Duration.minutes(settings.reconcile_minutes)  # the gauges' publishing period

        def swarm(name: str, statistic: str, period: Duration) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"Cluster": settings.cluster_name},
                statistic=statistic,
                period=period,
                label=name,
            )

        def counts(title: str, metric_names: tuple[str, ...]) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(
                title=title,
                left=[swarm(name, "Sum", every_pass) for name in metric_names],
                width=WIDTH // 3,
            )

        def per_function(title: str, metric_name: str, statistic: str) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(
                title=title,
                left=[
                    function.metric(metric_name, period=ONE_MINUTE, statistic=statistic, label=name)
                    for name, function in sorted(functions.items())
                ],
                width=WIDTH // 2,
            )

        alarms = sorted(
            (c for c in Stack.of(self).node.find_all() if isinstance(c, cloudwatch.AlarmBase)),
            key=lambda alarm: alarm.node.path,
        )
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=names.dashboard,
            default_interval=Duration.hours(3),
            widgets=[
                [
                    cloudwatch.AlarmStatusWidget(
                        title="Alarms", alarms=alarms, width=WIDTH, height=2 + len(alarms) // 4
                    )
                ],
                [
                    cloudwatch.GraphWidget(
                        title="Nodes Ready / Down",
                        left=[swarm(name, "Maximum", every_pass) for name in NODE_GAUGES],
                        width=WIDTH // 2,
                    ),
                    cloudwatch.GraphWidget(
                        title="Quorum: reachable managers and margin (reachable minus majority)",
                        left=[swarm(name, "Minimum", every_pass) for name in QUORUM_GAUGES],
                        left_annotations=[
                            cloudwatch.HorizontalAnnotation(value=1, label="quorum-at-risk below this")
                        ],
                        width=WIDTH // 2,
                    ),
                ],
                [
                    counts("Joins", JOIN_COUNTS),
                    counts("Leaves", LEAVE_COUNTS),
                    counts("Failures", FAILURE_COUNTS),
                ],
                [
                    per_function("Function errors", "Errors", "Sum"),
                    per_function("Function duration (p99)", "Duration", "p99"),
                ],
                [
                    cloudwatch.GraphWidget(
                        title=f"Dead letters ({names.dead_letter_queue})",
                        left=[
                            dead_letter_queue.metric_approximate_number_of_messages_visible(
                                period=ONE_MINUTE, statistic="Maximum", label="messages"
                            )
                        ],
                        width=WIDTH // 2,
                    ),
                    cloudwatch.GraphWidget(
                        title=f"Step queue ({names.step_queue})",
                        left=[
                            step_queue.metric_approximate_age_of_oldest_message(
                                period=ONE_MINUTE, statistic="Maximum", label="oldest step (s)"
                            )
                        ],
                        right=[
                            step_queue.metric_approximate_number_of_messages_delayed(
                                period=ONE_MINUTE, statistic="Maximum", label="steps waiting"
                            )
                        ],
                        width=WIDTH // 2,
                    ),
                ],
            ],
        )
