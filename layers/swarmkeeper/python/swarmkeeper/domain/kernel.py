"""What every flow's decisions are made of: a ``Decision`` (an ``Outcome``, a reason, the actions to
execute in order), the ``Publish`` action and its ``BusEvent``, and the SSM command statuses a flow
tells apart. The join, leave, reconcile and rotation decisions all speak in these terms; each has its
own action union, which ``Decision`` is generic over.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Generic, NewType, TypeVar

from swarmkeeper.domain.frozen import frozen

ActionT = TypeVar("ActionT", covariant=True)


class Outcome(StrEnum):
    """What a decision came to. Its value is what a handler answers and logs; ``metric`` is the count
    a handler adds for it, if any."""

    IGNORE = "ignore"
    STOPPED = "stopped"  # an action found that the join moved on elsewhere
    WAIT = "wait"
    # join
    START = "start"
    LOCK = "lock"
    BOOTSTRAP = "bootstrap"
    RETRY = "retry"
    VERIFY = "verify"
    JOINED = "joined"
    FAILED = "failed"
    LEAVE_BEGUN = "leave-begun"  # the instance's op is a leave: the join is over
    # leave
    DRAIN = "drain"
    LEAVE = "leave"
    REMOVE = "remove"
    REMOVED = "removed"
    COMPLETE = "complete"
    GAVE_UP = "gave-up"
    REMOVE_FAILED = "remove-failed"
    # reconcile
    ALARM = "alarm"
    RECONCILE = "reconcile"
    RECONCILED = "reconciled"
    RECONCILE_FAILED = "reconcile-failed"
    # token rotation
    ROTATE = "rotate"
    ROTATED = "rotated"
    ROTATION_FAILED = "rotation-failed"
    # stacks
    DEPLOY = "deploy"
    DEPLOYED = "deployed"
    DEPLOY_FAILED = "deploy-failed"
    REMOVE_STACK = "remove-stack"
    STACK_REMOVED = "stack-removed"
    REMOVE_STACK_FAILED = "remove-stack-failed"
    STACKS_CHECKED = "stacks-checked"

    @property
    def metric(self) -> str | None:
        """The metric counted for this outcome (namespace Swarmkeeper, dimension Cluster), or None."""
        return _METRIC_OF.get(self)


_METRIC_OF: dict[Outcome, str] = {
    Outcome.START: "NodeJoinStarted",
    Outcome.JOINED: "NodeJoined",
    Outcome.FAILED: "NodeJoinFailed",
    Outcome.ROTATED: "JoinTokensRotated",
    Outcome.ROTATION_FAILED: "TokenRotationFailed",
    Outcome.IGNORE: "EventIgnored",
    Outcome.DRAIN: "NodeDrainStarted",
    Outcome.REMOVED: "NodeRemoved",
    Outcome.GAVE_UP: "NodeRemovalGaveUp",
    Outcome.ALARM: "AlarmRaised",
    Outcome.RECONCILED: "ReconcilePasses",
    Outcome.RECONCILE_FAILED: "ReconcileFailed",
    Outcome.DEPLOYED: "StackDeployed",
    Outcome.DEPLOY_FAILED: "StackDeployFailed",
    Outcome.STACK_REMOVED: "StackRemoved",
    Outcome.REMOVE_STACK_FAILED: "StackRemoveFailed",
}


@frozen
class Decision(Generic[ActionT]):
    outcome: Outcome
    reason: str
    actions: tuple[ActionT, ...] = ()


def ignore(reason: str, actions: tuple[ActionT, ...] = ()) -> Decision[ActionT]:
    return Decision(Outcome.IGNORE, reason, actions)


DetailType = NewType("DetailType", str)


def detail_type(name: str) -> DetailType:
    """Declare ``name`` a detail-type of the operators' bus, the one way to make a ``DetailType``. Each
    has its JSON schema in ``schemas/``: a unit test finds every ``detail_type("...")`` in the layer and
    fails on one without a schema (or a schema of none)."""
    return DetailType(name)


@frozen
class BusEvent:
    """One event on the operators' bus (README: events swarmkeeper publishes). Never a token."""

    detail_type: DetailType
    cluster: str
    instance_id: str
    node_id: str
    role: str
    reason: str
    correlation_id: str
    # More detail fields for events about something other than a node (a stack: its name, key and
    # object version), as (name, value) pairs.
    details: tuple[tuple[str, str], ...] = ()


@frozen
class Publish:
    event: BusEvent


# SSM command statuses (GetCommandInvocation / the status-change event): Success, the statuses of a
# command still running, and every other one is a terminal failure (Failed, TimedOut, Cancelled, ...).
TERMINAL_SUCCESS = "Success"
NON_TERMINAL = frozenset({"Pending", "InProgress", "Delayed", "Cancelling"})
