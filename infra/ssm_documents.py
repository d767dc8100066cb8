"""One SSM Command document per action of `infra/documents` (names `swarmkeeper-C-<action>`)."""

from __future__ import annotations

from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.documents import ACTIONS, document_content
from infra.names import Names


class Documents(Construct):
    def __init__(self, scope: Construct, id: str, *, names: Names) -> None:
        super().__init__(scope, id)
        self.documents: dict[str, ssm.CfnDocument] = {}
        for action in ACTIONS:
            self.documents[action] = ssm.CfnDocument(
                self,
                "".join(part.capitalize() for part in action.split("-")),
                name=names.documents[action],
                document_type="Command",
                document_format="JSON",
                content=document_content(action),
                # A named document cannot be replaced in place: publish a new version instead.
                update_method="NewVersion",
                target_type="/AWS::EC2::Instance",
            )
