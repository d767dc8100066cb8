"""What a flow is, and the one loop that runs every flow (join, leave, reconcile, token rotation).

A flow answers one stimulus (an event, a delayed step, a command's status) in rounds:

- ``gather(stimulus, known)`` reads the facts the decision needs, through the adapters (reads only),
  reusing what this run already knows;
- ``decide(stimulus, facts)`` is the domain's pure decision: an ``Outcome``, a reason and the actions
  to execute in order (no AWS, no clock read but the flow's own);
- ``execute(action, facts, known)`` carries out one action (the writes). It may end the run
  (``Stop``: a conditional write lost a race) or ask for another decision on a new stimulus
  (``Redecide``: a lock was taken, a command could not be delivered).

Each run has its own ``Known``: the facts this invocation read or wrote, which a re-decision reuses
instead of reading them again. A flow keeps there only what it can vouch for (what it read and no
action of the run has touched since, what a conditional write of the run stored) and forgets what an
action changes. Nothing outlives the run: the next invocation reads everything afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol, TypeVar, runtime_checkable

from aws_lambda_powertools import Logger

from swarmkeeper.domain import outputs
from swarmkeeper.domain.errors import SwarmkeeperError
from swarmkeeper.domain.kernel import Decision, Outcome

logger = Logger(child=True)

StimulusT = TypeVar("StimulusT", contravariant=True)
FactsT = TypeVar("FactsT")
ActionT = TypeVar("ActionT")
S = TypeVar("S")
F = TypeVar("F")
A = TypeVar("A")
T = TypeVar("T")


class Known:
    """Facts of one run, by name."""

    def __init__(self) -> None:
        self._facts: dict[Hashable, Any] = {}

    def get(self, name: Hashable, read: Callable[[], T]) -> T:
        """The fact as known, or read now and kept for the rounds after this one."""
        if name not in self._facts:
            self._facts[name] = read()
        value: T = self._facts[name]
        return value

    def take(self, name: Hashable, read: Callable[[], T]) -> T:
        """The fact as known, for this round only (an op: each round writes it anew), or read now."""
        if name in self._facts:
            value: T = self._facts.pop(name)
            return value
        return read()

    def put(self, name: Hashable, value: object) -> None:
        self._facts[name] = value

    def keep(self, name: Hashable, value: object | None) -> None:
        """Put ``value``; None: the fact is not known any more (the next read reads it)."""
        if value is None:
            self.forget(name)
        else:
            self.put(name, value)

    def forget(self, *names: Hashable) -> None:
        for name in names:
            self._facts.pop(name, None)


class Flow(Protocol[StimulusT, FactsT, ActionT]):
    """The interface every flow implements; ``run`` drives it."""

    @property
    def name(self) -> str:
        """The flow's name in its log lines ("join decision", "leave stopped")."""
        ...

    @property
    def max_rounds(self) -> int:
        """Decisions one run may make before it gives up (``not_settled``, so the event is retried)."""
        ...

    @property
    def not_settled(self) -> type[SwarmkeeperError]: ...

    def gather(self, stimulus: StimulusT, known: Known) -> FactsT: ...

    def decide(self, stimulus: StimulusT, facts: FactsT) -> Decision[ActionT]: ...

    def execute(self, action: ActionT, facts: FactsT, known: Known) -> None: ...


class Redecide(Exception):
    """Decide again, on this stimulus: an action changed what the decision stood on."""

    def __init__(self, stimulus: Any):
        super().__init__(stimulus)
        self.stimulus = stimulus


class Stop(Exception):
    """End the run with this outcome: what the decision stood on moved on elsewhere."""

    def __init__(self, outcome: Outcome, reason: str):
        super().__init__(outcome, reason)
        self.outcome = outcome
        self.reason = reason


@runtime_checkable
class _AboutAnInstance(Protocol):
    @property
    def instance_id(self) -> str: ...


@runtime_checkable
class _Staged(Protocol):
    @property
    def stage(self) -> str: ...


@runtime_checkable
class _WithAnOp(Protocol):
    @property
    def op(self) -> object: ...


def run(flow: Flow[S, F, A], stimulus: S) -> Decision[A]:
    """Decide and execute until a decision's actions all ran (its decision is returned), an action
    stops the run, or ``flow.max_rounds`` decisions kept asking for another (``flow.not_settled`` is
    raised, so the event is retried)."""
    known = Known()
    for _ in range(flow.max_rounds):
        facts = flow.gather(stimulus, known)
        decision = flow.decide(stimulus, facts)
        logger.info(
            f"{flow.name} decision",
            extra={
                "instance_id": _subject(stimulus),
                "stimulus": type(stimulus).__name__,
                "stage": _stage(facts),
                "outcome": decision.outcome,
                "reason": outputs.redact(decision.reason),
                "actions": [type(a).__name__ for a in decision.actions],
            },
        )
        try:
            for action in decision.actions:
                flow.execute(action, facts, known)
        except Redecide as again:
            stimulus = again.stimulus
            continue
        except Stop as stop:
            logger.info(
                f"{flow.name} stopped", extra={"instance_id": _subject(stimulus), "reason": stop.reason}
            )
            return Decision(stop.outcome, stop.reason)
        return decision
    subject = _subject(stimulus)
    of = f" of {subject}" if subject else ""
    raise flow.not_settled(f"{flow.name}{of} did not settle after {flow.max_rounds} rounds")


def _subject(stimulus: object) -> str | None:
    """The instance a stimulus is about (join and leave); None for a cluster-wide one."""
    return stimulus.instance_id if isinstance(stimulus, _AboutAnInstance) else None


def _stage(facts: object) -> str | None:
    """The stage of the operation in flight the decision stood on, if the facts hold one."""
    op = facts.op if isinstance(facts, _WithAnOp) else None
    return str(op.stage) if isinstance(op, _Staged) else None
