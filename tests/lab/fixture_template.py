"""A CDK-shaped stand-in template for the lab's unit tests (and for running the lab before infra/
synthesizes). It mirrors the CONTRACT in README.md; the lab itself always reads cdk.out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.documents import ACTIONS, document_content
from infra.names import FUNCTIONS

AMI_PARAMETER = "SsmParameterValueawsserviceamiamazonlinuxlatestal2023amikernel61x8664Parameter"


def _cid(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("_"))


def build(cluster: str = "demo", managers: int = 3, workers: int = 3) -> dict[str, Any]:
    c = cluster
    res: dict[str, Any] = {}
    res["Vpc8378EB38"] = {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}}
    res["VpcPrivateSubnet1Subnet536B997A"] = {
        "Type": "AWS::EC2::Subnet",
        "Properties": {
            "VpcId": {"Ref": "Vpc8378EB38"},
            "CidrBlock": "10.0.0.0/24",
            "AvailabilityZone": {"Fn::Select": [0, {"Fn::GetAZs": ""}]},
        },
    }
    res["NodesSecurityGroup"] = {
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {"GroupDescription": "swarm nodes", "VpcId": {"Ref": "Vpc8378EB38"}},
    }
    res["NodeRole"] = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}}
    res["NodeProfile"] = {"Type": "AWS::IAM::InstanceProfile", "Properties": {"Roles": [{"Ref": "NodeRole"}]}}
    for role, desired in (("managers", managers), ("workers", workers)):
        lt = f"{role.capitalize()}LaunchTemplate"
        res[lt] = {
            "Type": "AWS::EC2::LaunchTemplate",
            "Properties": {
                "LaunchTemplateName": f"swarmkeeper-{c}-{role}",
                "LaunchTemplateData": {
                    "ImageId": {"Ref": AMI_PARAMETER},
                    "InstanceType": "t4g.small",
                    "IamInstanceProfile": {"Arn": {"Fn::GetAtt": ["NodeProfile", "Arn"]}},
                    "SecurityGroupIds": [{"Fn::GetAtt": ["NodesSecurityGroup", "GroupId"]}],
                    "UserData": {"Fn::Base64": "#!/bin/bash\n"},
                    "TagSpecifications": [
                        {
                            "ResourceType": "instance",
                            "Tags": [
                                {"Key": "swarmkeeper:cluster", "Value": c},
                                {"Key": "swarmkeeper:role", "Value": role[:-1]},
                            ],
                        }
                    ],
                },
            },
        }
        asg = f"{role.capitalize()}Group"
        props: dict[str, Any] = {
            "AutoScalingGroupName": f"swarmkeeper-{c}-{role}",
            "MinSize": "0",
            "MaxSize": "30",
            "DesiredCapacity": str(desired),
            "LaunchTemplate": {
                "LaunchTemplateId": {"Ref": lt},
                "Version": {"Fn::GetAtt": [lt, "LatestVersionNumber"]},
            },
            "VPCZoneIdentifier": [{"Ref": "VpcPrivateSubnet1Subnet536B997A"}],
            "Tags": [
                {"Key": "swarmkeeper:cluster", "Value": c, "PropagateAtLaunch": True},
                {"Key": "swarmkeeper:role", "Value": role[:-1], "PropagateAtLaunch": True},
            ],
        }
        if role == "workers":
            props["LifecycleHookSpecificationList"] = [
                {
                    "LifecycleHookName": "swarmkeeper-launch",
                    "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
                    "HeartbeatTimeout": 600,
                    "DefaultResult": "ABANDON",
                },
                {
                    "LifecycleHookName": "swarmkeeper-terminate",
                    "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
                    "HeartbeatTimeout": 900,
                    "DefaultResult": "CONTINUE",
                },
            ]
        res[asg] = {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": props}
        if role == "managers":
            for hook, transition, result in (
                ("swarmkeeper-launch", "autoscaling:EC2_INSTANCE_LAUNCHING", "ABANDON"),
                ("swarmkeeper-terminate", "autoscaling:EC2_INSTANCE_TERMINATING", "CONTINUE"),
            ):
                res[f"ManagersHook{hook.split('-')[1].capitalize()}"] = {
                    "Type": "AWS::AutoScaling::LifecycleHook",
                    "Properties": {
                        "AutoScalingGroupName": {"Ref": asg},
                        "LifecycleHookName": hook,
                        "LifecycleTransition": transition,
                        "HeartbeatTimeout": 600,
                        "DefaultResult": result,
                    },
                }
    res["ClusterKey"] = {"Type": "AWS::KMS::Key", "Properties": {"KeyPolicy": {}}}
    res["ClusterKeyAlias"] = {
        "Type": "AWS::KMS::Alias",
        "Properties": {
            "AliasName": f"alias/swarmkeeper-{c}",
            "TargetKeyId": {"Fn::GetAtt": ["ClusterKey", "Arn"]},
        },
    }
    res["StateTable"] = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "TableName": f"swarmkeeper-{c}-state",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
        },
    }
    res["Dlq"] = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": f"swarmkeeper-{c}-dlq"}}
    res["Steps"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "QueueName": f"swarmkeeper-{c}-steps",
            "VisibilityTimeout": 180,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}, "maxReceiveCount": 5},
        },
    }
    res["Bus"] = {"Type": "AWS::Events::EventBus", "Properties": {"Name": f"swarmkeeper-{c}"}}
    res["Timeline"] = {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {"LogGroupName": f"/aws/events/swarmkeeper-{c}"},
    }
    res["TimelineRule"] = {
        "Type": "AWS::Events::Rule",
        "Properties": {
            "Name": f"swarmkeeper-{c}-timeline",
            "EventBusName": {"Ref": "Bus"},
            "EventPattern": {"source": ["swarmkeeper"]},
            "Targets": [
                {
                    "Id": "Target0",
                    "Arn": {
                        "Fn::Join": [
                            "",
                            [
                                "arn:aws:logs:",
                                {"Ref": "AWS::Region"},
                                ":",
                                {"Ref": "AWS::AccountId"},
                                f":log-group:/aws/events/swarmkeeper-{c}",
                            ],
                        ]
                    },
                }
            ],
        },
    }
    res["Output"] = {"Type": "AWS::S3::Bucket", "Properties": {}}
    res["Stacks"] = {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "VersioningConfiguration": {"Status": "Enabled"},
            "NotificationConfiguration": {"EventBridgeConfiguration": {"EventBridgeEnabled": True}},
        },
    }
    for action in ACTIONS:
        res[f"Doc{_cid(action.replace('-', '_'))}"] = {
            "Type": "AWS::SSM::Document",
            "Properties": {
                "Name": f"swarmkeeper-{c}-{action}",
                "DocumentType": "Command",
                "DocumentFormat": "JSON",
                "Content": document_content(action),
            },
        }
    res["SwarmkeeperLayer"] = {
        "Type": "AWS::Lambda::LayerVersion",
        "Properties": {"Content": {"S3Bucket": "cdk-assets", "S3Key": "layer.zip"}},
        "Metadata": {"aws:asset:path": "asset.layer", "aws:asset:property": "Content"},
    }
    env = {
        "CLUSTER_NAME": c,
        "MANAGER_GROUP_NAME": {"Ref": "ManagersGroup"},
        "WORKER_GROUP_NAME": {"Ref": "WorkersGroup"},
        "LAUNCH_HOOK_NAME": "swarmkeeper-launch",
        "TERMINATE_HOOK_NAME": "swarmkeeper-terminate",
        "STATE_TABLE_NAME": {"Ref": "StateTable"},
        "EVENT_BUS_NAME": {"Ref": "Bus"},
        "PARAMETER_PREFIX": f"/swarmkeeper/{c}",
        "KMS_KEY_ID": {"Ref": "ClusterKey"},
        "DOCUMENT_PREFIX": f"swarmkeeper-{c}-",
        "STEP_QUEUE_URL": {"Ref": "Steps"},
        "COMMAND_OUTPUT_BUCKET": {"Ref": "Output"},
        "STACKS_BUCKET": {"Ref": "Stacks"},
        "DOCKER_VERSION": "25.0.8",
        "AGENT_WAIT_SECONDS": "120",
        "DRAIN_TIMEOUT_SECONDS": "300",
        "POWERTOOLS_SERVICE_NAME": "swarmkeeper",
        "POWERTOOLS_METRICS_NAMESPACE": "Swarmkeeper",
        "LOG_LEVEL": "INFO",
    }
    for fn in FUNCTIONS:
        res[f"{_cid(fn)}Function"] = {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": f"swarmkeeper-{c}-{fn.replace('_', '-')}",
                "Handler": "handler.lambda_handler",
                "Runtime": "python3.12",
                "Timeout": 60,
                "MemorySize": 256,
                "Role": {"Fn::GetAtt": ["NodeRole", "Arn"]},
                "Code": {"S3Bucket": "cdk-assets", "S3Key": f"{fn}.zip"},
                "Layers": [
                    {"Ref": "SwarmkeeperLayer"},
                    {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:017000801446:layer:x:1"},
                ],
                "Environment": {"Variables": env},
                "DeadLetterConfig": {"TargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}},
            },
            "Metadata": {"aws:cdk:path": f"swarmkeeper-{c}/Functions/{fn}/Resource"},
        }

    def rule(lid: str, fn: str, pattern: dict | None = None, schedule: str | None = None) -> None:
        props: dict[str, Any] = {
            "State": "ENABLED",
            "Targets": [{"Arn": {"Fn::GetAtt": [f"{_cid(fn)}Function", "Arn"]}, "Id": "Target0"}],
        }
        if pattern:
            props["EventPattern"] = pattern
        if schedule:
            props["ScheduleExpression"] = schedule
        res[lid] = {"Type": "AWS::Events::Rule", "Properties": props}

    groups = [{"Ref": "ManagersGroup"}, {"Ref": "WorkersGroup"}]
    rule(
        "LifecycleRule",
        "lifecycle_action",
        {
            "source": ["aws.autoscaling"],
            "detail-type": [
                "EC2 Instance-launch Lifecycle Action",
                "EC2 Instance-terminate Lifecycle Action",
            ],
            "detail": {"AutoScalingGroupName": groups},
        },
    )
    rule(
        "StateRule",
        "instance_state",
        {
            "source": ["aws.ec2"],
            "detail-type": ["EC2 Instance State-change Notification"],
            "detail": {"state": ["running", "shutting-down", "terminated"]},
        },
    )
    rule(
        "InterruptionRule",
        "interruption",
        {
            "source": ["aws.ec2"],
            "detail-type": [
                "EC2 Spot Instance Interruption Warning",
                "EC2 Instance Rebalance Recommendation",
            ],
        },
    )
    rule(
        "CommandRule",
        "command_status",
        {
            "source": ["aws.ssm"],
            "detail-type": ["EC2 Command Invocation Status-change Notification"],
            "detail": {"document-name": [{"prefix": f"swarmkeeper-{c}-"}]},
        },
    )
    rule(
        "AlarmRule",
        "alarm",
        {
            "source": ["aws.cloudwatch"],
            "detail-type": ["CloudWatch Alarm State Change"],
            "detail": {"alarmName": [{"prefix": f"swarmkeeper-{c}-"}]},
        },
    )
    rule("ReconcileSchedule", "reconcile", schedule="rate(5 minutes)")
    rule("RotateSchedule", "rotate_tokens", schedule="rate(30 days)")
    res["StepsSource"] = {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {
            "FunctionName": {"Ref": "StepsFunction"},
            "EventSourceArn": {"Fn::GetAtt": ["Steps", "Arn"]},
            "BatchSize": 5,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        },
    }
    res["LifecycleInvokeConfig"] = {
        "Type": "AWS::Lambda::EventInvokeConfig",
        "Properties": {
            "FunctionName": {"Ref": "LifecycleActionFunction"},
            "Qualifier": "$LATEST",
            "MaximumRetryAttempts": 2,
        },
    }
    dims = [{"Name": "Cluster", "Value": c}]
    for name, metric, op, threshold in (
        ("nodes-down", "NodesDown", "GreaterThanThreshold", 0),
        ("quorum-at-risk", "QuorumMargin", "LessThanThreshold", 1),
    ):
        res[f"Alarm{_cid(name.replace('-', '_'))}"] = {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmName": f"swarmkeeper-{c}-{name}",
                "Namespace": "Swarmkeeper",
                "MetricName": metric,
                "Dimensions": dims,
                "Statistic": "Maximum",
                "Period": 60,
                "EvaluationPeriods": 1,
                "Threshold": threshold,
                "ComparisonOperator": op,
                "TreatMissingData": "notBreaching",
            },
        }
    res["AlarmDlqDepth"] = {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": f"swarmkeeper-{c}-dlq-depth",
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["Dlq", "QueueName"]}}],
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        },
    }
    return {
        "Parameters": {
            AMI_PARAMETER: {
                "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
                "Default": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-arm64",
            },
            "BootstrapVersion": {
                "Type": "AWS::SSM::Parameter::Value<String>",
                "Default": "/cdk-bootstrap/hnb659fds/version",
            },
        },
        "Resources": res,
    }


def write(directory: Path, cluster: str = "demo", **kw: Any) -> Path:
    path = Path(directory) / f"swarmkeeper-{cluster}.template.json"
    path.write_text(json.dumps(build(cluster, **kw), indent=1))
    return path


if __name__ == "__main__":
    import sys

    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")))
