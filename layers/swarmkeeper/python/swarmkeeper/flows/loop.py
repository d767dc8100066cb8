"""The loop the join and exit flows share: gather facts, decide, log the decision, execute its actions
in order. An action may end the run (``Stop``: a conditional write lost a race) or ask for another
decision on a new stimulus (``Redecide``: the lock was taken, a command could not be delivered).

Each run has its own ``Known``: the facts this invocation read or wrote, which a re-decision reuses
instead of reading them again. A flow keeps there only what it can vouch for (what it read and no
action of the run has touched since, what a conditional write of the run stored) and forgets what an
action changes. Nothing outlives the run: the next invocation reads everything afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger

from swarmkeeper.domain import outputs
from swarmkeeper.domain.errors import SwarmkeeperError
from swarmkeeper.domain.kernel import Decision, Outcome

logger = Logger(child=True)


class Stimulus(Protocol):
    @property
    def instance_id(self) -> str: ...


class Op(Protocol):
    @property
    def stage(self) -> str: ...


class Facts(Protocol):
    """What a flow gathered for one decision, with the op in flight (its stage is logged)."""

    @property
    def op(self) -> Op | None: ...


S = TypeVar("S", bound=Stimulus)
F = TypeVar("F", bound=Facts)
T = TypeVar("T")


@dataclass(frozen=True)
class Redecide(Exception):
    """Decide again, on this stimulus: an action changed what the decision stood on."""

    stimulus: Any


@dataclass(frozen=True)
class Stop(Exception):
    """End the run with this outcome: what the decision stood on moved on elsewhere."""

    outcome: Outcome
    reason: str


class Known:
    """Facts of one run, by name."""

    def __init__(self) -> None:
        self._facts: dict[Hashable, Any] = {}

    def get(self, name: Hashable, read: Callable[[], T]) -> T:
        """The fact as known, or read now and kept for the rounds after this one."""
        if name not in self._facts:
            self._facts[name] = read()
        return self._facts[name]

    def take(self, name: Hashable, read: Callable[[], T]) -> T:
        """The fact as known, for this round only (an op: each round writes it anew), or read now."""
        return self._facts.pop(name) if name in self._facts else read()

    def put(self, name: Hashable, value: Any) -> None:
        self._facts[name] = value

    def forget(self, *names: Hashable) -> None:
        for name in names:
            self._facts.pop(name, None)


def run(
    flow: str,
    stimulus: S,
    gather: Callable[[S, Known], F],
    decide: Callable[[S, F], Decision],
    execute: Callable[[Any, F, Known], None],
    max_rounds: int,
    not_settled: type[SwarmkeeperError],
) -> Decision:
    """Decide and execute until a decision's actions all ran (its decision is returned), an action
    stops the run, or ``max_rounds`` decisions kept asking for another (``not_settled`` is raised, so
    the event is retried)."""
    known = Known()
    for _ in range(max_rounds):
        facts = gather(stimulus, known)
        decision = decide(stimulus, facts)
        logger.info(
            f"{flow} decision",
            extra={
                "instance_id": stimulus.instance_id,
                "stimulus": type(stimulus).__name__,
                "stage": str(facts.op.stage) if facts.op else None,
                "outcome": decision.outcome,
                "reason": outputs.redact(decision.reason),
                "actions": [type(a).__name__ for a in decision.actions],
            },
        )
        try:
            for action in decision.actions:
                execute(action, facts, known)
        except Redecide as again:
            stimulus = again.stimulus
            continue
        except Stop as stop:
            logger.info(f"{flow} stopped", extra={"instance_id": stimulus.instance_id, "reason": stop.reason})
            return Decision(stop.outcome, stop.reason)
        return decision
    raise not_settled(f"{flow} of {stimulus.instance_id} did not settle after {max_rounds} rounds")
