"""The stack's own names and constants (README, CONTRACT section). Every physical name derived from
the cluster name is ``swarmkeeper.domain.names.ClusterNames``, which the operators' CLI shares; only
the SSM documents' names, which nothing but the stack needs, are derived here."""

from __future__ import annotations

from infra.documents import ACTIONS, document_name
from swarmkeeper.domain.names import ClusterNames

FUNCTIONS: tuple[str, ...] = (
    "lifecycle_action",
    "instance_state",
    "interruption",
    "command_status",
    "alarm",
    "reconcile",
    "rotate_tokens",
    "steps",
    "stack_object",
)
LAUNCH_HOOK = "swarmkeeper-launch"
TERMINATE_HOOK = "swarmkeeper-terminate"
EVENT_SOURCE = "swarmkeeper"
AGENT_READY = "agent-ready"  # the action State Manager runs (an association), never SendCommand
# State Manager runs it on the managers every REGISTRY_AUTH_HOURS (an association), never SendCommand:
# under the 12 hours an ECR credential lasts, with the credential helper's cache off.
REFRESH_REGISTRY_AUTH = "refresh-registry-auth"
REGISTRY_AUTH_HOURS = 6
ASSOCIATION_ONLY: tuple[str, ...] = (AGENT_READY, REFRESH_REGISTRY_AUTH)
METRICS_NAMESPACE = "Swarmkeeper"
# Key prefix of the Run Command output the control plane sends to S3 (describe-swarm only); the two
# roles' S3 permissions stop at it.
COMMAND_OUTPUT_PREFIX = "describe-swarm"
# Key prefix of the Compose files in the stacks bucket (`stacks/<name>.yml` is deployed as stack
# `<name>`); their secrets are under ClusterNames.secrets_parameter_prefix.
STACKS_PREFIX = "stacks/"
# The tag Auto Scaling puts on every instance it launches; an `aws:` tag no principal can set or change,
# so it, not the cluster tag, scopes what the control plane may do to instances.
GROUP_NAME_TAG = "aws:autoscaling:groupName"
CLUSTER_TAG = "swarmkeeper:cluster"


def document_prefix(names: ClusterNames) -> str:
    return f"{names.prefix}-"


def document_names(names: ClusterNames) -> dict[str, str]:
    """Each SSM document's name, by its action."""
    return {action: document_name(names.cluster, action) for action in ACTIONS}
