"""The describe-swarm output, parsed into SwarmNodes: what is accepted and what is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmkeeper.domain.models import Role
from swarmkeeper.domain.swarm import (
    Availability,
    ManagerStatus,
    NodeState,
    SkippedLine,
    SwarmNode,
    SwarmViewError,
    encode_field,
    parse_describe_swarm,
    parse_node_line,
)
from swarmkeeper.domain.view import node_line

LEADER_LINE = "abcdefghijklmnopqrstuvwxy manager ready active leader 10.99.0.11 ip-10-99-0-11"
WORKER_LINE = "0123456789abcdefghijklmno worker down drain - 10.99.1.20 ip-10-99-1-20"


def render(node: SwarmNode) -> str:
    """The node's line as describe-swarm prints it: every field as Go's urlquery encodes it."""
    status = node.manager_status.value if node.manager_status else "-"
    fields = (node.node_id, node.role, node.state, node.availability, status, node.address, node.hostname)
    return " ".join(encode_field(str(field)) for field in fields)


def output(*lines: str, count: int | None = None) -> str:
    trailer = f"nodes={len(lines) if count is None else count}"
    return "\n".join([*lines, trailer]) + "\n"


def test_parses_a_manager_and_a_worker():
    # Given the output of describe-swarm for a leader and a drained, down worker
    text = output(LEADER_LINE, WORKER_LINE)

    # When it is parsed
    listing = parse_describe_swarm(text)

    # Then every field is typed, and nothing was skipped
    assert listing.skipped == ()
    nodes = listing.nodes
    assert nodes == (
        SwarmNode(
            node_id="abcdefghijklmnopqrstuvwxy",
            role=Role.MANAGER,
            state=NodeState.READY,
            availability=Availability.ACTIVE,
            manager_status=ManagerStatus.LEADER,
            address="10.99.0.11",
            hostname="ip-10-99-0-11",
        ),
        SwarmNode(
            node_id="0123456789abcdefghijklmno",
            role=Role.WORKER,
            state=NodeState.DOWN,
            availability=Availability.DRAIN,
            manager_status=None,
            address="10.99.1.20",
            hostname="ip-10-99-1-20",
        ),
    )
    leader, worker = nodes
    assert leader.is_manager and leader.is_leader and leader.is_reachable_manager and leader.is_ready
    assert not worker.is_manager and not worker.is_reachable_manager and worker.is_down


def test_blank_lines_crlf_and_surrounding_spaces_are_tolerated():
    # Given output with CRLF line ends, blank lines and padding
    text = f"\r\n  {LEADER_LINE}  \r\n\r\n{WORKER_LINE}\r\nnodes=2\r\n\r\n"

    # When it is parsed
    nodes = parse_describe_swarm(text).nodes

    # Then both nodes are read
    assert [n.node_id for n in nodes] == ["abcdefghijklmnopqrstuvwxy", "0123456789abcdefghijklmno"]


def test_an_empty_swarm_listing_is_valid():
    # Given only the trailer
    # When it is parsed
    # Then there are no nodes
    assert parse_describe_swarm("nodes=0\n").nodes == ()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("abcdefghijklmnopqrstuvwxy manager ready active leader 10.99.0.11", "expected 7 fields"),
        (LEADER_LINE + " extra", "expected 7 fields"),
        ("ABCDEFGHIJKLMNOPQRSTUVWXY manager ready active leader 10.99.0.11 h", "node id"),
        ("abc manager ready active leader 10.99.0.11 h", "node id"),
        ("abcdefghijklmnopqrstuvwxy boss ready active leader 10.99.0.11 h", "role must be one of"),
        ("abcdefghijklmnopqrstuvwxy manager sleepy active leader 10.99.0.11 h", "state must be one of"),
        ("abcdefghijklmnopqrstuvwxy manager ready busy leader 10.99.0.11 h", "availability must be one of"),
        ("abcdefghijklmnopqrstuvwxy manager ready active - 10.99.0.11 h", "manager status must be one of"),
        (
            "abcdefghijklmnopqrstuvwxy manager ready active Leader 10.99.0.11 h",
            "manager status must be one of",
        ),
        (
            "abcdefghijklmnopqrstuvwxy worker ready active reachable 10.99.0.11 h",
            "must have manager status '-'",
        ),
        ("abcdefghijklmnopqrstuvwxy worker ready active - 10.99.0.256 h", "not an IP address"),
        ("abcdefghijklmnopqrstuvwxy worker ready active - ip-10-99-0-11 h", "not an IP address"),
    ],
)
def test_a_malformed_node_line_is_skipped_and_reported_with_its_line_number(line, message):
    # Given a good first line and a malformed second one
    text = output(WORKER_LINE, line)

    # When it is parsed
    listing = parse_describe_swarm(text)

    # Then the good line is read, and the malformed one skipped with where and what is wrong
    assert [n.node_id for n in listing.nodes] == [WORKER_LINE.split()[0]]
    (skipped,) = listing.skipped
    assert skipped.line_number == 2
    assert skipped.reason.startswith("describe-swarm output line 2: ")
    assert message in skipped.reason


@pytest.mark.parametrize(
    ("line", "may_be_manager"),
    [
        ("abcdefghijklmnopqrstuvwxy worker ready busy - 10.99.0.11 h", False),
        ("abcdefghijklmnopqrstuvwxy manager ready active unknown 10.99.0.11 h", True),
        ("abcdefghijklmnopqrstuvwxy boss ready active leader 10.99.0.11 h", True),
        ("abcdefghijklmnopqrstuvwxy worker ready active - 10.99.0.11", True),
        ("abcdefghijklmnopqrstuvwxy w%6Frker ready active - ? h", False),
    ],
)
def test_a_skipped_line_says_whether_it_may_be_a_manager(line, may_be_manager):
    # Given a malformed line: only one whose role field reads worker cannot hide a manager
    listing = parse_describe_swarm(output(LEADER_LINE, line))

    assert [s.may_be_manager for s in listing.skipped] == [may_be_manager]
    assert listing.may_miss_a_manager is may_be_manager


def test_a_hostname_cannot_add_a_line_or_split_its_own():
    # Given a worker whose hostname holds a newline and a forged manager line, spaces and a percent
    forged = "\nzzzzzzzzzzzzzzzzzzzzzzzzz manager ready active leader 6.6.6.6 h"
    for hostname in (forged, "a b\tc", "50%+x", "ünï"):
        worker = SwarmNode(
            "0123456789abcdefghijklmno", Role.WORKER, "ready", "active", None, "10.99.1.20", hostname
        )
        # When describe-swarm prints it and the output is parsed
        listing = parse_describe_swarm(output(LEADER_LINE, render(worker)))

        # Then it is one worker with exactly that hostname, and nothing else came in
        assert listing.skipped == ()
        assert [n.node_id for n in listing.nodes] == ["abcdefghijklmnopqrstuvwxy", worker.node_id]
        assert listing.nodes[1] == worker


def test_an_unencoded_forged_line_is_skipped_not_fatal():
    # Given output in which a hostname's newline did split a line (as printed before fields were
    # encoded): a worker line cut short, and a manager line that is not one
    text = output(
        LEADER_LINE,
        "0123456789abcdefghijklmno worker ready active - 10.99.1.20 ",
        "6.6.6.6:2377 manager ready active reachable 6.6.6.6 h",
    )

    # When it is parsed / Then the listing is read; the two lines are skipped and reported
    listing = parse_describe_swarm(text)
    assert [n.node_id for n in listing.nodes] == ["abcdefghijklmnopqrstuvwxy"]
    assert [s.line_number for s in listing.skipped] == [2, 3]
    assert listing.may_miss_a_manager


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty output"),
        ("\n\n", "empty output"),
        (f"{LEADER_LINE}\n{WORKER_LINE}\n", "last line must be the trailer"),
        (f"{LEADER_LINE}\n{WORKER_LINE[:30]}", "last line must be the trailer"),
        (output(LEADER_LINE, WORKER_LINE, count=3), "trailer says nodes=3 but 2 node lines"),
        (output(LEADER_LINE, WORKER_LINE, count=1), "trailer says nodes=1 but 2 node lines"),
        (f"{LEADER_LINE}\nnodes=1\n{WORKER_LINE}\nnodes=2\n", "trailer must be the last line"),
        ("nodes=-1\n", "last line must be the trailer"),
        (output(LEADER_LINE, LEADER_LINE), "listed twice"),
        (
            output(LEADER_LINE, "bcdefghijklmnopqrstuvwxyz manager ready active leader 10.99.0.12 h"),
            "two leaders",
        ),
    ],
)
def test_an_incomplete_or_inconsistent_output_is_refused(text, message):
    # Given output that is truncated, miscounted or contradicts itself
    # When it is parsed
    # Then it is refused: a partial view must never drive removals
    with pytest.raises(SwarmViewError, match=message):
        parse_describe_swarm(text)


def test_swarm_view_error_is_a_value_error():
    # Given a malformed line
    # When it is parsed on its own
    # Then callers catching ValueError see it too, without a line number
    with pytest.raises(ValueError, match="expected 7 fields") as raised:
        parse_node_line("nonsense")
    assert raised.value.line_number is None


def test_a_node_built_from_plain_strings_holds_enum_members():
    # Given an adapter that builds a node from strings
    node = SwarmNode("abcdefghijklmnopqrstuvwxy", "manager", "down", "active", "unreachable", "10.0.0.1", "h")

    # Then the fields are the enum members, so identity checks work
    assert node.role is Role.MANAGER
    assert node.state is NodeState.DOWN
    assert node.manager_status is ManagerStatus.UNREACHABLE
    assert node.is_down and not node.is_reachable_manager


@pytest.mark.parametrize(("role", "status"), [(Role.MANAGER, None), (Role.WORKER, ManagerStatus.REACHABLE)])
def test_a_manager_needs_a_manager_status_and_a_worker_has_none(role, status):
    # Given a role and a manager status that contradict each other
    # When a node is built
    # Then it is refused
    with pytest.raises(ValueError, match="manager status"):
        SwarmNode(
            "abcdefghijklmnopqrstuvwxy", role, NodeState.READY, Availability.ACTIVE, status, "10.0.0.1", "h"
        )


@pytest.mark.parametrize("state", list(NodeState))
def test_only_down_and_disconnected_count_as_down(state):
    # Given a worker in each state
    node = SwarmNode(
        "abcdefghijklmnopqrstuvwxy", Role.WORKER, state, Availability.ACTIVE, None, "10.0.0.1", "h"
    )

    # Then `unknown` (seen right after a leader election) is neither ready nor down
    assert node.is_down == (state in (NodeState.DOWN, NodeState.DISCONNECTED))
    assert node.is_ready == (state is NodeState.READY)


node_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=25, max_size=25)
addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
# A hostname is whatever the node's kernel says: any text at all.
hostnames = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=2, max_size=40),
    st.text(min_size=1, max_size=16).filter(lambda name: name != "-"),
)


@st.composite
def swarm_nodes(draw):
    role = draw(st.sampled_from(Role))
    status = (
        draw(st.sampled_from([ManagerStatus.REACHABLE, ManagerStatus.UNREACHABLE]))
        if role == "manager"
        else None
    )
    return SwarmNode(
        node_id=draw(node_ids),
        role=role,
        state=draw(st.sampled_from(NodeState)),
        availability=draw(st.sampled_from(Availability)),
        manager_status=status,
        address=draw(addresses),
        hostname=draw(hostnames),
    )


@given(st.lists(swarm_nodes(), max_size=30, unique_by=lambda node: node.node_id))
def test_rendering_then_parsing_gives_the_same_nodes(nodes):
    # Given any swarm rendered the way describe-swarm prints it
    text = output(*(render(node) for node in nodes))

    # When it is parsed
    listing = parse_describe_swarm(text)

    # Then nothing is lost or changed
    assert listing.nodes == tuple(nodes)
    assert listing.skipped == ()


@given(
    st.lists(swarm_nodes(), max_size=10, unique_by=lambda node: node.node_id),
    st.lists(st.text(min_size=1, max_size=80).filter(lambda s: "\n" not in s and s.strip())),
    st.randoms(),
)
def test_lines_that_do_not_read_are_skipped_never_fatal(nodes, garbage, random):
    # Given good node lines mixed with lines of anything at all, and a trailer that counts them all
    lines = [render(node) for node in nodes] + [g for g in garbage if not g.strip().startswith("nodes=")]
    random.shuffle(lines)

    # When the output is parsed
    listing = parse_describe_swarm(output(*lines))

    # Then every good node is read and every other line is skipped with its line number
    assert sorted(listing.nodes, key=lambda n: n.node_id) == sorted(nodes, key=lambda n: n.node_id)
    assert len(listing.skipped) == len(lines) - len(nodes)
    assert all(isinstance(s, SkippedLine) and 1 <= s.line_number <= len(lines) for s in listing.skipped)


@given(swarm_nodes())
def test_the_saved_view_keeps_a_node_line_as_describe_swarm_prints_it(node):
    assert node_line(node) == render(node)
    assert parse_node_line(node_line(node)) == node


@given(st.lists(swarm_nodes(), min_size=1, max_size=30, unique_by=lambda node: node.node_id), st.data())
def test_any_truncation_of_the_output_is_refused(nodes, data):
    # Given a complete output cut anywhere before its last character (as a 24,000-character limit would)
    text = output(*(render(node) for node in nodes)).rstrip("\n")
    cut = data.draw(st.integers(min_value=0, max_value=len(text) - 1))

    # When the truncated text is parsed
    # Then it is refused, never read as a smaller swarm
    with pytest.raises(SwarmViewError):
        parse_describe_swarm(text[:cut])
