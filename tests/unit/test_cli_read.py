"""The CLI's reading verbs (status, nodes, events) and its errors, against a moto region in which the
real handlers joined a cluster (``world``): what an operator sees and the exit codes scripts get."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cli_run import add_timeline, cli, publish
from join_world import REGION

from swarmkeeper_cli import aws
from swarmkeeper_cli.errors import Exit


@pytest.fixture
def timeline(world):
    add_timeline()


# --- status -----------------------------------------------------------------------------------------


def test_status_of_a_healthy_cluster(world, cluster):
    # Given three joined managers and a worker, and a reconcile pass that saw them all ready
    managers, _, nodes = cluster

    # When the operator asks for the status
    result = cli("status", clock=world.clock)

    # Then it says so, names the leader, the quorum margin and the last pass, and exits 0
    assert result.code == Exit.OK, result.err
    assert "managers   3 ready, 0 down of 3; leader" in result.out
    assert "workers    1 up, 0 down of 1" in result.out
    assert "quorum     3 of 3 managers reachable, 2 needed: margin 1" in result.out
    assert "operations 0 in flight" in result.out
    assert "reconcile  last pass" in result.out and "none in flight" in result.out
    leader = cli("--json", "status", clock=world.clock).json["leader"]
    assert leader["instanceId"] in managers and leader["nodeId"] == nodes[leader["instanceId"]]


def test_status_json_carries_the_counts(world, cluster):
    # Given a cluster seen by a reconcile pass
    # When the status is asked for as JSON
    data = cli("status", "--json", clock=world.clock).json

    # Then scripts get the same facts
    assert data["quorum"] == {"managers": 3, "reachable": 3, "majority": 2, "margin": 1, "hasQuorum": True}
    assert data["managers"]["ready"] == 3 and data["workers"] == {"total": 1, "down": 0}
    assert data["healthy"] is True and data["reconcile"]["lastPassAgeSeconds"] is not None


def test_status_of_a_cluster_with_a_manager_down_is_degraded(world, cluster):
    # Given a reconcile pass that saw one manager down and unreachable
    managers, _, nodes = cluster
    world.reconcile_pass(overrides={nodes[managers[2]]: ("down", "unreachable")})

    # When the status is asked for
    result = cli("status", clock=world.clock)

    # Then the margin is 0 and the exit code says degraded
    assert result.code == Exit.DEGRADED
    assert "2 ready, 1 down of 3" in result.out and "margin 0" in result.out


def test_status_with_a_manager_unreachable_is_degraded(world, cluster):
    # Given a pass that saw a manager ready as a node but unreachable in raft: no node down
    managers, _, nodes = cluster
    world.reconcile_pass(overrides={nodes[managers[2]]: ("ready", "unreachable")})

    # When / Then: one more loss loses quorum
    result = cli("status", clock=world.clock)
    assert result.code == Exit.DEGRADED
    assert (
        "3 ready, 0 down of 3" in result.out and "2 of 3 managers reachable, 2 needed: margin 0" in result.out
    )


def test_status_with_a_worker_down_is_degraded(world, cluster):
    # Given a pass that saw the worker down
    _, workers, nodes = cluster
    world.reconcile_pass(overrides={nodes[workers[0]]: ("down", "-")})

    # When / Then
    result = cli("status", clock=world.clock)
    assert result.code == Exit.DEGRADED and "0 up, 1 down of 1" in result.out


def test_status_before_any_reconcile_pass(world, manager):
    # Given a joined manager but no finished reconcile pass
    # When the status is asked for
    result = cli("status", clock=world.clock)

    # Then it says there is no view yet, and that is not healthy
    assert result.code == Exit.DEGRADED
    assert "no swarm view yet" in result.out


def test_status_lists_the_operations_in_flight(world, cluster):
    # Given a worker whose join has started and waits for its bootstrap
    (joining,) = world.workers(1)
    world.lifecycle(joining)
    world.clock.advance(42)

    # When the status is asked for
    result = cli("status", clock=world.clock)

    # Then the join is listed with its stage and age
    assert "operations 1 in flight" in result.out
    (line,) = [line for line in result.lines if joining in line]
    assert "join" in line and "worker" in line and "42s" in line
    assert result.code == Exit.OK  # the swarm itself is healthy


def test_status_shows_a_reconcile_pass_in_flight(world, cluster):
    # Given a reconcile pass whose describe-swarm has not answered yet
    world.invoke("reconcile", {"id": "cli-test-pass"})

    # When / Then
    result = cli("status", clock=world.clock)
    assert "describe-swarm on i-" in result.out and "in flight" in result.out


# --- nodes ------------------------------------------------------------------------------------------


def test_nodes_lists_every_instance_with_its_state(world, cluster):
    # Given the cluster and a worker on its way in
    managers, workers, nodes = cluster
    (joining,) = world.workers(1)
    world.lifecycle(joining)

    # When the nodes are listed
    result = cli("nodes", clock=world.clock)

    # Then one line per instance, managers first, with zone, type, role, state and node id
    assert result.code == Exit.OK
    header, *rows = result.lines
    assert header.split() == ["INSTANCE", "AZ", "TYPE", "LIFECYCLE", "ROLE", "STATE", "ASG", "NODE", "LABELS"]
    assert [row.split()[0] for row in rows] == sorted(managers) + sorted([*workers, joining])
    by_instance = {row.split()[0]: row.split() for row in rows}
    assert by_instance[workers[0]][1:6] == [f"{REGION}a", "t3.small", "on-demand", "worker", "ready"]
    assert by_instance[workers[0]][7] == nodes[workers[0]][:12]
    assert by_instance[joining][5].startswith("joining:") and by_instance[joining][7] == "-"
    assert sorted(row[5] for i, row in by_instance.items() if i in managers) == [
        "ready:leader",
        "ready:reachable",
        "ready:reachable",
    ]


def test_nodes_json_carries_the_labels_of_joined_nodes(world, cluster):
    # Given the cluster
    _, workers, _ = cluster

    # When the nodes are listed as JSON
    rows = {row["instanceId"]: row for row in cli("nodes", "--json", clock=world.clock).json["nodes"]}

    # Then a joined node carries the labels its join gave it
    assert rows[workers[0]]["labels"] == {
        "swarmkeeper.az": f"{REGION}a",
        "swarmkeeper.instance-type": "t3.small",
        "swarmkeeper.lifecycle": "on-demand",
        "swarmkeeper.role": "worker",
    }
    assert rows[workers[0]]["autoScaling"] == "InService"


def test_nodes_of_a_node_seen_down(world, cluster):
    # Given a pass that saw the worker down
    _, workers, nodes = cluster
    world.reconcile_pass(overrides={nodes[workers[0]]: ("down", "-")})

    # When / Then
    rows = {row["instanceId"]: row for row in cli("nodes", "--json", clock=world.clock).json["nodes"]}
    assert rows[workers[0]]["state"] == "down"


# --- events -----------------------------------------------------------------------------------------


def test_events_show_the_timeline_the_handlers_published(world, timeline, cluster):
    # Given a cluster joined by the real handlers, their events written to the timeline log group
    _, workers, _ = cluster

    # When the operator reads the timeline
    result = cli("events", clock=time.time)

    # Then the joins are there, in order, one line each
    assert result.code == Exit.OK, result.err
    joined = [line for line in result.lines if "Node Joined" in line]
    assert len(joined) == 4
    types = [line.split("  ")[1].strip() for line in result.lines]
    assert types[:2] == ["Node Join Started", "Swarm Initialized"]
    assert any(workers[0] in line and "(worker)" in line for line in joined)


def test_events_filtered_by_instance_type_node_and_correlation(world, timeline, cluster):
    # Given the cluster's timeline
    _, workers, nodes = cluster
    worker = workers[0]

    # When it is filtered by instance, then by detail-type, by node id prefix and by correlation id
    by_instance = cli("events", "--json", "--instance", worker, clock=time.time).lines
    by_type = cli("events", "--type", "node joined", clock=time.time).lines
    by_node = cli("events", "--node", nodes[worker][:6], clock=time.time).lines
    joined = next(e for e in map(_json, by_instance) if e["detail-type"] == "Node Joined")
    correlation = joined["detail"]["correlationId"]
    by_correlation = [
        _json(line) for line in cli("events", "--json", "--correlation", correlation, clock=time.time).lines
    ]

    # Then each keeps exactly what matches
    assert {_json(line)["detail"]["instanceId"] for line in by_instance} == {worker}
    assert len(by_type) == 4 and all("Node Joined" in line for line in by_type)
    assert by_node and all(worker in line for line in by_node)
    assert by_correlation and all(e["detail"]["correlationId"] == correlation for e in by_correlation)
    assert {e["detail"]["instanceId"] for e in by_correlation} == {worker}


def test_events_of_an_instance_are_about_it_not_only_naming_it(world, timeline):
    # Given an event about one instance and another whose reason names it
    publish("Node Joined", instanceId="i-00000001")
    publish("Node Removed", instanceId="i-00000002", reason="replaced i-00000001's neighbour")

    # When / Then
    lines = cli("events", "--instance", "i-00000001", clock=time.time).lines
    assert len(lines) == 1 and "Node Joined" in lines[0]


def test_events_since_and_limit(world, timeline):
    # Given three events on the timeline
    for n in range(3):
        publish("Node Joined", instanceId=f"i-0000000{n}")

    # When only the last two are asked for, or only events from an hour in the future
    last_two = cli("events", "--limit", "2", clock=time.time).lines
    future = cli("events", "--since", "2h", clock=lambda: time.time() + 7200)

    # Then
    assert [line.split()[3] for line in last_two] == ["i-00000001", "i-00000002"]
    assert future.code == Exit.OK and future.out == "" and "no events matched" in future.err


def test_events_follow_prints_new_events_until_interrupted(world, timeline):
    # Given one event, and another that arrives while the operator follows the timeline
    publish("Node Joined", instanceId="i-00000001")
    polls = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            publish("Node Removed", instanceId="i-00000002")
        elif len(polls) == 3:
            raise KeyboardInterrupt

    # When the operator follows, then presses Ctrl-C
    result = cli("events", "--follow", clock=time.time, sleep=sleep)

    # Then each event is printed once, in order, and the follow ends cleanly
    assert result.code == Exit.OK
    assert [line.split()[1:3] for line in result.lines] == [["Node", "Joined"], ["Node", "Removed"]]
    assert "following the timeline" in result.err


def test_events_since_that_is_not_a_time_is_a_usage_error(world, timeline):
    result = cli("events", "--since", "yesterday-ish", clock=time.time)
    assert result.code == Exit.USAGE and "--since" in result.err


def test_events_without_the_timeline_log_group(world):
    # Given a region without the cluster's timeline
    # When / Then: the cluster is not there, said in one line
    result = cli("events", clock=time.time)
    assert result.code == Exit.NO_CLUSTER
    assert result.err.count("\n") == 1 and "cluster demo not found" in result.err


# --- what is missing --------------------------------------------------------------------------------


def test_no_cluster_named(world):
    result = cli("status", cluster=None)
    assert result.code == Exit.USAGE
    assert result.err == "swarmkeeper: error: no cluster: pass --cluster NAME or set SWARMKEEPER_CLUSTER\n"


def test_the_cluster_from_the_environment(world, cluster, monkeypatch):
    monkeypatch.setenv("SWARMKEEPER_CLUSTER", "demo")
    assert cli("status", cluster=None, clock=world.clock).code == Exit.OK


def test_a_cluster_name_that_cannot_be_one(world):
    result = cli("status", cluster="Demo;rm")
    assert result.code == Exit.USAGE and "is not a cluster name" in result.err


def test_a_cluster_that_is_not_there(world):
    # Given a region where no cluster "other" was deployed
    result = cli("status", cluster="other")

    # Then one line names it, no traceback
    assert result.code == Exit.NO_CLUSTER
    assert result.err.startswith("swarmkeeper: error: cluster other not found in us-east-1")
    assert "Traceback" not in result.err and result.err.count("\n") == 1


def test_no_region(world, monkeypatch):
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = cli("status")
    assert result.code == Exit.AWS and "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)" in result.err


def test_no_credentials(world, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = cli("status")
    assert result.code == Exit.AWS and "no AWS credentials" in result.err


def test_credentials_aws_refuses_are_an_aws_error_not_a_missing_cluster():
    # Given AWS's answer to credentials it does not take
    err = ClientError({"Error": {"Code": "ExpiredToken", "Message": "token expired"}}, "GetItem")

    # When it is explained / Then it is an AWS problem, not a missing cluster
    explained = aws.explain(err, "demo", REGION)
    assert explained.code == Exit.AWS and "ExpiredToken" in str(explained)


def test_an_unknown_verb(world):
    result = cli("explode")
    assert result.code == Exit.USAGE and result.err.count("\n") == 1


def test_the_region_flag_wins(world, cluster):
    # Given the cluster in us-east-1 / When another region is named / Then the cluster is not there
    result = cli("--region", "eu-west-3", "status")
    assert result.code == Exit.NO_CLUSTER and "eu-west-3" in result.err


def _json(line: str) -> Any:
    return json.loads(line)
