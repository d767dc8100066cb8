"""Cluster state: KMS key, DynamoDB table, Run Command output bucket, step queue and dead-letter queue.

The stack creates NO Parameter Store parameters. The join tokens must be SecureString parameters
encrypted with the cluster key, and CloudFormation (AWS::SSM::Parameter) cannot create SecureStrings;
besides, only a manager knows the tokens, the swarm id and the manager addresses. So the first manager
writes `/swarmkeeper/C/join-token/{worker,manager}`, `/swarmkeeper/C/manager-addresses` and
`/swarmkeeper/C/cluster-id` (bootstrap-node / rotate-tokens documents); no Lambda ever writes them.

Named resources are deleted with the stack (DESTROY) so that `cdk destroy` then `cdk deploy` of the
same cluster name works; they hold only transient control-plane state (the swarm keeps its own).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.settings import ClusterSettings
from swarmkeeper.domain.names import ClusterNames

STEP_QUEUE_MAX_RECEIVES = 5
STEPS_FUNCTION_TIMEOUT = Duration.seconds(60)

# What the account (its IAM administrators, CloudFormation) may do with the cluster key: manage it, never
# use it. CreateGrant is left out with the cryptographic actions (a grant would hand out Decrypt);
# the instance roles' use of the key is added by Compute, one statement per role.
KEY_ADMINISTRATION = (
    "kms:CreateAlias",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
)


def private_bucket() -> dict[str, Any]:
    """What every bucket of the stack is: SSE-S3, SSL only, no public access, no ACLs."""
    return {
        "encryption": s3.BucketEncryption.S3_MANAGED,
        "enforce_ssl": True,
        "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
        "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    }


class State(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: ClusterSettings, names: ClusterNames) -> None:
        super().__init__(scope, id)

        self.key = kms.Key(
            self,
            "ClusterKey",
            alias=names.kms_alias,
            description=f"swarmkeeper {settings.cluster_name}: encrypts the Swarm join-token SecureStrings",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=RemovalPolicy.DESTROY,
            # Replaces CDK's default policy (kms:* for the account, which lets any IAM policy in the
            # account grant Decrypt): the key policy itself names who may use the key.
            policy=iam.PolicyDocument(
                statements=[
                    iam.PolicyStatement(
                        sid="AccountAdministersTheKey",
                        principals=[iam.AccountRootPrincipal()],
                        actions=list(KEY_ADMINISTRATION),
                        resources=["*"],
                    )
                ]
            ),
        )

        # Table (AWS::DynamoDB::Table), not TableV2 (a GlobalTable resource): one region is enough.
        self.table = dynamodb.Table(
            self,
            "StateTable",
            table_name=names.state_table,
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            time_to_live_attribute="expires_at",
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            # AWS-owned keys would also encrypt; an AWS-managed key leaves a KMS audit trail, and the
            # control plane gets no permission at all on the cluster key (which guards the join tokens).
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )

        # Run Command output above the 24,000 characters GetCommandInvocation returns (describe-swarm).
        self.output_bucket = s3.Bucket(
            self,
            "CommandOutput",
            **private_bucket(),
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-command-output",
                    expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
        )

        # SSE-SQS: EventBridge (rule DLQ) and Lambda can write to it without a key policy dance.
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=names.dead_letter_queue,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.step_queue = sqs.Queue(
            self,
            "StepQueue",
            queue_name=names.step_queue,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # AWS advice for Lambda event sources: at least six times the function timeout.
            visibility_timeout=Duration.seconds(STEPS_FUNCTION_TIMEOUT.to_seconds() * 6),
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=STEP_QUEUE_MAX_RECEIVES
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
