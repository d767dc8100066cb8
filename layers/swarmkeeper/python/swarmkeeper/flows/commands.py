"""Routes an SSM command status change to the flow that sent the command, by document name."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from swarmkeeper.domain.kernel import NON_TERMINAL, Decision, Outcome
from swarmkeeper.domain.leave import DRAIN, LEAVE, REMOVE
from swarmkeeper.domain.reconcile_pass import DESCRIBE
from swarmkeeper.domain.rotation import ROTATE
from swarmkeeper.domain.stacks import DEPLOY as DEPLOY_STACK
from swarmkeeper.domain.stacks import REMOVE as REMOVE_STACK
from swarmkeeper.flows.join import BOOTSTRAP, VERIFY, JoinFlow
from swarmkeeper.flows.leave import LeaveFlow, bootstrap_reported, leaving_instance
from swarmkeeper.flows.reconcile import Reconcile
from swarmkeeper.flows.rotation import TokenRotation
from swarmkeeper.flows.stacks import StackFlow
from swarmkeeper.inputs import CommandStatusChange
from swarmkeeper.settings import RuntimeSettings

logger = Logger(child=True)
# A stack deployed or removed changes the published ports: a reconcile pass at once, in which the
# load balancer's listeners follow.
STACK_CHANGED = (Outcome.DEPLOYED, Outcome.STACK_REMOVED)


class CommandStatusRouter:
    def __init__(
        self,
        settings: RuntimeSettings,
        join: JoinFlow,
        rotation: TokenRotation,
        leave: LeaveFlow,
        reconcile: Reconcile,
        stacks: StackFlow,
    ):
        self.settings = settings
        self.join = join
        self.rotation = rotation
        self.leave = leave
        self.reconcile = reconcile
        self.stacks = stacks

    def handle(self, change: CommandStatusChange) -> Decision[object]:
        name = change.document_name
        prefix = self.settings.document_prefix
        if not name.startswith(prefix):
            return Decision(
                Outcome.IGNORE, f"document {name} is not one of cluster {self.settings.cluster_name}"
            )
        if change.status in NON_TERMINAL:
            return Decision(Outcome.IGNORE, f"command {change.status}")
        action = name.removeprefix(prefix)
        if action in (BOOTSTRAP, VERIFY):
            finished = self.join.result(
                action, change.command_id, change.instance_id, change.status, change.correlation_id
            )
            if finished is None:
                return Decision(
                    Outcome.IGNORE, f"{action} command {change.command_id} was not sent by the join flow"
                )
            decision = self.join.finished(finished)
            if decision.outcome is Outcome.LEAVE_BEGUN and action == BOOTSTRAP:
                # The leave that overtook the join awaits this result: a node id in it is removed.
                reported = bootstrap_reported(
                    finished.instance_id, finished.command_id, finished.status, finished.bootstrap
                )
                return self.leave.bootstrap_reported(reported)
            return decision
        if action == ROTATE:
            return self.rotation.finished(change.command_id, change.instance_id, change.status)
        if action in (DEPLOY_STACK, REMOVE_STACK):
            stack = self.stacks.finished(action, change.command_id, change.instance_id, change.status)
            if stack.outcome in STACK_CHANGED and self.reconcile.follow_ports is not None:
                self._follow_stack(stack, change.correlation_id)
            return stack
        if action == DESCRIBE:
            return self.reconcile.finished(change.command_id, change.instance_id, change.status)
        if action in (DRAIN, LEAVE, REMOVE):
            # Sent by the exit flow (comment "swarmkeeper leave <id>") or, remove-node, by reconcile.
            invocation = self.leave.adapters.commands.invocation(change.command_id, change.instance_id)
            if action == REMOVE and invocation is not None and leaving_instance(invocation.comment) is None:
                return self.reconcile.removal_finished(change.status, invocation, change.correlation_id)
            return self.leave.command_finished(
                action, change.command_id, change.instance_id, change.status, invocation
            )
        return Decision(Outcome.IGNORE, f"unknown action {action}")

    def _follow_stack(self, decision: Decision[Any], correlation_id: str) -> None:
        try:
            started = self.reconcile.start(correlation_id, f"stack {decision.outcome}: listeners follow")
            logger.info("reconcile pass for the stack's ports", extra={"reason": started.reason})
        except Exception:  # the scheduled pass follows the ports anyway
            logger.exception("could not start a reconcile pass after the stack changed")
