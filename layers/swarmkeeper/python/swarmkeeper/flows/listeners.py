"""The listeners flow: the load balancer follows the swarm's published ports.

Entry point: ``follow`` (a describe-swarm listing the reconcile pass read, so the listeners converge
within that pass). It runs the ``flows.flow`` loop once: gather the load balancer's state and the
rejections already published (``adapters.rejections``), ask ``domain.listeners.decide_listeners``,
execute: rules first, then listeners and target groups; the outcomes (Listener Created / Changed /
Removed / Rejected) are published once done, and the rejections published are remembered last (why
in that order, and why two passes racing lose nothing: ``domain.listeners``). Every action is
idempotent, so a run that fails half-way is finished by the next pass.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from swarmkeeper.adapters.bus import EventBus
from swarmkeeper.adapters.load_balancer import LoadBalancerTargets
from swarmkeeper.adapters.rejections import PublishedRejections
from swarmkeeper.domain.errors import SwarmkeeperError
from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.kernel import Decision, Outcome, Publish
from swarmkeeper.domain.listeners import (
    AllowPort,
    ChangeListener,
    CloseListener,
    DeleteTargetGroup,
    ListenerAction,
    ListenerDecision,
    ListenerPolicy,
    LoadBalancerState,
    OpenListener,
    PublishedPort,
    RejectionsPublished,
    RememberRejections,
    RevokePort,
    decide_listeners,
)
from swarmkeeper.domain.swarm import SwarmListing
from swarmkeeper.flows.flow import Known, run

logger = Logger(child=True)


class ListenersNotSettled(SwarmkeeperError):
    """Never raised: one decision settles a pass."""


@frozen
class SwarmPorts:
    ports: tuple[PublishedPort, ...]
    complete: bool  # every port line was read
    correlation_id: str


@frozen
class ListenerFacts:
    load_balancer: LoadBalancerState
    published: RejectionsPublished  # the rejections already announced


class ListenersFlow:
    name = "listeners"
    max_rounds = 1
    not_settled = ListenersNotSettled

    def __init__(
        self,
        policy: ListenerPolicy,
        targets: LoadBalancerTargets,
        bus: EventBus,
        rejections: PublishedRejections,
    ):
        self.policy = policy
        self.targets = targets
        self.bus = bus
        self.rejections = rejections

    def follow(self, listing: SwarmListing, correlation_id: str) -> ListenerDecision:
        if listing.ports is None:
            return Decision(Outcome.IGNORE, "the listing has no port section: ports unknown, nothing changed")
        for line in listing.skipped_ports:
            logger.warning("describe-swarm port line skipped", extra={"reason": line.reason})
        return run(self, SwarmPorts(listing.ports, not listing.skipped_ports, correlation_id))

    def gather(self, stimulus: SwarmPorts, known: Known) -> ListenerFacts:
        return ListenerFacts(self.targets.state(), self.rejections.get())

    def decide(self, stimulus: SwarmPorts, facts: ListenerFacts) -> ListenerDecision:
        return decide_listeners(
            stimulus.ports,
            facts.load_balancer,
            self.policy,
            stimulus.correlation_id,
            stimulus.complete,
            facts.published,
        )

    def execute(self, action: ListenerAction, facts: ListenerFacts, known: Known) -> None:
        match action:
            case AllowPort(port=port):
                self.targets.allow(port)
            case RevokePort(port=port):
                self.targets.revoke(port)
            case OpenListener(spec=spec):
                arn = self.targets.open(spec)
                logger.info("listener created", extra={"port": spec.port, "listener": arn})
            case ChangeListener(listener=listener, spec=spec):
                self.targets.change(listener, spec)
            case CloseListener(listener=listener):
                self.targets.close(listener)
            case DeleteTargetGroup(target_group=group):
                self.targets.delete_target_group(group)
            case Publish(event=event):
                self.bus.publish(event)
            case RememberRejections(published=published):
                if not self.rejections.save(published):
                    logger.info("rejections remembered by a concurrent pass; the next pass reads theirs")
            case _:
                raise TypeError(f"unknown action {action!r}")
