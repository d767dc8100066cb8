"""Which listeners the cluster's load balancer should have: a pure function of the swarm's published
ports and of what the load balancer has now.

Every TCP port a service publishes (ingress or host mode) gets a listener on the same port, forwarding
to a target group on that port (the workers, health-checked on it); the service label
``swarmkeeper.lb.certificate`` set to an ACM certificate ARN of the cluster's region makes it a TLS
listener with that certificate. The security groups admit exactly those ports: clients to the load
balancer, the load balancer to the workers.

Only what carries the cluster's tag is ever changed or removed: a listener someone else put on the
load balancer stays as it is, and a port it holds is rejected. A port that cannot be applied (UDP or
SCTP, out of range, a certificate label of the wrong shape, two services asking different things of
one port) is rejected with its reason and its listener, if it has one, is left as it is: a bad label
never turns a TLS listener into plain TCP, nor removes it. When the listing may be incomplete (a port
line could not be read) nothing is removed in that pass.

``Listener Rejected`` is published once per cause: a cause is a port, the services it names and its
reason (a ``Rejection``). The decision is given the causes already published (``RejectionsPublished``,
the state item ``listeners#rejected`` the flow reads) and publishes only those not among them; it
then returns ``RememberRejections`` with the causes in force, after the ``Publish`` actions, so a
crash between the two publishes again on the next pass (at least once) and never loses an event. A
cause that no longer holds is forgotten, so the same port rejected again later is published again;
its clearing publishes nothing (the port's listener, or its absence, is what the operator sees).
An incomplete listing forgets only the causes of ports it does show: a port whose line could not be
read keeps its cause.

Two passes racing: the memory is written on its version (a conditional write), so a pass that read
it before another pass wrote it loses the write and stores nothing. That loses no event: whatever the
losing pass published, it published before it tried to remember, and what stays stored names only
causes its writer published or read as published. A lost write can only make the next pass publish a
cause again, never keep a stale cause alive (a cleared port's cause brought back by a pass that read
an older listing would swallow the port's next rejection).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import field
from enum import StrEnum

from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.kernel import BusEvent, Decision, DetailType, Outcome, Publish, detail_type

CERTIFICATE_LABEL = "swarmkeeper.lb.certificate"
LISTENER_CREATED = detail_type("Listener Created")
LISTENER_REMOVED = detail_type("Listener Removed")
LISTENER_REJECTED = detail_type("Listener Rejected")
LISTENER_CHANGED = detail_type("Listener Changed")
PORT_RANGE = range(1, 65536)

_CERTIFICATE = re.compile(
    r"arn:aws(?:-[a-z]+)*:acm:(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]):[0-9]{12}:"
    r"certificate/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)


class Protocol(StrEnum):
    TCP = "TCP"
    TLS = "TLS"


@frozen
class PublishedPort:
    """One port one service publishes, as describe-swarm reports it."""

    service: str
    protocol: str  # tcp | udp | sctp, as Docker says
    published: int
    target: int
    mode: str  # ingress | host
    certificate: str = ""  # the service's certificate label, "" when it has none


@frozen
class ListenerSpec:
    port: int
    certificate: str = ""

    @property
    def protocol(self) -> Protocol:
        return Protocol.TLS if self.certificate else Protocol.TCP

    def describe(self) -> str:
        return f"{self.protocol} {self.port}" + (f" with {self.certificate}" if self.certificate else "")


@frozen
class Listener:
    """A listener on the cluster's load balancer, as the adapter read it."""

    arn: str
    port: int
    protocol: str
    certificate: str = ""
    target_group_arn: str = ""
    ours: bool = False  # carries the cluster's tag


@frozen
class TargetGroup:
    """A target group of the cluster (its tag and name), with or without a listener."""

    arn: str
    port: int


@frozen
class LoadBalancerState:
    listeners: tuple[Listener, ...] = ()
    target_groups: tuple[TargetGroup, ...] = ()  # the cluster's own
    open_ports: frozenset[int] = frozenset()  # ports the cluster's rules admit (in both groups)
    rule_ports: frozenset[int] = frozenset()  # ports with a rule of the cluster's in either group


