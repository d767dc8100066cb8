"""What the CLI finds of a cluster ``C``, by the names the stack gives it (README: Names); a test
holds them equal to ``infra.names``, which the CLI does not import (it is not installed with it)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from swarmkeeper_cli.errors import CliError, Exit

CLUSTER_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")


@dataclass(frozen=True)
class ClusterNames:
    cluster: str

    @classmethod
    def of(cls, cluster: str | None) -> ClusterNames:
        if not cluster:
            raise CliError("no cluster: pass --cluster NAME or set SWARMKEEPER_CLUSTER", Exit.USAGE)
        if not CLUSTER_NAME.fullmatch(cluster):
            raise CliError(f"{cluster!r} is not a cluster name ({CLUSTER_NAME.pattern})", Exit.USAGE)
        return cls(cluster)

    @property
    def prefix(self) -> str:
        return f"swarmkeeper-{self.cluster}"

    @property
    def stack(self) -> str:
        return self.prefix

    @property
    def groups(self) -> tuple[str, str]:
        return (f"{self.prefix}-managers", f"{self.prefix}-workers")

    @property
    def state_table(self) -> str:
        return f"{self.prefix}-state"

    @property
    def step_queue(self) -> str:
        return f"{self.prefix}-steps"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}-dlq"

    @property
    def timeline_log_group(self) -> str:
        return f"/aws/events/{self.prefix}"

    def function(self, name: str) -> str:
        return f"{self.prefix}-{name.replace('_', '-')}"
