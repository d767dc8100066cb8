"""Control plane as synthesized: functions, their environment, rule targets and event sources."""

from __future__ import annotations

import pytest
from infra_iam import role_id_for

FUNCTIONS = (
    "lifecycle_action",
    "instance_state",
    "interruption",
    "command_status",
    "alarm",
    "reconcile",
    "rotate_tokens",
    "steps",
    "stack_object",
)
NLB = "AWS::ElasticLoadBalancingV2::LoadBalancer"
CONTRACT_ENV = {
    "CLUSTER_NAME": "demo",
    "MANAGER_GROUP_NAME": "swarmkeeper-demo-managers",
    "WORKER_GROUP_NAME": "swarmkeeper-demo-workers",
    "LAUNCH_HOOK_NAME": "swarmkeeper-launch",
    "TERMINATE_HOOK_NAME": "swarmkeeper-terminate",
    "STATE_TABLE_NAME": "swarmkeeper-demo-state",
    "EVENT_BUS_NAME": "swarmkeeper-demo",
    "PARAMETER_PREFIX": "/swarmkeeper/demo",
    "KMS_KEY_ID": "alias/swarmkeeper-demo",
    "DOCUMENT_PREFIX": "swarmkeeper-demo-",
    "DOCKER_VERSION": "25.0",
    "AGENT_WAIT_SECONDS": "300",
    "DRAIN_TIMEOUT_SECONDS": "300",
    "REBALANCE_DRAIN_WORKERS": "true",
    "RECONCILE_DOWN_GRACE_SECONDS": "600",
    "LOAD_BALANCER_CLIENT_CIDR": "0.0.0.0/0",
    "TARGET_GROUP_PREFIX": "sk-2a97516c-",
    "DEREGISTRATION_DELAY_SECONDS": "30",
    "POWERTOOLS_SERVICE_NAME": "swarmkeeper",
    "POWERTOOLS_METRICS_NAMESPACE": "Swarmkeeper",
    "LOG_LEVEL": "INFO",
}
RULE_TARGETS = {
    "swarmkeeper-demo-instance-state": "instance-state",
    "swarmkeeper-demo-agent-ready": "instance-state",
    "swarmkeeper-demo-lifecycle-action": "lifecycle-action",
    "swarmkeeper-demo-interruption": "interruption",
    "swarmkeeper-demo-command-status": "command-status",
    "swarmkeeper-demo-alarm": "alarm",
    "swarmkeeper-demo-reconcile": "reconcile",
    "swarmkeeper-demo-rotate-tokens": "rotate-tokens",
    "swarmkeeper-demo-stack-object": "stack-object",
}


def _functions(synth):
    return {
        r["Properties"]["FunctionName"]: (k, r["Properties"])
        for k, r in synth.of_type("AWS::Lambda::Function").items()
    }


def _logical_id(synth, cfn_type, name_key, name):
    (found,) = [k for k, r in synth.of_type(cfn_type).items() if r["Properties"].get(name_key) == name]
    return found


def test_one_function_per_directory_with_runtime_arch_tracing_and_handler(demo):
    functions = _functions(demo)
    assert set(functions) == {f"swarmkeeper-demo-{n.replace('_', '-')}" for n in FUNCTIONS}
    for _, props in functions.values():
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Handler"] == "handler.lambda_handler"
        assert 128 <= props["MemorySize"] <= 1024 and props["Timeout"] <= 300


def test_function_environment_is_exactly_the_readme_contract(demo):
    queue_id = _logical_id(demo, "AWS::SQS::Queue", "QueueName", "swarmkeeper-demo-steps")
    bucket_id = demo.output_bucket_id
    lb_group = demo.logical_id("AWS::EC2::SecurityGroup", "LoadBalancerSecurityGroup")
    target_group = demo.logical_id("AWS::EC2::SecurityGroup", "LoadBalancerTargetSecurityGroup")
    for _, props in _functions(demo).values():
        env = props["Environment"]["Variables"]
        assert env == {
            **CONTRACT_ENV,
            # the values the lab must resolve: a queue URL, a generated bucket name, the load balancer's
            "STEP_QUEUE_URL": {"Ref": queue_id},
            "COMMAND_OUTPUT_BUCKET": {"Ref": bucket_id},
            "STACKS_BUCKET": {"Ref": demo.stacks_bucket_id},
            "CONTAINER_LOG_GROUP": "/swarmkeeper/demo/containers",
            # the account's registry in the stack's region, resolved at deploy time
            "ECR_REGISTRY": {
                "Fn::Join": [
                    "",
                    [
                        {"Ref": "AWS::AccountId"},
                        ".dkr.ecr.",
                        {"Ref": "AWS::Region"},
                        ".",
                        {"Ref": "AWS::URLSuffix"},
                    ],
                ]
            },
            "LOAD_BALANCER_ARN": {"Ref": demo.logical_id(NLB, "LoadBalancer")},
            "LOAD_BALANCER_SECURITY_GROUP": {"Fn::GetAtt": [lb_group, "GroupId"]},
            "TARGET_SECURITY_GROUP": {"Fn::GetAtt": [target_group, "GroupId"]},
            "VPC_ID": {"Ref": demo.logical_id("AWS::EC2::VPC", "NetworkVpc")},
        }


