"""The names the operators' CLI finds a cluster by, and the alarms the control plane answers, are the
names the stack gives its resources (all three derive them by swarmkeeper.domain.names)."""

from __future__ import annotations

from swarmkeeper.domain.models import ClusterIdentity
from swarmkeeper.domain.reconcile_pass import ReconcilePolicy
from swarmkeeper_cli.names import cluster_names


def _names(demo, cfn_type: str, key: str) -> set[str]:
    return {str(r["Properties"].get(key)) for r in demo.of_type(cfn_type).values()}


def test_the_cli_finds_every_resource_it_reads_or_acts_on_by_its_template_name(demo):
    # Given the CLI's names for the demo cluster
    names = cluster_names("demo")

    # When the synthesized template is read / Then each name is a resource of the stack
    tables = _names(demo, "AWS::DynamoDB::Table", "TableName") | _names(
        demo, "AWS::DynamoDB::GlobalTable", "TableName"
    )
    assert names.state_table in tables
    assert set(names.groups) <= _names(demo, "AWS::AutoScaling::AutoScalingGroup", "AutoScalingGroupName")
    assert {names.dead_letter_queue, names.step_queue} <= _names(demo, "AWS::SQS::Queue", "QueueName")
    assert names.timeline_log_group in _names(demo, "AWS::Logs::LogGroup", "LogGroupName")
    functions = _names(demo, "AWS::Lambda::Function", "FunctionName")
    assert {names.function("reconcile"), names.function("rotate_tokens")} <= functions
    assert demo.stack_name == names.stack


def test_the_control_plane_answers_the_alarms_of_the_stack_and_no_other(demo):
    # Given the reconcile policy of the demo cluster (the alarm function starts a pass for these)
    names = cluster_names("demo")
    identity = ClusterIdentity(names.cluster, names.manager_group, names.worker_group)
    policy = ReconcilePolicy(identity, join_budget_seconds=600)

    # When the template's alarms are read / Then they are the alarms the policy matches, whole
    assert policy.alarm_names == _names(demo, "AWS::CloudWatch::Alarm", "AlarmName")


def _rule_routes(demo) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """(source, detail-type) -> handler, and schedule rule suffix -> handler, from the template's rules."""
    functions = {
        lid: r["Properties"]["FunctionName"] for lid, r in demo.of_type("AWS::Lambda::Function").items()
    }
    prefix = "swarmkeeper-demo-"
    routes: dict[tuple[str, str], str] = {}
    schedules: dict[str, str] = {}
    for rule in demo.of_type("AWS::Events::Rule").values():
        props = rule["Properties"]
        targets = [
            t["Arn"].get("Fn::GetAtt", [None])[0]
            for t in props.get("Targets", [])
            if isinstance(t["Arn"], dict)
        ]
        handlers = [
            functions[lid].removeprefix(prefix).replace("-", "_") for lid in targets if lid in functions
        ]
        if not handlers:
            continue
        (handler,) = handlers
        pattern = props.get("EventPattern")
        if pattern:
            for source in pattern.get("source", []):
                for detail_type in pattern.get("detail-type", []):
                    routes[(source, detail_type)] = handler
        if props.get("ScheduleExpression"):
            schedules[props["Name"].removeprefix(prefix)] = handler
    return routes, schedules


def test_redrive_sends_each_event_back_to_the_function_the_stacks_rules_send_it_to(demo):
    # Given the template's rules / When they are read as routes / Then redrive's tables are the same
    from swarmkeeper_cli.redrive import ROUTES, SCHEDULES

    routes, schedules = _rule_routes(demo)
    assert routes == ROUTES
    assert schedules == SCHEDULES
