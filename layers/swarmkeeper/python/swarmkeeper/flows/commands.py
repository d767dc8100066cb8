"""Routes an SSM command status change to the flow that sent the command, by document name."""

from __future__ import annotations

from swarmkeeper.domain.join import NON_TERMINAL, Decision
from swarmkeeper.flows.join import BOOTSTRAP, VERIFY, JoinFlow
from swarmkeeper.flows.rotation import ROTATE, TokenRotation
from swarmkeeper.inputs import CommandStatusChange
from swarmkeeper.settings import RuntimeSettings

EXIT_ACTIONS = frozenset({"drain-node", "remove-node", "leave-swarm", "describe-swarm"})


class CommandStatusRouter:
    def __init__(self, settings: RuntimeSettings, join: JoinFlow, rotation: TokenRotation):
        self.settings = settings
        self.join = join
        self.rotation = rotation

    def handle(self, change: CommandStatusChange) -> Decision:
        name = change.document_name.rsplit("document/", 1)[-1]  # a name, or an ARN
        prefix = self.settings.document_prefix
        if not name.startswith(prefix):
            return Decision("ignore", f"document {name} is not one of cluster {self.settings.cluster_name}")
        if change.status in NON_TERMINAL:
            return Decision("ignore", f"command {change.status}")
        action = name.removeprefix(prefix)
        if action in (BOOTSTRAP, VERIFY):
            return self.join.command_finished(
                action, change.command_id, change.instance_id, change.status, change.correlation_id
            )
        if action == ROTATE:
            return self.rotation.finished(change.command_id, change.instance_id, change.status)
        if action in EXIT_ACTIONS:
            return Decision("ignore", f"{action} belongs to the exit flow (not implemented yet)")
        return Decision("ignore", f"unknown action {action}")