def test_functions_log_to_explicit_groups_with_retention(demo):
    groups = {r["Properties"]["LogGroupName"]: k for k, r in demo.of_type("AWS::Logs::LogGroup").items()}
    for name, (_, props) in _functions(demo).items():
        group_id = groups[f"/aws/lambda/{name}"]
        assert props["LoggingConfig"] == {"LogGroup": {"Ref": group_id}}
        assert demo.resources[group_id]["Properties"]["RetentionInDays"] == 30


def test_layers_are_the_shared_asset_and_the_published_powertools_layer(demo):
    layer_params = {
        k: p for k, p in demo.raw["Parameters"].items() if p["Default"].startswith("/aws/service/powertools/")
    }
    ((param_id, param),) = layer_params.items()
    assert param == {
        "Type": "AWS::SSM::Parameter::Value<String>",
        "Default": "/aws/service/powertools/python/arm64/python3.13/3.37.0",
    }
    (layer_id,) = demo.of_type("AWS::Lambda::LayerVersion")
    for _, props in _functions(demo).values():
        assert sorted(props["Layers"], key=str) == sorted([{"Ref": param_id}, {"Ref": layer_id}], key=str)


def test_async_invocations_retry_twice_then_land_in_the_dlq(demo):
    dlq_id = _logical_id(demo, "AWS::SQS::Queue", "QueueName", "swarmkeeper-demo-dlq")
    configs = {
        r["Properties"]["FunctionName"]["Ref"]: r["Properties"]
        for r in demo.of_type("AWS::Lambda::EventInvokeConfig").values()
    }
    for function_id, props in _functions(demo).values():
        assert props["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}}
        assert configs[function_id]["MaximumRetryAttempts"] == 2


@pytest.mark.parametrize(("rule_name", "function"), RULE_TARGETS.items())
def test_every_rule_targets_its_function_with_retries_and_the_dlq(demo, rule_name, function):
    dlq_id = _logical_id(demo, "AWS::SQS::Queue", "QueueName", "swarmkeeper-demo-dlq")
    function_id = _logical_id(demo, "AWS::Lambda::Function", "FunctionName", f"swarmkeeper-demo-{function}")
    rule = demo.rule(rule_name)["Properties"]
    assert "EventBusName" not in rule  # the default bus
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq_id, "Arn"]}}


def test_schedules_follow_the_settings(demo):
    assert demo.rule("swarmkeeper-demo-reconcile")["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    assert demo.rule("swarmkeeper-demo-rotate-tokens")["Properties"]["ScheduleExpression"] == "rate(30 days)"


def test_dlq_accepts_messages_from_the_rules_only(demo):
    dlq_id = _logical_id(demo, "AWS::SQS::Queue", "QueueName", "swarmkeeper-demo-dlq")
    (policy,) = [
        p
        for p in demo.of_type("AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": dlq_id}]
    ]
    senders = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert senders and all(s["Principal"] == {"Service": "events.amazonaws.com"} for s in senders)
    assert all("aws:SourceArn" in s["Condition"]["ArnEquals"] for s in senders)


def test_step_queue_feeds_steps_with_partial_batch_failures(demo):
    queue_id = _logical_id(demo, "AWS::SQS::Queue", "QueueName", "swarmkeeper-demo-steps")
    steps_id = _logical_id(demo, "AWS::Lambda::Function", "FunctionName", "swarmkeeper-demo-steps")
    demo.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [queue_id, "Arn"]},
            "FunctionName": {"Ref": steps_id},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    )


def test_variant_functions_are_x86_with_the_matching_powertools_layer(variant):
    for _, props in _functions(variant).values():
        assert props["Architectures"] == ["x86_64"]
    defaults = {p["Default"] for p in variant.raw["Parameters"].values()}
    assert "/aws/service/powertools/python/x86_64/python3.13/3.37.0" in defaults
    # rebalanceDrainWorkers=false: only Spot interruption warnings reach `interruption`
    assert variant.rule("swarmkeeper-blue-interruption")["Properties"]["EventPattern"]["detail-type"] == [
        "EC2 Spot Instance Interruption Warning"
    ]


def test_all_functions_share_the_control_plane_role(demo):
    # (what that role may do: test_infra_iam_control_plane.py)
    role_id = role_id_for(demo.resources, "ControlPlaneRole")
    for _, props in _functions(demo).values():
        assert props["Role"] == {"Fn::GetAtt": [role_id, "Arn"]}
