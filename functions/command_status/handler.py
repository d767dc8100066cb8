"""command_status: EC2 Command Invocation Status-change Notifications for the stack's documents.

Routes a terminal status to the flow that sent the command (bootstrap-node / verify-node: the join
flow; rotate-tokens: token rotation; describe-swarm: reconcile; drain-node / leave-swarm /
remove-node: the exit flow, or reconcile for a removal of its own). Non-terminal statuses and stale
commands are ignored.
"""

from swarmkeeper import inputs, runtime
from swarmkeeper.domain.kernel import NON_TERMINAL, Decision, Outcome
from swarmkeeper.handling import Function
from swarmkeeper.inputs import CommandStatusChange
from swarmkeeper.runtime import Runtime

fn = Function(runtime.COMMANDS)
metrics = fn.metrics


def process(change: CommandStatusChange, rt: Runtime) -> Decision[object]:
    return rt.commands.handle(change)


def log_keys(change: CommandStatusChange) -> dict[str, str]:
    return {
        "instance_id": change.instance_id,
        "command_id": change.command_id,
        "correlation_id": change.correlation_id,
    }


def unfinished(change: CommandStatusChange) -> Decision[object] | None:
    # Pending / InProgress change nothing: answered before the idempotency record, which only a
    # terminal status needs (two DynamoDB calls saved per such event, two such events per command).
    return Decision(Outcome.IGNORE, f"command {change.status}") if change.status in NON_TERMINAL else None


lambda_handler = fn.on_event(inputs.command_status_change, process, keys=log_keys, answer_first=unfinished)
