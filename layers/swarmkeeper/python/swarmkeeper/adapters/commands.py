"""SSM Run Command: send a document to one instance; read one invocation's result.

Output goes to no CloudWatch log group; only describe-swarm (sent to a manager, the only instances
allowed to write there) also writes it to the output bucket, because a large swarm's node list is
longer than the 24,000 characters GetCommandInvocation returns. Callers only ever see output through
``swarmkeeper.domain.outputs`` / ``domain.swarm`` (parsed fields, redacted excerpts).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from swarmkeeper.domain.errors import SwarmkeeperError
from swarmkeeper.domain.frozen import frozen


class AgentNotRegistered(SwarmkeeperError):
    """SendCommand said InvalidInstanceId: the SSM agent has not registered (yet)."""


@frozen
class Invocation:
    status: str
    stdout: str
    stderr: str
    comment: str
    stdout_url: str = ""  # the full stdout in S3, when the command had an output bucket


class RunCommands:
    def __init__(self, ssm: Any):
        self._ssm = ssm

    def send(
        self,
        document: str,
        instance_id: str,
        parameters: dict[str, str],
        comment: str,
        delivery_timeout: int = 120,
        output: tuple[str, str] | None = None,
    ) -> str:
        """``output``: (bucket, key prefix) to also write the output to (only for managers)."""
        extra = {"OutputS3BucketName": output[0], "OutputS3KeyPrefix": output[1]} if output else {}
        try:
            response = self._ssm.send_command(
                DocumentName=document,
                InstanceIds=[instance_id],
                Parameters={name: [value] for name, value in parameters.items()},
                Comment=comment[:100],
                TimeoutSeconds=delivery_timeout,
                CloudWatchOutputConfig={"CloudWatchOutputEnabled": False},
                **extra,
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "InvalidInstanceId":
                raise AgentNotRegistered(f"SSM agent of {instance_id} is not registered") from err
            raise
        return str(response["Command"]["CommandId"])

    def invocation(self, command_id: str, instance_id: str) -> Invocation | None:
        try:
            r = self._ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ClientError as err:
            if err.response["Error"]["Code"] in ("InvocationDoesNotExist", "InvalidCommandId"):
                return None
            raise
        return Invocation(
            status=r.get("Status", ""),
            stdout=r.get("StandardOutputContent", ""),
            stderr=r.get("StandardErrorContent", ""),
            comment=r.get("Comment", ""),
            stdout_url=r.get("StandardOutputUrl", "") or "",
        )
