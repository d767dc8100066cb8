"""Join-token rotation, decided: `rotate-tokens` (both roles) on a healthy joined manager, one rotation
at a time (``op#rotate-tokens``), and Join Tokens Rotated once the command says both were rotated.

The tokens never pass through here: the manager's script writes them to Parameter Store itself. Joins
in flight stay safe: bootstrap-node reads its token when it runs, and a join that fails because the
token was rotated under it is run once more (``domain.join``). Nothing here touches AWS.
"""

from __future__ import annotations

from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.kernel import (
    NON_TERMINAL,
    TERMINAL_SUCCESS,
    BusEvent,
    Decision,
    Outcome,
    Publish,
    detail_type,
    ignore,
)
from swarmkeeper.domain.models import RotationOp

ROTATE = "rotate-tokens"
JOIN_TOKENS_ROTATED = detail_type("Join Tokens Rotated")
ROLES = frozenset({"worker", "manager"})


@frozen
class RotationPolicy:
    cluster: str
    ttl_seconds: int = 1200  # longer than the command's delivery + execution timeouts


# ------------------------------------------------------------------------------------- stimuli


@frozen
class RotationRequested:
    """The schedule, or an operator invoking the function."""

    correlation_id: str


@frozen
class RotationNotDelivered:
    """SendCommand said InvalidInstanceId for every manager in ``tried``: try the next one."""

    pending: RotationOp
    tried: tuple[str, ...]


@frozen
class RotationFinished:
    """A status of a rotate-tokens command (``instance_id``: the manager it ran on)."""

    command_id: str
    instance_id: str
    status: str


RotationStimulus = RotationRequested | RotationNotDelivered | RotationFinished


@frozen
class RotationFacts:
    cluster_exists: bool = False  # the cluster-id parameter exists
    managers: tuple[str, ...] = ()  # joined managers, the one seen healthy most recently first
    op: RotationOp | None = None  # the rotation in flight
    rotated: tuple[str, ...] = ()  # the roles the finished command says it rotated
    detail: str = ""  # redacted excerpt of the finished command's output


# ------------------------------------------------------------------------------------- actions


@frozen
class StartRotation:
    op: RotationOp  # conditional: no rotation in flight (or it expired); else the run stops


@frozen
class SendRotate:
    target: str
    op: RotationOp  # saved with the command id (and the target's node id) once SendCommand returns
    tried: tuple[str, ...] = ()  # managers that refused delivery before this one


@frozen
class EndRotation:
    command_id: str  # conditional on the stored rotation's command id


@frozen
class MarkHealthy:
    instance_id: str


@frozen
class LogFailure:
    instance_id: str
    reason: str


RotationAction = StartRotation | SendRotate | EndRotation | MarkHealthy | LogFailure | Publish
RotationDecision = Decision[RotationAction]


def decide_rotation(
    stimulus: RotationStimulus, facts: RotationFacts, now: float, policy: RotationPolicy
) -> RotationDecision:
    match stimulus:
        case RotationRequested():
            if not facts.cluster_exists:
                return ignore("no swarm yet: nothing to rotate")
            if not facts.managers:
                return ignore("no joined manager to rotate the tokens on")
            pending = RotationOp("", "", "", stimulus.correlation_id, now + policy.ttl_seconds)
            first = facts.managers[0]
            return Decision(
                Outcome.ROTATE,
                f"{ROTATE} sent to {first}",
                (StartRotation(pending), SendRotate(first, pending)),
            )
        case RotationNotDelivered():
            target = next((m for m in facts.managers if m not in stimulus.tried), None)
            if target is None:
                return ignore(f"no manager could take the {ROTATE} command", (EndRotation(""),))
            return Decision(
                Outcome.ROTATE,
                f"{ROTATE} sent to {target}",
                (SendRotate(target, stimulus.pending, stimulus.tried),),
            )
        case RotationFinished():
            return _on_finished(stimulus, facts, policy)
    raise TypeError(f"unknown stimulus {stimulus!r}")


def _on_finished(s: RotationFinished, facts: RotationFacts, policy: RotationPolicy) -> RotationDecision:
    if s.status in NON_TERMINAL:
        return ignore(f"command {s.status}")
    op = facts.op
    if op is None or op.command_id != s.command_id:
        return ignore(f"stale {ROTATE} command {s.command_id}")
    ended = EndRotation(s.command_id)
    if s.status == TERMINAL_SUCCESS and set(facts.rotated) >= ROLES:
        reason = "rotated " + ",".join(facts.rotated)
        event = BusEvent(
            detail_type=JOIN_TOKENS_ROTATED,
            cluster=policy.cluster,
            instance_id=s.instance_id,
            node_id=op.node_id,
            role="manager",
            reason=reason,
            correlation_id=op.correlation_id,
        )
        return Decision(Outcome.ROTATED, reason, (ended, MarkHealthy(s.instance_id), Publish(event)))
    reason = f"{ROTATE} {s.status}: {facts.detail}" if facts.detail else f"{ROTATE} {s.status}"
    return Decision(Outcome.ROTATION_FAILED, reason, (ended, LogFailure(s.instance_id, reason)))
