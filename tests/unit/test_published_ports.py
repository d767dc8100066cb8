"""describe-swarm's port section, parsed (``domain.swarm.parse_describe_swarm``): robust like the node
lines (a bad line is skipped and reported, never the end of the listing), and the leave's gate: a
worker still a load balancer target is deregistered and waited for before its drain. Given/When/Then."""

from __future__ import annotations

from dataclasses import replace

from swarmkeeper.domain.leave import decide_leave
from swarmkeeper.domain.leave_types import DeregisterTargets, LeaveRequested, LeaveStepDue, SendCommand
from swarmkeeper.domain.listeners import PublishedPort
from swarmkeeper.domain.swarm import encode_field, parse_describe_swarm

NODE = "aaaaaaaaaaaaaaaaaaaaaaaaa manager ready active leader 10.0.0.1 m1"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"


def port_line(*fields: str) -> str:
    return " ".join(encode_field(field) for field in fields)


def listing(*lines: str, count: int | None = None) -> str:
    ports = [*lines, f"ports={len(lines) if count is None else count}"]
    return "\n".join([*ports, NODE, "nodes=1"])


def test_port_lines_are_read_with_mode_and_certificate():
    # Given two services' ports, one with a certificate label
    out = listing(
        port_line("port", "web", "tcp", "8080", "80", "host", ""),
        port_line("port", "api", "tcp", "443", "8443", "ingress", CERT),
    )
    # When parsed
    parsed = parse_describe_swarm(out)
    # Then both ports and the node are there
    assert parsed.ports == (
        PublishedPort("web", "tcp", 8080, 80, "host", ""),
        PublishedPort("api", "tcp", 443, 8443, "ingress", CERT),
    )
    assert len(parsed.nodes) == 1 and parsed.skipped_ports == ()


def test_a_bad_port_line_is_skipped_and_reported_and_the_nodes_still_read():
    # Given lines a hostile or broken service could produce
    bad = [
        "port web tcp x 80 host -",  # not a number
        "port web tcp 8080 80 host - extra",  # a field too many
        port_line("port", "web;reboot", "tcp", "8080", "80", "host", ""),  # not a service name
        "port web icmp 8080 80 host -",  # not a protocol
        "port web tcp 8080 80 mesh -",  # not a mode
        "port web tcp 99999999 80 host -",  # not a port number
    ]
    parsed = parse_describe_swarm(listing(*bad, port_line("port", "ok", "tcp", "9090", "90", "host", "")))
    # Then each is skipped with its reason, the good one kept, the node read
    assert [p.service for p in parsed.ports or ()] == ["ok"]
    assert len(parsed.skipped_ports) == len(bad)
    assert not parsed.may_miss_a_manager and len(parsed.nodes) == 1


def test_a_label_cannot_add_a_line_or_a_field():
    # Given a certificate label holding a newline and a fake port line
    label = f"{CERT}\nport evil tcp 22 22 host -"
    parsed = parse_describe_swarm(listing(port_line("port", "web", "tcp", "443", "443", "host", label)))
    # Then it stays in its own field (and is for the decision to reject)
    assert parsed.ports == (PublishedPort("web", "tcp", 443, 443, "host", label),)


def test_a_port_count_that_does_not_match_leaves_the_ports_unknown():
    parsed = parse_describe_swarm(listing(port_line("port", "web", "tcp", "80", "80", "host", ""), count=2))
    assert parsed.ports is None and parsed.skipped_ports
    assert len(parsed.nodes) == 1


def test_an_output_without_a_port_section_says_the_ports_are_unknown():
    parsed = parse_describe_swarm("\n".join([NODE, "nodes=1"]))
    assert parsed.ports is None


def test_no_service_is_an_empty_port_section():
    assert parse_describe_swarm(listing()).ports == ()


# ---- the leave's gate ------------------------------------------------------------------------------

from test_leave_decision import IDENTITY, LEAVING, MANAGERS, NOW, POLICY, facts, op  # noqa: E402


def test_a_worker_still_a_target_is_deregistered_before_its_drain():
    # Given a terminating worker still registered in the load balancer's target groups
    request = LeaveRequested(LEAVING, "spot", "c")
    # When its leave starts
    d = decide_leave(request, facts(load_balanced=True), None, NOW, POLICY)
    # Then it is deregistered and the drain waits (no drain command yet)
    assert any(isinstance(a, DeregisterTargets) for a in d.actions)
    assert not [a for a in d.actions if isinstance(a, SendCommand)]


def test_the_drain_starts_once_the_worker_is_out_of_the_targets():
    waiting = op(waiting_for="its deregistration from the load balancer's targets")
    step = LeaveStepDue(LEAVING, waiting.version, "c")
    # While still draining in the load balancer: wait again
    still = decide_leave(step, facts(load_balanced=True), waiting, NOW, POLICY)
    assert still.outcome == "wait" and not [a for a in still.actions if isinstance(a, SendCommand)]
    # Out of the targets: the drain is sent
    out = decide_leave(step, facts(load_balanced=False), waiting, NOW, POLICY)
    (send,) = [a for a in out.actions if isinstance(a, SendCommand)]
    assert send.action == "drain-node" and send.target == MANAGERS[0]


def test_past_the_drain_budget_the_leave_goes_on_anyway():
    # Given the deregistration outlasted the drain budget (the hook must still end)
    waiting = replace(op(), drain_deadline=NOW - 1)
    d = decide_leave(
        LeaveStepDue(LEAVING, waiting.version, "c"), facts(load_balanced=True), waiting, NOW, POLICY
    )
    # Then it is not held any longer: leave-swarm goes on
    assert not any(isinstance(a, DeregisterTargets) for a in d.actions)
    (send,) = [a for a in d.actions if isinstance(a, SendCommand)]
    assert send.action == "leave-swarm" and IDENTITY.worker_group
