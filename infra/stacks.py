"""The stacks bucket: a Compose file put at `stacks/<name>.yml` is deployed as swarm stack `<name>`.

Versioned (each put is a version the control plane deploys, and can be told apart from an older one),
SSE-S3, private, SSL only, with EventBridge notifications on (S3's own `EventBridgeConfiguration`,
no notification custom resource): `Object Created` / `Object Deleted` reach the `stack_object`
function through a rule on the default bus. Old versions expire after `stackVersionDays`.

Who may do what: a manager reads the Compose files (only under `stacks/`), the SecureStrings under
`<prefix>/secrets/` and decrypts those with the cluster key (the key policy says so too); the control
plane only lists the versions under `stacks/` (never an object's content, never a secret: an
explicit Deny, with the join tokens'); workers get nothing here.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.names import STACKS_PREFIX
from infra.settings import ClusterSettings
from infra.state import private_bucket
from swarmkeeper.domain.names import ClusterNames


class StacksBucket(Construct):
    def __init__(self, scope: Construct, id: str, *, settings: ClusterSettings, names: ClusterNames) -> None:
        super().__init__(scope, id)
        self._names = names
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=True,
            **private_bucket(),
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-stack-versions",
                    noncurrent_version_expiration=Duration.days(settings.stack_version_days),
                    expired_object_delete_marker=True,
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
        )
        CfnOutput(
            scope,
            "StacksBucketName",
            value=self.bucket.bucket_name,
            description="Put a Compose file at stacks/<name>.yml here to deploy it as swarm stack <name>",
        )
        cfn = self.bucket.node.default_child
        assert isinstance(cfn, s3.CfnBucket)
        cfn.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(
                event_bridge_enabled=True
            )
        )

    @property
    def bucket_name(self) -> str:
        return self.bucket.bucket_name

    def objects_arn(self) -> str:
        return self.bucket.arn_for_objects(f"{STACKS_PREFIX}*")

    def grant_list(self, role: iam.IRole) -> None:
        """List the versions under `stacks/` (reconcile, a version deleted for good), nothing more."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListStackVersions",
                actions=["s3:ListBucket", "s3:ListBucketVersions"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{STACKS_PREFIX}*"]}},
            )
        )

    def grant_managers(self, role: iam.IRole, key: kms.Key) -> None:
        """What deploy-stack reads: the Compose file (one version of it) and the stack's secrets."""
        stack = Stack.of(self)
        secrets = stack.format_arn(
            service="ssm",
            resource="parameter",
            resource_name=f"{self._names.secrets_parameter_prefix.lstrip('/')}/*",
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadStackFiles",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[self.objects_arn()],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(sid="ReadStackSecrets", actions=["ssm:GetParameter"], resources=[secrets])
        )
        via_ssm = {"kms:ViaService": f"ssm.{stack.region}.amazonaws.com"}
        for_secrets = {"kms:EncryptionContext:PARAMETER_ARN": [secrets]}
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ManagersDecryptStackSecrets",
                actions=["kms:Decrypt"],
                resources=[key.key_arn],
                conditions={"StringEquals": via_ssm, "StringLike": for_secrets},
            )
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ManagersDecryptStackSecrets",
                principals=[iam.AccountRootPrincipal()],
                actions=["kms:Decrypt"],
                resources=["*"],
                conditions={
                    "ArnEquals": {"aws:PrincipalArn": role.role_arn},
                    "StringEquals": via_ssm,
                    "StringLike": for_secrets,
                },
            )
        )
