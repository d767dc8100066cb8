"""Every physical name derived from the cluster name (README, CONTRACT section)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from infra.documents import ACTIONS, document_name

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
ALARMS: tuple[str, ...] = ("nodes-down", "quorum-at-risk", "dlq-depth", "function-errors")
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
# `<name>`), and the Parameter Store path, below the cluster's, of the secrets those stacks use.
STACKS_PREFIX = "stacks/"
SECRETS_PATH = "secrets"
# The tag Auto Scaling puts on every instance it launches; an `aws:` tag no principal can set or change,
# so it, not the cluster tag, scopes what the control plane may do to instances.
GROUP_NAME_TAG = "aws:autoscaling:groupName"
CLUSTER_TAG = "swarmkeeper:cluster"
ELB_NAME_LIMIT = 32  # load balancer and target group names


@dataclass(frozen=True)
class Names:
    cluster: str

    @property
    def prefix(self) -> str:
        return f"swarmkeeper-{self.cluster}"

    @property
    def stack(self) -> str:
        return self.prefix

    @property
    def manager_group(self) -> str:
        return f"{self.prefix}-managers"

    @property
    def worker_group(self) -> str:
        return f"{self.prefix}-workers"

    @property
    def groups(self) -> tuple[str, str]:
        return (self.manager_group, self.worker_group)

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
    def event_bus(self) -> str:
        return self.prefix

    @property
    def kms_alias(self) -> str:
        return f"alias/{self.prefix}"

    @property
    def parameter_prefix(self) -> str:
        return f"/swarmkeeper/{self.cluster}"

    @property
    def worker_token_parameter(self) -> str:
        return f"{self.parameter_prefix}/join-token/worker"

    @property
    def manager_token_parameter(self) -> str:
        return f"{self.parameter_prefix}/join-token/manager"

    @property
    def manager_addresses_parameter(self) -> str:
        return f"{self.parameter_prefix}/manager-addresses"

    @property
    def cluster_id_parameter(self) -> str:
        return f"{self.parameter_prefix}/cluster-id"

    @property
    def secrets_parameter_prefix(self) -> str:
        return f"{self.parameter_prefix}/{SECRETS_PATH}"

    @property
    def container_log_group(self) -> str:
        """Where the nodes' containers log (the awslogs driver), when containerLogs is on."""
        return f"{self.parameter_prefix}/containers"

    @property
    def document_prefix(self) -> str:
        return f"{self.prefix}-"

    @property
    def documents(self) -> dict[str, str]:
        return {action: document_name(self.cluster, action) for action in ACTIONS}

    def function(self, name: str) -> str:
        return f"{self.prefix}-{name.replace('_', '-')}"

    def alarm(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    @property
    def alarms(self) -> tuple[str, ...]:
        return tuple(self.alarm(what) for what in ALARMS)

    @property
    def _digest(self) -> str:
        return hashlib.sha256(self.cluster.encode()).hexdigest()[:8]

    @property
    def load_balancer(self) -> str:
        if len(self.prefix) <= ELB_NAME_LIMIT:
            return self.prefix
        return f"sk-{self.cluster[: ELB_NAME_LIMIT - 12].rstrip('-')}-{self._digest}"

    @property
    def target_group_prefix(self) -> str:
        """Target groups the control plane creates: `<prefix><protocol>-<port>` (at most 23 characters)."""
        return f"sk-{self._digest}-"

    def rule(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    @property
    def dashboard(self) -> str:
        return self.prefix

    @property
    def schema_registry(self) -> str:
        return self.prefix
