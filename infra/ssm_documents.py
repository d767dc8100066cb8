"""One SSM Command document per action of `infra/documents` (names `swarmkeeper-C-<action>`), and the
State Manager associations: agent-ready on every instance of the stack's two Auto Scaling groups as
its agent registers (the join flow's signal that Run Command can reach the instance), and
refresh-registry-auth on the managers every few hours (services keep a fresh ECR credential)."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.documents import ACTIONS, document_content
from infra.names import (
    AGENT_READY,
    GROUP_NAME_TAG,
    REFRESH_REGISTRY_AUTH,
    REGISTRY_AUTH_HOURS,
    document_names,
)
from swarmkeeper.domain.names import ClusterNames

# The account's ECR registry in the stack's region, resolved at deploy time.
ECR_REGISTRY = f"{Aws.ACCOUNT_ID}.dkr.ecr.{Aws.REGION}.{Aws.URL_SUFFIX}"


class Documents(Construct):
    def __init__(self, scope: Construct, id: str, *, names: ClusterNames) -> None:
        super().__init__(scope, id)
        self.documents: dict[str, ssm.CfnDocument] = {}
        for action in ACTIONS:
            self.documents[action] = ssm.CfnDocument(
                self,
                "".join(part.capitalize() for part in action.split("-")),
                name=document_names(names)[action],
                document_type="Command",
                document_format="JSON",
                content=document_content(action),
                # A named document cannot be replaced in place: publish a new version instead.
                update_method="NewVersion",
                target_type="/AWS::EC2::Instance",
            )
        # No schedule: State Manager applies the association once to each instance that matches the
        # targets, when that instance's agent comes online (also to instances launched later). The
        # target is the group tag Auto Scaling sets, not the cluster tag anyone may put on an instance.
        self.agent_ready = ssm.CfnAssociation(
            self,
            "AgentReadyAssociation",
            name=self.documents[AGENT_READY].ref,
            association_name=f"{names.prefix}-{AGENT_READY}",
            targets=[
                ssm.CfnAssociation.TargetProperty(key=f"tag:{GROUP_NAME_TAG}", values=list(names.groups))
            ],
        )
        # On a schedule (and once as each manager registers); only the swarm's leader acts.
        self.refresh_registry_auth = ssm.CfnAssociation(
            self,
            "RefreshRegistryAuthAssociation",
            name=self.documents[REFRESH_REGISTRY_AUTH].ref,
            association_name=f"{names.prefix}-{REFRESH_REGISTRY_AUTH}",
            schedule_expression=f"rate({REGISTRY_AUTH_HOURS} hours)",
            parameters={"EcrRegistry": [ECR_REGISTRY]},
            targets=[
                ssm.CfnAssociation.TargetProperty(key=f"tag:{GROUP_NAME_TAG}", values=[names.manager_group])
            ],
        )