@frozen
class ListenerPolicy:
    cluster: str
    region: str


@frozen
class Rejection:
    port: int
    services: tuple[str, ...]
    reason: str


@frozen
class RejectionsPublished:
    """The causes of ``Listener Rejected`` published and still in force (state item
    ``listeners#rejected``), on its version (0: never stored)."""

    rejections: frozenset[Rejection] = frozenset()
    version: int = 0


@frozen
class DesiredListeners:
    listeners: Mapping[int, ListenerSpec] = field(default_factory=dict)
    rejected: tuple[Rejection, ...] = ()
    untouched: frozenset[int] = frozenset()  # TCP ports rejected: their listener stays as it is


# ------------------------------------------------------------------------------------- actions


@frozen
class AllowPort:
    """Clients to the load balancer and the load balancer to the workers, on this TCP port."""

    port: int


@frozen
class RevokePort:
    port: int


@frozen
class OpenListener:
    """The port's target group (found or created, attached to the workers' group), then its listener."""

    spec: ListenerSpec


@frozen
class ChangeListener:
    listener: Listener
    spec: ListenerSpec


@frozen
class CloseListener:
    """The listener, then its target group (detached from the workers' group first)."""

    listener: Listener


@frozen
class DeleteTargetGroup:
    target_group: TargetGroup


@frozen
class RememberRejections:
    """Store ``published``, conditional on ``published.version - 1`` being the stored version; after
    the ``Publish`` actions (see the module doc). A lost race stores nothing."""

    published: RejectionsPublished


ListenerAction = (
    AllowPort
    | RevokePort
    | OpenListener
    | ChangeListener
    | CloseListener
    | DeleteTargetGroup
    | Publish
    | RememberRejections
)
ListenerDecision = Decision[ListenerAction]


# -------------------------------------------------------------------------------------- decide


def certificate_problem(value: str, region: str) -> str | None:
    """Why a certificate label cannot be used, or None when it is an ACM certificate ARN of ``region``."""
    match = _CERTIFICATE.fullmatch(value)
    if match is None:
        return f"label {CERTIFICATE_LABEL} is not an ACM certificate ARN: {_shown(value)}"
    if match.group("region") != region:
        return f"label {CERTIFICATE_LABEL} names a certificate in {match.group('region')}, not {region}"
    return None


def desired_listeners(ports: Iterable[PublishedPort], region: str) -> DesiredListeners:
    """The listener each published port asks for, and the ports that cannot have one (and why)."""
    asked: dict[int, dict[str, set[str]]] = {}  # TCP port -> certificate -> services
    rejected: list[Rejection] = []
    untouched: set[int] = set()
    for port in ports:
        problem = _port_problem(port, region)
        if problem is None:
            asked.setdefault(port.published, {}).setdefault(port.certificate, set()).add(port.service)
            continue
        rejected.append(Rejection(port.published, (port.service,), problem))
        if port.published in PORT_RANGE and port.protocol.lower() == "tcp":
            untouched.add(port.published)  # a UDP port does not stop a TCP listener on its number
    listeners: dict[int, ListenerSpec] = {}
    for number, by_certificate in sorted(asked.items()):
        if number in untouched:
            continue
        if len(by_certificate) > 1:
            services = tuple(sorted(set().union(*by_certificate.values())))
            why = f"services {', '.join(services)} ask for different certificates on one port"
            rejected.append(Rejection(number, services, why))
            untouched.add(number)
            continue
        (certificate,) = by_certificate
        listeners[number] = ListenerSpec(number, certificate)
    ordered = tuple(sorted(set(rejected), key=lambda r: (r.port, r.reason, r.services)))
    return DesiredListeners(listeners, ordered, frozenset(untouched))


