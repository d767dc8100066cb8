"""State and documents as synthesized: KMS, DynamoDB, output bucket, queues, SSM documents, no parameters."""

from __future__ import annotations

from aws_cdk.assertions import Match

from infra.documents import ACTIONS, document_content


def test_cluster_key_rotates_and_has_the_contract_alias(demo):
    demo.template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    demo.template.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/swarmkeeper-demo"})


def test_state_table_keys_ttl_encryption_pitr_on_demand(demo):
    demo.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": "swarmkeeper-demo-state",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "BillingMode": "PAY_PER_REQUEST",
        },
    )


def test_output_bucket_is_private_encrypted_ssl_only_and_expires_objects(demo):
    demo.template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LifecycleConfiguration": {
                "Rules": Match.array_with([Match.object_like({"ExpirationInDays": 1})])
            },
        },
    )
    demo.template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
                        )
                    ]
                )
            }
        },
    )


def test_queues_are_encrypted_and_the_step_queue_redrives_to_the_dlq(demo):
    dlq_id = next(
        k for k, r in demo.of_type("AWS::SQS::Queue").items() if r["Properties"]["QueueName"].endswith("-dlq")
    )
    demo.template.has_resource_properties(
        "AWS::SQS::Queue", {"QueueName": "swarmkeeper-demo-dlq", "SqsManagedSseEnabled": True}
    )
    demo.template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": "swarmkeeper-demo-steps",
            "SqsManagedSseEnabled": True,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]}, "maxReceiveCount": 5},
        },
    )
    # and both refuse plain HTTP
    policies = demo.of_type("AWS::SQS::QueuePolicy").values()
    ssl_only = [
        p
        for p in policies
        if any(
            s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        )
    ]
    assert len(ssl_only) == 2


def test_one_command_document_per_action_with_the_contract_name_and_content(demo):
    documents = {
        r["Properties"]["Name"]: r["Properties"] for r in demo.of_type("AWS::SSM::Document").values()
    }
    assert set(documents) == {f"swarmkeeper-demo-{action}" for action in ACTIONS}
    for action in ACTIONS:
        document = documents[f"swarmkeeper-demo-{action}"]
        assert document["DocumentType"] == "Command"
        assert document["Content"] == document_content(action)
        assert document["UpdateMethod"] == "NewVersion"


def test_agent_ready_association_targets_every_instance_of_the_two_groups_once(demo):
    # Given the synthesized stack
    (association,) = [
        a
        for a in demo.of_type("AWS::SSM::Association").values()
        if a["Properties"]["AssociationName"] == "swarmkeeper-demo-agent-ready"
    ]
    props = association["Properties"]
    (document_id,) = [
        k
        for k, r in demo.of_type("AWS::SSM::Document").items()
        if r["Properties"]["Name"] == "swarmkeeper-demo-agent-ready"
    ]
    # Then it runs the agent-ready document (a Ref: created after it) on the instances Auto Scaling
    # tagged with one of the stack's groups (a tag no one can set), with no schedule: once per
    # instance, when its agent registers
    assert props["Name"] == {"Ref": document_id}
    groups = ["swarmkeeper-demo-managers", "swarmkeeper-demo-workers"]
    assert props["Targets"] == [{"Key": "tag:aws:autoscaling:groupName", "Values": groups}]
    assert "ScheduleExpression" not in props and "Parameters" not in props


def test_registry_auth_is_refreshed_on_the_managers_well_within_the_ecr_credentials_12_hours(demo):
    # Given the synthesized stack: its associations, and the refresh document's id
    associations = {
        a["Properties"]["AssociationName"]: a["Properties"]
        for a in demo.of_type("AWS::SSM::Association").values()
    }
    assert set(associations) == {"swarmkeeper-demo-agent-ready", "swarmkeeper-demo-refresh-registry-auth"}
    props = associations["swarmkeeper-demo-refresh-registry-auth"]
    (document_id,) = [
        k
        for k, r in demo.of_type("AWS::SSM::Document").items()
        if r["Properties"]["Name"] == "swarmkeeper-demo-refresh-registry-auth"
    ]
    # Then it runs refresh-registry-auth on the managers only (the group tag no one can set)
    assert props["Name"] == {"Ref": document_id}
    assert props["Targets"] == [
        {"Key": "tag:aws:autoscaling:groupName", "Values": ["swarmkeeper-demo-managers"]}
    ]
    # every 6 hours: a credential the helper fetched afresh (12 hours) is refreshed with 6 to spare
    assert props["ScheduleExpression"] == "rate(6 hours)"
    # for the account's registry in the stack's region
    join = {
        "Fn::Join": [
            "",
            [{"Ref": "AWS::AccountId"}, ".dkr.ecr.", {"Ref": "AWS::Region"}, ".", {"Ref": "AWS::URLSuffix"}],
        ]
    }
    assert props["Parameters"] == {"EcrRegistry": [join]}


def test_the_stack_creates_no_parameters(demo):
    # Given the contract: managers write the (SecureString) parameters, CloudFormation cannot
    demo.template.resource_count_is("AWS::SSM::Parameter", 0)


def test_operators_bus_archive_and_timeline(demo):
    demo.template.has_resource_properties("AWS::Events::EventBus", {"Name": "swarmkeeper-demo"})
    demo.template.has_resource_properties(
        "AWS::Events::Archive", {"EventPattern": {"source": ["swarmkeeper"]}, "RetentionDays": 30}
    )
    timeline = demo.rule("swarmkeeper-demo-timeline")["Properties"]
    assert timeline["EventPattern"] == {"source": ["swarmkeeper"]}
    assert timeline["EventBusName"] == {"Ref": next(iter(demo.of_type("AWS::Events::EventBus")))}
    (target,) = timeline["Targets"]
    assert ":log-group:/aws/events/swarmkeeper-demo" in str(target["Arn"])


def test_alarms_are_named_per_contract_on_the_swarmkeeper_metrics(demo):
    alarms = {
        r["Properties"]["AlarmName"]: r["Properties"] for r in demo.of_type("AWS::CloudWatch::Alarm").values()
    }
    assert set(alarms) == {
        "swarmkeeper-demo-nodes-down",
        "swarmkeeper-demo-quorum-at-risk",
        "swarmkeeper-demo-dlq-depth",
        "swarmkeeper-demo-function-errors",
    }
    nodes_down = alarms["swarmkeeper-demo-nodes-down"]
    assert (nodes_down["Namespace"], nodes_down["MetricName"]) == ("Swarmkeeper", "NodesDown")
    assert nodes_down["Dimensions"] == [{"Name": "Cluster", "Value": "demo"}]
    assert (nodes_down["ComparisonOperator"], nodes_down["Threshold"]) == ("GreaterThanThreshold", 0)
    quorum = alarms["swarmkeeper-demo-quorum-at-risk"]
    assert (quorum["Namespace"], quorum["MetricName"]) == ("Swarmkeeper", "QuorumMargin")
    assert quorum["Dimensions"] == [{"Name": "Cluster", "Value": "demo"}]
    assert (quorum["ComparisonOperator"], quorum["Threshold"]) == ("LessThanThreshold", 1)
    dlq = alarms["swarmkeeper-demo-dlq-depth"]
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    errors = alarms["swarmkeeper-demo-function-errors"]
    function_metrics = [m for m in errors["Metrics"] if "MetricStat" in m]
    assert len(function_metrics) == 9
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in function_metrics} == {"Errors"}
