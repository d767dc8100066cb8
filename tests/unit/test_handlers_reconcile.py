"""Handler-level tests of reconcile and alarms: describe-swarm on a healthy manager, the
plan carried out, metrics and quorum alerts, the 1,000-node pass through S3. Given / When / Then."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from join_world import CLUSTER, ENV, REGION, load_event


@pytest.fixture
def cluster(world):
    managers = world.managers(3)
    workers = world.workers(2)
    nodes = {i: world.join(i) for i in managers + workers}
    return managers, workers, nodes


class AwsTime:
    """Seconds spent inside API calls (request sent to response parsed), measured by botocore hooks."""

    def __init__(self):
        from swarmkeeper import runtime

        self.seconds = 0.0
        self._started: float | None = None
        clients = runtime._runtime.clients  # the clients the handlers use (created by now)
        for name in ("ec2", "ssm", "dynamodb", "s3", "events", "autoscaling", "sqs"):
            events = getattr(clients, name).meta.events
            events.register_first("before-call", self._before)
            events.register_last("after-call", self._after)

    def _before(self, **_):
        self._started = time.perf_counter()

    def _after(self, **_):
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None


def emf(world) -> dict[str, float]:
    """The last value of each metric swarmkeeper printed (CloudWatch EMF lines)."""
    values = {}
    for line in world.output().splitlines():
        if '"_aws"' in line:
            doc = json.loads(line)
            for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = doc[metric["Name"]]
                values[metric["Name"]] = value[-1] if isinstance(value, list) else value
                assert doc["Cluster"] == CLUSTER
    return values


def test_scheduled_reconcile_describes_from_a_manager_and_publishes_metrics(world, cluster):
    managers, _workers, _nodes = cluster

    # When the schedule fires and describe-swarm answers
    result = world.reconcile_pass()

    # Then it ran on a joined manager with the output bucket set, and the view and metrics are in
    (describe,) = world.sent("describe-swarm")
    assert describe.instance_id in managers
    (call,) = world.fakes.calls_to("SendCommand")[-1:]
    assert call["OutputS3BucketName"] == ENV["COMMAND_OUTPUT_BUCKET"]
    assert result["outcome"] == "reconciled"
    published = emf(world)
    assert {k: published[k] for k in ("NodesReady", "NodesDown", "ManagersReachable", "QuorumMargin")} == {
        "NodesReady": 5,
        "NodesDown": 0,
        "ManagersReachable": 3,
        "QuorumMargin": 1,
    }
    view = next(i for i in world.items() if i["pk"] == "view#cluster")
    assert len(view["managers"]) == 3 and set(view["manager_instances"].values()) == set(managers)
    assert not any(i["pk"] == "op#reconcile" for i in world.items())


def test_reconcile_removes_a_ghost_whose_instance_is_gone(world, cluster):
    # Given a worker whose instance vanished without any event reaching swarmkeeper
    managers, workers, nodes = cluster
    w = workers[0]
    world.ec2.terminate_instances(InstanceIds=[w])

    # When a reconcile pass sees its node Down
    world.reconcile_pass(overrides={nodes[w]: ("down", "-")})

    # Then remove-node runs from a Reachable manager of the view, and on success Dead Node Removed
    (remove,) = world.commands_for("remove-node", nodes[w])
    assert remove.instance_id in managers
    world.finish(remove, stdout=f"node-id={nodes[w]} removed=true\n")
    (event,) = world.published("Dead Node Removed")
    assert event["nodeId"] == nodes[w] and event["instanceId"] == w and event["role"] == "worker"
    assert emf(world)["NodesDown"] == 1


def test_quorum_lost_does_nothing_destructive_and_tells_the_runbook(world, cluster):
    # Given two of three managers unreachable, one of them with its instance gone
    managers, _workers, nodes = cluster
    world.ec2.terminate_instances(InstanceIds=[managers[1]])
    lost = {nodes[managers[1]]: ("down", "unreachable"), nodes[managers[2]]: ("down", "unreachable")}

    # When a reconcile pass sees it
    world.reconcile_pass(overrides=lost)

    # Then nothing is removed, demoted or marked, and Quorum Lost carries the operator's runbook
    assert world.sent("remove-node") == []
    assert world.fakes.calls_to("SetInstanceHealth") == []
    (event,) = world.published("Quorum Lost")
    assert "--force-new-cluster" in event["reason"] and "never automatic" in event["reason"]
    assert emf(world)["QuorumMargin"] == -1


def test_node_down_while_its_instance_runs_is_marked_unhealthy_after_the_grace(world, cluster):
    # Given a worker whose dockerd crashed: its node is Down, its instance runs
    _managers, workers, nodes = cluster
    w = workers[1]
    down = {nodes[w]: ("down", "-")}

    # When reconcile sees it Down now, and again past the grace period
    world.reconcile_pass(overrides=down)
    assert world.fakes.calls_to("SetInstanceHealth") == []
    world.clock.advance(11 * 60)
    world.reconcile_pass(overrides=down)

    # Then its instance is marked Unhealthy (replaced through the graceful path), nothing removed
    (mark,) = world.fakes.calls_to("SetInstanceHealth")
    assert mark["InstanceId"] == w and mark["HealthStatus"] == "Unhealthy"
    assert world.sent("remove-node") == []


UNREADABLE_WORKER = "0123456789abcdefghijklmno worker ready active - not-an-address host-x"
UNREADABLE_MANAGER = "zyxwvutsrqponmlkjihgfedcb manager ready active unknown 10.0.9.9 host-y"


def test_a_worker_line_that_does_not_read_is_skipped_and_the_pass_goes_on(world, cluster, caplog):
    # Given a ghost worker whose instance is gone, and a worker line describe-swarm printed that
    # does not read
    managers, workers, nodes = cluster
    w = workers[0]
    world.ec2.terminate_instances(InstanceIds=[w])

    # When a reconcile pass reads the listing
    result = world.reconcile_pass(overrides={nodes[w]: ("down", "-")}, extra=(UNREADABLE_WORKER,))

    # Then the pass is carried out (the ghost is removed), and the skipped line is reported
    assert result["outcome"] == "reconciled", result
    assert [c.instance_id in managers for c in world.commands_for("remove-node", nodes[w])] == [True]
    (warning,) = [r for r in caplog.records if r.getMessage() == "describe-swarm line skipped"]
    assert warning.levelname == "WARNING"
    assert "line 6: node 0123456789abcdefghijklmno: address is not an IP address" in warning.reason


def test_a_line_that_may_be_a_manager_stops_the_pass(world, cluster):
    # Given a ghost worker whose instance is gone, and a manager line that does not read (a manager
    # status describe-swarm does not know): the quorum guards would count one manager short
    _managers, workers, nodes = cluster
    w = workers[0]
    world.ec2.terminate_instances(InstanceIds=[w])

    # When a reconcile pass reads the listing
    result = world.reconcile_pass(overrides={nodes[w]: ("down", "-")}, extra=(UNREADABLE_MANAGER,))

    # Then nothing is acted on and no view is saved; the pass is tried on another manager
    assert result["outcome"] == "reconcile", result
    assert "a manager may be missing from the listing: describe-swarm output line 6" in result["reason"]
    assert world.sent("remove-node") == []
    assert not any(i["pk"] == "view#cluster" for i in world.items())
    assert len(world.sent("describe-swarm")) == 2


def test_failed_describe_is_retried_on_another_manager(world, cluster):
    # Given a reconcile whose manager fails the command (it died)
    managers, _workers, _nodes = cluster
    world.reconcile_pass()  # a view exists: the next pass picks from it
    world.invoke("reconcile", load_event("scheduled-event"))
    first = world.sent("describe-swarm")[-1]

    # When it fails, then the pass is re-sent to another manager
    world.finish(first, status="Undeliverable")
    second = world.sent("describe-swarm")[-1]
    assert second.instance_id != first.instance_id and second.instance_id in managers
    assert world.answer_describe()["outcome"] == "reconciled"


def test_one_pass_at_a_time(world, cluster):
    assert world.invoke("reconcile", load_event("scheduled-event"))["outcome"] == "reconcile"
    assert world.invoke("reconcile", {})["outcome"] == "ignore"
    assert len(world.sent("describe-swarm")) == 1


def test_alarm_starts_a_reconcile_and_tells_operators(world, cluster):
    # When the stack's nodes-down alarm goes to ALARM
    result = world.invoke("alarm", load_event("cloudwatch-alarm-state-change"))

    # Then Alarm Raised is published and describe-swarm is sent at once
    assert result["outcome"] == "alarm"
    (event,) = world.published("Alarm Raised")
    assert "swarmkeeper-demo-nodes-down" in event["reason"]
    assert len(world.sent("describe-swarm")) == 1


@pytest.mark.parametrize(
    ("name", "state"), [("swarmkeeper-demo-nodes-down", "OK"), ("someone-else", "ALARM")]
)
def test_other_alarm_changes_are_ignored(world, cluster, name, state):
    event = load_event("cloudwatch-alarm-state-change", alarmName=name, state={"value": state})
    assert world.invoke("alarm", event)["outcome"] == "ignore"
    assert world.sent("describe-swarm") == [] and world.published("Alarm Raised") == []


WORKER_TAGS = [
    {"Key": "swarmkeeper:cluster", "Value": CLUSTER},
    {"Key": "swarmkeeper:role", "Value": "worker"},
    {"Key": "aws:autoscaling:groupName", "Value": f"swarmkeeper-{CLUSTER}-workers"},
]


def test_reconcile_of_1000_nodes_is_one_pass_with_few_calls(world):
    # Given a cluster of 3 managers and 997 workers (tagged instances), 5 of them gone
    managers = world.managers(3)
    nodes = {m: world.join(m) for m in managers}
    workers = []
    for count in [100] * 9 + [97]:  # ten launches (reservations): DescribeInstances pages over them
        r = world.ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=count,
            MaxCount=count,
            InstanceType="t3.small",
            TagSpecifications=[{"ResourceType": "instance", "Tags": WORKER_TAGS}],
        )
        workers.extend(r["Instances"])
    gone = [w["InstanceId"] for w in workers[:5]]
    world.ec2.terminate_instances(InstanceIds=gone)
    lines = []
    for m in managers:
        status = "leader" if m == managers[0] else "reachable"
        lines.append(f"{nodes[m]} manager ready active {status} {world.private_ip(m)} host-{m}")
    for w in workers:
        state = "down" if w["InstanceId"] in gone else "ready"
        node_id, ip = secrets.token_hex(13)[:25], w["PrivateIpAddress"]
        lines.append(f"{node_id} worker {state} active - {ip} h-{w['InstanceId']}")
    stdout = "\n".join([*lines, f"nodes={len(lines)}"]) + "\n"
    assert len(stdout) > 24_000

    # When the schedule fires, and describe-swarm's output lands in S3 (Run Command keeps 24,000)
    world.invoke("reconcile", load_event("scheduled-event"))
    describe = world.sent("describe-swarm")[-1]
    plugin = "awsrunShellScript/0.awsrunShellScript/stdout"
    key = f"describe-swarm/{describe.command_id}/{describe.instance_id}/{plugin}"
    world.s3.put_object(Bucket=ENV["COMMAND_OUTPUT_BUCKET"], Key=key, Body=stdout.encode())
    url = f"https://s3.{REGION}.amazonaws.com/{ENV['COMMAND_OUTPUT_BUCKET']}/{key}"
    calls = len(world.fakes.calls)
    began = time.perf_counter()
    aws = AwsTime()
    result = world.finish(describe, stdout=stdout[:24_000], stdout_url=url)
    elapsed = time.perf_counter() - began
    own = elapsed - aws.seconds  # minus the emulated AWS side (moto serializing 1,000 instances)

    # Then one pass read it all: 1,000 nodes, the 5 dead ones removed, few API calls
    ops = [op for _, op, _ in world.fakes.calls[calls:]]
    assert result["outcome"] == "reconciled" and result["reason"].startswith("1000 nodes, 5 down")
    assert len(world.sent("remove-node")) == 5
    assert ops.count("GetObject") == 1 and ops.count("DescribeInstances") <= 2 and ops.count("Scan") <= 2
    assert len(ops) < 25, ops
    assert own < 3, (own, elapsed)
    assert emf(world)["NodesReady"] == 995
    print(
        f"1,000-node pass: {len(ops)} API calls {sorted(set(ops))}, own time {own:.2f}s, total {elapsed:.2f}s"
    )
