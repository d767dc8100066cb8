"""The cluster the CLI works on: its name, checked, and every name the stack gives its resources,
derived from it by the layer's ``swarmkeeper.domain.names`` (README: Names), which the stack uses too."""

from __future__ import annotations

import re

from swarmkeeper.domain.names import ClusterNames
from swarmkeeper_cli.errors import CliError, Exit

CLUSTER_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")


def cluster_names(cluster: str | None) -> ClusterNames:
    """The names of cluster ``cluster``; a usage error when there is none or it is no cluster name."""
    if not cluster:
        raise CliError("no cluster: pass --cluster NAME or set SWARMKEEPER_CLUSTER", Exit.USAGE)
    if not CLUSTER_NAME.fullmatch(cluster):
        raise CliError(f"{cluster!r} is not a cluster name ({CLUSTER_NAME.pattern})", Exit.USAGE)
    return ClusterNames(cluster)
