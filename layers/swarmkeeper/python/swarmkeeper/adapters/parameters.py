"""Parameter Store: the only parameters the control plane may read (never the join tokens)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class ClusterParameters:
    def __init__(self, ssm: Any, prefix: str):
        self._ssm = ssm
        self._prefix = prefix

    def cluster_id(self) -> str | None:
        """The swarm id written by the manager that ran `swarm init`; None while there is no swarm."""
        try:
            return str(self._ssm.get_parameter(Name=f"{self._prefix}/cluster-id")["Parameter"]["Value"])
        except ClientError as err:
            if err.response["Error"]["Code"] == "ParameterNotFound":
                return None
            raise