def decide_listeners(
    ports: Iterable[PublishedPort],
    state: LoadBalancerState,
    policy: ListenerPolicy,
    correlation_id: str,
    complete: bool = True,
    published: RejectionsPublished | None = None,
) -> ListenerDecision:
    """The actions that make the load balancer match the published ports (``complete``: the listing
    is whole; otherwise nothing is removed), and the rejections not in ``published`` (None: none yet)
    announced and remembered."""
    ports = tuple(ports)
    desired = desired_listeners(ports, policy.region)
    untouched = set(desired.untouched)
    by_port = {listener.port: listener for listener in state.listeners}
    actions: list[ListenerAction] = []
    events: list[ListenerAction] = []

    def publish(kind: DetailType, port: int, reason: str, services: tuple[str, ...] = ()) -> None:
        details = (("port", str(port)), ("services", ",".join(services)))
        event = BusEvent(kind, policy.cluster, "", "", "", reason, correlation_id, details)
        events.append(Publish(event))

    rejected = list(desired.rejected)
    wanted: dict[int, ListenerSpec] = {}
    for number, spec in desired.listeners.items():
        existing = by_port.get(number)
        if existing is not None and not existing.ours:
            why = f"port {number} is held by a listener swarmkeeper did not create ({existing.arn})"
            rejected.append(Rejection(number, (), why))
            untouched.add(number)
            continue
        wanted[number] = spec
    before = published or RejectionsPublished()
    for rejection in rejected:
        if rejection not in before.rejections:
            publish(LISTENER_REJECTED, rejection.port, rejection.reason, rejection.services)

    for number, spec in sorted(wanted.items()):
        if number not in state.open_ports:
            actions.append(AllowPort(number))
        existing = by_port.get(number)
        if existing is None:
            actions.append(OpenListener(spec))
            publish(LISTENER_CREATED, number, f"{spec.describe()}: published by the swarm")
        elif existing.protocol != spec.protocol or existing.certificate != spec.certificate:
            actions.append(ChangeListener(existing, spec))
            publish(LISTENER_CHANGED, number, f"now {spec.describe()}")

    removals: list[ListenerAction] = []
    keep = set(wanted) | untouched
    for listener in sorted(state.listeners, key=lambda item: item.port):
        if listener.ours and listener.port not in keep:
            removals.append(CloseListener(listener))
            publish(LISTENER_REMOVED, listener.port, f"port {listener.port} is no longer published")
    listened = {listener.port for listener in state.listeners if listener.ours}
    for group in sorted(state.target_groups, key=lambda item: item.port):
        if group.port not in keep and group.port not in listened:
            removals.append(DeleteTargetGroup(group))
    for number in sorted((state.open_ports | state.rule_ports) - keep):
        removals.append(RevokePort(number))

    if not complete:
        removals = []
        events = [e for e in events if not _removed(e)]
    remember = _remembered(before, rejected, {port.published for port in ports}, complete)
    all_actions = (*actions, *removals, *events, *remember)
    changes = [a for a in all_actions if not isinstance(a, (Publish, RememberRejections))]
    if not changes:
        return Decision(
            Outcome.IGNORE, _summary("listeners match the published ports", desired, complete), all_actions
        )
    return Decision(Outcome.RECONCILED, _summary(f"{len(changes)} changes", desired, complete), all_actions)


def _remembered(
    before: RejectionsPublished, rejected: list[Rejection], listed: set[int], complete: bool
) -> tuple[RememberRejections, ...]:
    """The causes in force to store, when they differ from the stored ones."""
    kept = {cause for cause in before.rejections if not complete and cause.port not in listed}
    causes = frozenset(rejected) | kept
    if causes == before.rejections:
        return ()
    return (RememberRejections(RejectionsPublished(causes, before.version + 1)),)


def _removed(action: ListenerAction) -> bool:
    return isinstance(action, Publish) and action.event.detail_type == LISTENER_REMOVED


def _port_problem(port: PublishedPort, region: str) -> str | None:
    protocol = port.protocol.lower()
    if port.published not in PORT_RANGE:
        return f"published port {port.published} is outside 1-65535"
    if protocol != "tcp":
        return f"{protocol} port {port.published}: the load balancer forwards TCP only"
    if port.certificate:
        return certificate_problem(port.certificate, region)
    return None


def _summary(head: str, desired: DesiredListeners, complete: bool) -> str:
    parts = [head, f"{len(desired.listeners)} published"]
    if desired.rejected:
        parts.append(f"{len(desired.rejected)} rejected")
    if not complete:
        parts.append("listing incomplete: nothing removed")
    return "; ".join(parts)


def _shown(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")
