"""Every physical name derived from the cluster name ``C`` (README: Names), for the stack that gives
the names and the operators' CLI that finds a cluster by them. Standard library only: the CDK app and
the CLI import it as well as the layer. Names that only the stack needs (its SSM documents) stay in
``infra``."""

from __future__ import annotations

from swarmkeeper.domain.frozen import frozen

# The stack's alarms, named swarmkeeper-<C>-<what>.
ALARMS: tuple[str, ...] = ("nodes-down", "quorum-at-risk", "dlq-depth", "function-errors")
ELB_NAME_LIMIT = 32  # load balancer and target group names
# The Parameter Store path, below the cluster's, of the secrets the swarm stacks use.
SECRETS_PATH = "secrets"


@frozen
class ClusterNames:
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
    def timeline_log_group(self) -> str:
        """Where the stack's rule writes every event of the bus (EventBridge log targets need a group
        under /aws/events/)."""
        return f"/aws/events/{self.prefix}"

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

    def function(self, name: str) -> str:
        return f"{self.prefix}-{name.replace('_', '-')}"

    def alarm(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    @property
    def alarms(self) -> tuple[str, ...]:
        return tuple(self.alarm(what) for what in ALARMS)

    @property
    def _digest(self) -> str:
        # Imported here: only the load balancer's names need it, and hashlib (OpenSSL) would add
        # about 2.5 ms to the cold start of every function that imports the domain.
        import hashlib

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
