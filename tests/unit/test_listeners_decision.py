"""The listeners decision (``domain.listeners.decide_listeners``), pure: published ports -> listeners,
target groups and rules; only what carries the cluster's tag is changed; hostile input is rejected
and never applied; a rejection is announced once per cause. Given / When / Then."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from swarmkeeper.adapters.bus import EventBus
from swarmkeeper.domain.kernel import Publish
from swarmkeeper.domain.listeners import (
    LISTENER_CHANGED,
    LISTENER_CREATED,
    LISTENER_REJECTED,
    LISTENER_REMOVED,
    AllowPort,
    ChangeListener,
    CloseListener,
    DeleteTargetGroup,
    Listener,
    ListenerPolicy,
    ListenerSpec,
    LoadBalancerState,
    OpenListener,
    PublishedPort,
    Rejection,
    RejectionsPublished,
    RememberRejections,
    RevokePort,
    TargetGroup,
    certificate_problem,
    decide_listeners,
)

POLICY = ListenerPolicy("demo", "us-east-1")
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
OTHER_CERT = "arn:aws:acm:us-east-1:123456789012:certificate/87654321-1234-1234-1234-123456789012"


def published(
    port: int, service: str = "web", protocol: str = "tcp", mode: str = "host", certificate: str = ""
):
    return PublishedPort(service, protocol, port, 80, mode, certificate)


def ours(port: int, protocol: str = "TCP", certificate: str = "") -> Listener:
    return Listener(f"arn:listener/{port}", port, protocol, certificate, f"arn:tg/{port}", ours=True)


def decide(ports, state=None, complete=True):
    state = state or LoadBalancerState()
    return decide_listeners(ports, state, POLICY, "corr", complete)


def events(decision) -> list[tuple[str, str]]:
    return [
        (a.event.detail_type, dict(a.event.details)["port"])
        for a in decision.actions
        if isinstance(a, Publish)
    ]


def changes(decision) -> list[object]:
    """What the decision does to the load balancer (not what it announces or remembers)."""
    return [a for a in decision.actions if not isinstance(a, (Publish, RememberRejections))]


def test_a_published_port_gets_its_rules_then_its_listener():
    # Given web publishes 8080 (host mode) and an empty load balancer
    # When decided
    d = decide([published(8080)])
    # Then the port is allowed first, then the listener opened, then announced
    assert changes(d) == [AllowPort(8080), OpenListener(ListenerSpec(8080))]
    assert events(d) == [(LISTENER_CREATED, "8080")]
    assert d.outcome == "reconciled"


def test_ingress_and_host_ports_each_get_a_listener_and_a_second_port_a_second():
    # Given one service on 8080 (ingress) and one on 9090 (host), 8080 already in place
    state = LoadBalancerState(
        (ours(8080),), (TargetGroup("arn:tg/8080", 8080),), frozenset({8080}), frozenset({8080})
    )
    # When decided
    d = decide([published(8080, mode="ingress"), published(9090, "api")], state)
    # Then only 9090 is added
    assert changes(d) == [AllowPort(9090), OpenListener(ListenerSpec(9090))]


def test_what_already_matches_is_left_alone():
    # Given the load balancer already matches the published ports
    state = LoadBalancerState(
        (ours(8080),), (TargetGroup("arn:tg/8080", 8080),), frozenset({8080}), frozenset({8080})
    )
    # When decided again
    d = decide([published(8080)], state)
    # Then nothing is done (idempotent) and nothing announced
    assert d.actions == () and d.outcome == "ignore"


def test_an_unpublished_port_loses_its_listener_its_target_group_and_its_rules():
    # Given 9090 is no longer published
    state = LoadBalancerState(
        (ours(8080), ours(9090)),
        (TargetGroup("arn:tg/8080", 8080), TargetGroup("arn:tg/9090", 9090)),
        frozenset({8080, 9090}),
        frozenset({8080, 9090}),
    )
    # When decided
    d = decide([published(8080)], state)
    # Then the listener (with its target group) is closed, then its rules revoked
    assert changes(d) == [CloseListener(ours(9090)), RevokePort(9090)]
    assert events(d) == [(LISTENER_REMOVED, "9090")]


def test_an_incomplete_listing_removes_nothing():
    # Given a port line could not be read
    state = LoadBalancerState((ours(9090),), (), frozenset({9090}), frozenset({9090}))
    # When decided on what could be read
    d = decide([published(8080)], state, complete=False)
    # Then 8080 is added and 9090 kept
    assert changes(d) == [AllowPort(8080), OpenListener(ListenerSpec(8080))]
    assert (LISTENER_REMOVED, "9090") not in events(d)
    assert "nothing removed" in d.reason


def test_a_foreign_listener_is_never_touched_and_its_port_is_rejected():
    # Given someone else's listener on 8080 and on 7000 (no cluster tag)
    foreign = Listener("arn:foreign/8080", 8080, "TCP", ours=False)
    elsewhere = Listener("arn:foreign/7000", 7000, "TCP", ours=False)
    # When the swarm publishes 8080 and nothing on 7000
    d = decide([published(8080)], LoadBalancerState((foreign, elsewhere)))
    # Then neither is changed nor removed, and 8080 is rejected with the reason
    assert changes(d) == []
    (rejected,) = [a.event for a in d.actions if isinstance(a, Publish)]
    assert rejected.detail_type == LISTENER_REJECTED and "did not create" in rejected.reason


def test_orphan_target_groups_and_stale_rules_of_the_cluster_are_cleaned_up():
    # Given a crash left a target group and a rule for 9090 without a listener
    state = LoadBalancerState((), (TargetGroup("arn:tg/9090", 9090),), frozenset(), frozenset({9090}))
    # When 9090 is not published
    d = decide([], state)
    # Then both go
    assert changes(d) == [DeleteTargetGroup(TargetGroup("arn:tg/9090", 9090)), RevokePort(9090)]


def test_a_half_open_port_is_allowed_again():
    # Given the listener exists but one of the two rules is missing (a crash between them)
    state = LoadBalancerState((ours(8080),), (), frozenset(), frozenset({8080}))
    # Then the port is allowed again (the adapter skips the rule that exists)
    assert changes(decide([published(8080)], state)) == [AllowPort(8080)]


def test_a_certificate_label_makes_the_listener_tls_and_a_change_modifies_it():
    # Given web publishes 443 with a certificate label
    # When decided on an empty load balancer, then on a TCP listener already there
    created = decide([published(443, certificate=CERT)])
    changed = decide(
        [published(443, certificate=CERT)], LoadBalancerState((ours(443),), (), frozenset({443}))
    )
    # Then a TLS listener is opened / the TCP one becomes TLS
    assert OpenListener(ListenerSpec(443, CERT)) in changes(created)
    assert changes(changed) == [ChangeListener(ours(443), ListenerSpec(443, CERT))]
    assert events(changed) == [(LISTENER_CHANGED, "443")]


def test_a_changed_listener_goes_on_the_bus_as_its_schema_says():
    # Given the decision that turns a TCP listener into TLS
    changed = decide(
        [published(443, certificate=CERT)], LoadBalancerState((ours(443),), (), frozenset({443}))
    )
    # When its events are published on the operators' bus (the tier's fixture validates each)
    with mock_aws():
        client = boto3.client("events", region_name="us-east-1")
        client.create_event_bus(Name="swarmkeeper-demo")
        bus = EventBus(client, "swarmkeeper-demo")
        for action in changed.actions:
            if isinstance(action, Publish):
                bus.publish(action.event)
    # Then Listener Changed was among them
    assert [t for t, _ in events(changed)] == [LISTENER_CHANGED]


HOSTILE_LABELS = [
    "not-an-arn",
    "$(reboot)",
    f"{CERT}; rm -rf /",
    f"{CERT}\nport evil tcp 22 22 host -",
    CERT.replace("us-east-1", "eu-west-1"),  # another region's certificate
    "arn:aws:iam::123456789012:server-certificate/x",
    CERT.upper(),
    "",
]


@pytest.mark.parametrize("label", [label for label in HOSTILE_LABELS if label])
def test_a_wrong_shaped_certificate_label_is_rejected_and_never_applied(label):
    # Given 443 has a TLS listener of ours with a good certificate
    state = LoadBalancerState((ours(443, "TLS", CERT),), (), frozenset({443}), frozenset({443}))
    # When the service's label is changed to something that is not a certificate ARN of the region
    d = decide([published(443, certificate=label)], state)
    # Then nothing is changed (not made TCP, not removed) and the rejection is announced
    assert changes(d) == []
    assert events(d) == [(LISTENER_REJECTED, "443")]
    # and a new port with it gets no listener at all
    fresh = decide([published(8443, certificate=label)])
    assert changes(fresh) == [] and events(fresh) == [(LISTENER_REJECTED, "8443")]


def test_the_certificate_check_takes_exactly_acm_arns_of_the_region():
    assert certificate_problem(CERT, "us-east-1") is None
    assert certificate_problem(CERT.replace("arn:aws:", "arn:aws-us-gov:"), "us-east-1") is None
    for label in HOSTILE_LABELS:
        assert certificate_problem(label, "us-east-1") is not None


@pytest.mark.parametrize(
    ("port", "why"),
    [
        (published(0), "outside 1-65535"),
        (published(65536), "outside 1-65535"),
        (published(-1), "outside 1-65535"),
        (published(5353, protocol="udp"), "TCP only"),
        (published(9999, protocol="sctp"), "TCP only"),
    ],
)
def test_ports_out_of_range_and_other_protocols_are_rejected(port, why):
    # When decided
    d = decide([port])
    # Then no change, and a rejection with the reason
    assert changes(d) == []
    (event,) = [a.event for a in d.actions if isinstance(a, Publish)]
    assert event.detail_type == LISTENER_REJECTED and why in event.reason


def test_a_udp_port_does_not_stop_the_tcp_listener_of_the_same_number():
    d = decide([published(53, protocol="udp"), published(53)])
    assert changes(d) == [AllowPort(53), OpenListener(ListenerSpec(53))]
    assert events(d) == [(LISTENER_REJECTED, "53"), (LISTENER_CREATED, "53")]


def test_two_services_asking_different_certificates_of_one_port_leave_it_as_it_is():
    # Given web and api both publish 443 (host mode on different nodes) with different certificates
    state = LoadBalancerState((ours(443, "TLS", CERT),), (), frozenset({443}), frozenset({443}))
    d = decide([published(443, certificate=CERT), published(443, "api", certificate=OTHER_CERT)], state)
    # Then the port is rejected and its listener kept
    assert changes(d) == []
    (event,) = [a.event for a in d.actions if isinstance(a, Publish)]
    assert "different certificates" in event.reason and dict(event.details)["services"] == "api,web"


def test_two_services_on_one_port_agreeing_share_one_listener():
    d = decide([published(8080), published(8080, "web2")])
    assert changes(d) == [AllowPort(8080), OpenListener(ListenerSpec(8080))]


def test_events_name_the_cluster_and_the_correlation_and_no_instance():
    (event,) = [a.event for a in decide([published(8080)]).actions if isinstance(a, Publish)]
    assert (event.cluster, event.correlation_id, event.instance_id) == ("demo", "corr", "")


# --------------------------------------------------------------- Listener Rejected, once per cause


def rejected(decision) -> list[tuple[str, str]]:
    """The rejections a decision announces: (port, reason)."""
    return [
        (dict(action.event.details)["port"], action.event.reason)
        for action in decision.actions
        if isinstance(action, Publish) and action.event.detail_type == LISTENER_REJECTED
    ]


def remembered(decision, before: RejectionsPublished) -> RejectionsPublished:
    """What the flow stores once the decision ran: its RememberRejections, or what was stored."""
    kept = [action.published for action in decision.actions if isinstance(action, RememberRejections)]
    assert len(kept) <= 1
    return kept[0] if kept else before


def passes(*listings, state=None, complete=True) -> list[list[tuple[str, str]]]:
    """Each listing decided in turn on what the pass before remembered: the rejections announced."""
    memory, announced = RejectionsPublished(), []
    for ports in listings:
        decision = decide_listeners(ports, state or LoadBalancerState(), POLICY, "corr", complete, memory)
        announced.append(rejected(decision))
        memory = remembered(decision, memory)
    return announced


UDP_53 = published(53, "dns", protocol="udp")
UDP_REASON = "udp port 53: the load balancer forwards TCP only"


def test_a_rejection_is_announced_once_over_three_passes():
    # Given dns publishes 53/udp, pass after pass
    # When three passes decide, each on what the one before remembered
    announced = passes([UDP_53], [UDP_53], [UDP_53])
    # Then only the first announces it
    assert announced == [[("53", UDP_REASON)], [], []]


def test_a_remembered_rejection_is_neither_announced_nor_written_again():
    # Given the rejection of 53 was published and stored
    memory = RejectionsPublished(frozenset({Rejection(53, ("dns",), UDP_REASON)}), 4)
    # When the same listing is decided
    decision = decide_listeners([UDP_53], LoadBalancerState(), POLICY, "corr", True, memory)
    # Then nothing is done, announced or written
    assert decision.actions == () and decision.outcome == "ignore"


def test_the_rejections_are_remembered_after_they_are_announced_on_the_next_version():
    # Given 53/udp and a certificate label that is no ARN, with version 4 stored
    memory = RejectionsPublished(frozenset(), 4)
    ports = [UDP_53, published(8443, certificate="nope")]
    # When decided
    decision = decide_listeners(ports, LoadBalancerState(), POLICY, "corr", True, memory)
    # Then the memory is the last action (a crash before it announces again), on version 5
    *rest, last = decision.actions
    assert isinstance(last, RememberRejections) and last.published.version == 5
    assert {cause.port for cause in last.published.rejections} == {53, 8443}
    assert all(not isinstance(action, RememberRejections) for action in rest)
    # and remembering is no change of the load balancer
    assert decision.outcome == "ignore"


def test_a_changed_reason_is_announced_again():
    # Given 8443's label is no ARN, then names another region's certificate
    wrong_shape = published(8443, certificate="nope")
    wrong_region = published(8443, certificate=CERT.replace("us-east-1", "eu-west-1"))
    # When passes decide
    announced = passes([wrong_shape], [wrong_shape], [wrong_region], [wrong_region])
    # Then each reason is announced once
    assert [len(each) for each in announced] == [1, 0, 1, 0]
    assert "not an ACM certificate ARN" in announced[0][0][1] and "eu-west-1" in announced[2][0][1]


def test_a_rejection_cleared_then_back_is_announced_again():
    # Given 53/udp, then 53/tcp (fine), then nothing published, then 53/udp again
    # When passes decide
    announced = passes([UDP_53], [published(53, "dns")], [UDP_53], [], [UDP_53])
    # Then the clearing announces nothing and each return is announced
    assert announced == [[("53", UDP_REASON)], [], [("53", UDP_REASON)], [], [("53", UDP_REASON)]]


def test_rejected_ports_are_independent():
    # Given 53/udp and 5353/udp; then 5353 cleared while 53 stays; then 5353 back
    mdns = published(5353, "mdns", protocol="udp")
    # When passes decide
    announced = passes([UDP_53, mdns], [UDP_53], [UDP_53, mdns])
    # Then each port is announced on its own rejection only
    assert [[port for port, _ in each] for each in announced] == [["53", "5353"], [], ["5353"]]


def test_a_foreign_listeners_port_is_announced_once():
    foreign = Listener("arn:foreign/8080", 8080, "TCP", ours=False)
    announced = passes([published(8080)], [published(8080)], state=LoadBalancerState((foreign,)))
    assert [len(each) for each in announced] == [1, 0] and "did not create" in announced[0][0][1]


def test_an_incomplete_listing_forgets_only_the_causes_of_ports_it_shows():
    # Given 53/udp and 5353/udp were announced and remembered
    mdns = published(5353, "mdns", protocol="udp")
    first = decide_listeners([UDP_53, mdns], LoadBalancerState(), POLICY, "corr", True)
    memory = remembered(first, RejectionsPublished())
    # When an incomplete listing shows 53 over TCP and not 5353 (its line may be the unreadable one)
    decision = decide_listeners([published(53, "dns")], LoadBalancerState(), POLICY, "corr", False, memory)
    # Then 53's cause is forgotten and 5353's kept
    assert {cause.port for cause in remembered(decision, memory).rejections} == {5353}
