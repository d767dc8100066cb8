"""The exit codes (README: Operating a cluster) and the one error every verb may end with."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    FAILED = 1  # the control plane reported a failure (a deploy refused, a rotation failed, ...)
    USAGE = 2  # bad arguments
    AWS = 3  # no credentials, no region, AWS unreachable or refusing the caller
    NO_CLUSTER = 4  # the cluster's resources are not in this account and region
    REFUSED = 5  # refused before anything was sent (not this cluster's instance, a bad file, ...)
    TIMEOUT = 6  # the outcome did not come in time (the action may still complete)
    DEGRADED = 7  # status: a node down, a quorum margin below 1, or no swarm view yet


class CliError(Exception):
    """Ends the command with one line on stderr and ``code``."""

    def __init__(self, message: str, code: Exit):
        super().__init__(message)
        self.code = code
