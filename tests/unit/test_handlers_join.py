"""Handler-level tests of the join flow: events in through the real handlers, moto and
wire-level fakes behind them. Each test reads Given / When / Then."""

from __future__ import annotations

import json

import pytest
from join_world import AGENT_WAIT, CLUSTER, SWARM_ID, TABLE, WORKERS, load_event

from swarmkeeper.domain.errors import MalformedEvent


def test_first_manager_initializes_and_joins(world):
    # Given an empty cluster and a manager launching
    (m,) = world.managers(1)

    # When its launch lifecycle action arrives
    world.lifecycle(m)

    # Then it takes the init lock and gets bootstrap-node in init mode
    (boot,) = world.sent("bootstrap-node")
    assert boot.instance_id == m
    assert boot.parameters["Mode"] == "init"
    assert boot.parameters["Role"] == "manager"
    assert boot.parameters["AdvertiseAddress"] == world.private_ip(m)
    assert world.lock()["holder"] == m

    # When bootstrap succeeds, then verify-node runs on the manager itself and the lock is released
    node_id = world.bootstrap_succeeds(boot)
    (verify,) = world.sent("verify-node")
    assert verify.instance_id == m
    described = world.ec2.describe_instances(InstanceIds=[m])["Reservations"][0]["Instances"][0]
    assert verify.parameters == {
        "NodeId": node_id,
        "Role": "manager",
        "AvailabilityZone": described["Placement"]["AvailabilityZone"],
        "InstanceType": described["InstanceType"],
        "Lifecycle": "on-demand",
        "TimeoutSeconds": "60",
    }
    assert world.lock() is None

    # When verify succeeds
    world.verify_succeeds(verify)

    # Then the lifecycle action continues, the node id is recorded, events tell the story
    assert world.fakes.lifecycle_results[m] == ["CONTINUE"]
    assert world.tags(m)["swarmkeeper:node-id"] == node_id
    node = next(i for i in world.items() if i["pk"] == f"node#{m}")
    assert node["node_id"] == node_id and node["role"] == "manager"
    events = world.published()
    assert [e["detail-type"] for e in events] == ["Node Join Started", "Swarm Initialized", "Node Joined"]
    lifecycle_event_id = world.fakes.calls_to("PutEvents") and events[0]["correlationId"]
    assert all(e["cluster"] == CLUSTER and e["instanceId"] == m and e["role"] == "manager" for e in events)
    assert all(e["correlationId"] == lifecycle_event_id for e in events)
    assert events[-1]["nodeId"] == node_id
    assert world.in_flight() == []


def test_worker_joins_and_is_verified_by_a_joined_manager(world, manager):
    # Given a cluster with a joined manager, and a worker launching
    (w,) = world.workers(1)

    # When the worker's launch event arrives and its bootstrap succeeds
    world.lifecycle(w)
    (boot,) = [s for s in world.sent("bootstrap-node") if s.instance_id == w]
    node_id = world.bootstrap_succeeds(boot)

    # Then it joined (not init) and verify-node runs on the manager
    assert boot.parameters["Mode"] == "join" and boot.parameters["Role"] == "worker"
    (verify,) = [s for s in world.sent("verify-node") if s.parameters["NodeId"] == node_id]
    assert verify.instance_id == manager

    # When verify succeeds, then the worker goes InService with its node id
    world.verify_succeeds(verify)
    assert world.fakes.lifecycle_results[w] == ["CONTINUE"]
    assert world.tags(w)["swarmkeeper:node-id"] == node_id
    assert world.published("Node Joined")[-1]["instanceId"] == w
    assert world.in_flight() == []


def test_worker_waits_for_the_cluster_then_joins(world):
    # Given a worker launching before any manager
    (w,) = world.workers(1)

    # When its launch event arrives
    world.lifecycle(w)

    # Then no command is sent; a delayed step is queued instead (no sleeping Lambda)
    assert world.sent() == []
    (step,) = world.steps_sent()
    assert 1 <= step["DelaySeconds"] <= 900

    # When a manager initializes the cluster and the worker's steps come due
    (m,) = world.managers(1)
    world.lifecycle(m)
    node_id = world.bootstrap_succeeds(world.sent("bootstrap-node")[0])
    world.verify_succeeds(world.sent("verify-node")[0])
    assert world.tags(m)["swarmkeeper:node-id"] == node_id
    world.settle()

    # Then the worker is bootstrapped in join mode
    assert [s.parameters["Mode"] for s in world.sent("bootstrap-node") if s.instance_id == w] == ["join"]


def test_swarm_init_wakes_the_worker_waiting_for_the_cluster(world):
    # Given a worker whose launch event came before any manager: it waits on a delayed step
    (w,) = world.workers(1)
    world.lifecycle(w)
    (backoff,) = world.steps_sent()

    # When a manager initializes the swarm
    (m,) = world.managers(1)
    world.lifecycle(m)
    world.bootstrap_succeeds(world.sent("bootstrap-node")[0])

    # Then the worker gets a step due now (not at its backoff), which bootstraps it in join mode
    woken = [s for s in world.steps_sent()[1:] if w in s["MessageBody"]]
    assert [s.get("DelaySeconds", 0) for s in woken] == [0] and backoff["DelaySeconds"] > 0
    world.deliver_steps()
    assert [s.parameters["Mode"] for s in world.sent("bootstrap-node") if s.instance_id == w] == ["join"]


def test_manager_joined_wakes_the_worker_awaiting_a_verifier(world):
    # Given a worker bootstrapped while the only manager was still verifying itself
    (w,) = world.workers(1)
    (m,) = world.managers(1)
    world.lifecycle(m)
    world.bootstrap_succeeds(world.sent("bootstrap-node")[0])
    world.lifecycle(w)
    world.settle()
    (boot,) = [s for s in world.sent("bootstrap-node") if s.instance_id == w]
    world.bootstrap_succeeds(boot)
    assert world.op(w)["stage"] == "awaiting-verifier"
    before = len(world.steps_sent())

    # When the manager's own verify-node succeeds (it joined)
    (verify_m,) = world.sent("verify-node")
    world.verify_succeeds(verify_m)

    # Then the worker gets a step due now, which sends its verify-node to that manager
    woken = [s for s in world.steps_sent()[before:] if w in s["MessageBody"]]
    assert [s.get("DelaySeconds", 0) for s in woken] == [0]
    world.deliver_steps()
    assert [s.instance_id for s in world.sent("verify-node")][-1] == m


def test_same_lifecycle_event_twice_starts_one_join(world, manager):
    # Given a worker whose launch event is delivered twice (same event id)
    (w,) = world.workers(1)
    event_id = "aaaaaaaa-0000-4000-8000-000000000001"

    # When both deliveries arrive
    first = world.lifecycle(w, event_id=event_id)
    second = world.lifecycle(w, event_id=event_id)

    # Then one bootstrap command and one Node Join Started
    assert first == second
    assert len([s for s in world.sent("bootstrap-node") if s.instance_id == w]) == 1
    assert len([e for e in world.published("Node Join Started") if e["instanceId"] == w]) == 1


def test_redelivered_lifecycle_event_with_a_new_id_starts_one_join(world, manager):
    # Given a worker whose join is in flight
    (w,) = world.workers(1)
    world.lifecycle(w)

    # When another launch event for it arrives (different id)
    result = world.lifecycle(w)

    # Then it is ignored: the op's conditional put already exists
    assert result["outcome"] == "ignore"
    assert len([s for s in world.sent("bootstrap-node") if s.instance_id == w]) == 1


@pytest.mark.parametrize("first", ["lifecycle", "running"])
def test_running_event_racing_the_lifecycle_event_starts_one_join(world, manager, first):
    # Given a worker launching
    (w,) = world.workers(1)

    # When its running state change and its launch lifecycle action both arrive, in either order
    if first == "lifecycle":
        world.lifecycle(w)
        world.running(w)
    else:
        world.running(w)
        world.lifecycle(w)

    # Then exactly one join runs, and it still completes the pending lifecycle action
    (boot,) = [s for s in world.sent("bootstrap-node") if s.instance_id == w]
    node_id = world.bootstrap_succeeds(boot)
    (verify,) = [s for s in world.sent("verify-node") if s.parameters["NodeId"] == node_id]
    world.verify_succeeds(verify)
    assert world.fakes.lifecycle_results[w] == ["CONTINUE"]
    assert len(world.published("Node Joined")) == 2  # the manager's and this worker's


def test_running_fallback_joins_an_instance_without_a_lifecycle_action(world, manager):
    # Given a worker whose launch lifecycle event was lost and whose hook is no longer pending
    (w,) = world.workers(1)
    world.fakes.pending_lifecycle.discard(w)

    # When only its running event arrives and the join succeeds
    world.running(w)
    (boot,) = [s for s in world.sent("bootstrap-node") if s.instance_id == w]
    node_id = world.bootstrap_succeeds(boot)
    (verify,) = [s for s in world.sent("verify-node") if s.parameters["NodeId"] == node_id]
    world.verify_succeeds(verify)

    # Then "no pending action" is nothing to complete, and the node is joined
    assert w not in world.fakes.lifecycle_results
    assert world.tags(w)["swarmkeeper:node-id"] == node_id
    assert world.in_flight() == []


def test_three_managers_at_once_one_swarm_init(world):
    # Given three managers launching in the same second into an empty cluster
    managers = world.managers(3)

    # When their launch events arrive (and each is delivered twice)
    for m in managers + managers:
        world.lifecycle(m)

    # Then exactly one swarm init is sent; the other two wait
    (init,) = world.sent("bootstrap-node")
    assert init.parameters["Mode"] == "init"
    assert world.lock()["holder"] == init.instance_id

    # When the init succeeds and the waiting steps come due
    first_node = world.bootstrap_succeeds(init)
    world.verify_succeeds(world.sent("verify-node")[0])
    world.settle()

    # Then the other two join as managers
    joins = [s for s in world.sent("bootstrap-node") if s.instance_id != init.instance_id]
    assert sorted(s.instance_id for s in joins) == sorted(set(managers) - {init.instance_id})
    assert {(s.parameters["Mode"], s.parameters["Role"]) for s in joins} == {("join", "manager")}
    for boot in joins:
        node_id = world.bootstrap_succeeds(boot)
        world.verify_succeeds(next(s for s in world.sent("verify-node") if s.parameters["NodeId"] == node_id))
    assert len(world.published("Swarm Initialized")) == 1
    assert world.published("Swarm Initialized")[0]["nodeId"] == first_node
    assert len(world.published("Node Joined")) == 3
    assert [s.parameters["Mode"] for s in world.sent("bootstrap-node")].count("init") == 1
    assert world.in_flight() == []


def test_lock_holder_dies_mid_init_and_the_cluster_still_initializes(world):
    # Given manager A took the init lock and started swarm init, then died
    a, b = world.managers(2)
    world.lifecycle(a)
    (init_a,) = world.sent("bootstrap-node")
    assert init_a.parameters["Mode"] == "init"
    world.terminate(a)
    lock_expiry = world.lock()["expires_at"]

    # When manager B launches, it waits behind A's lock
    world.lifecycle(b)
    assert [s.instance_id for s in world.sent("bootstrap-node")] == [a]

    # When B's steps come due until A's lock has expired
    world.settle()

    # Then B took the lock after it expired and ran swarm init
    init_b = [s for s in world.sent("bootstrap-node") if s.instance_id == b]
    assert [s.parameters["Mode"] for s in init_b] == ["init"]
    assert world.clock.now >= lock_expiry
    assert world.lock()["holder"] == b

    # When A's command finally times out, then A's join fails without touching B's lock
    world.finish(init_a, status="TimedOut")
    assert world.lock()["holder"] == b
    assert world.published("Node Join Failed")[-1]["instanceId"] == a

    # And B completes the cluster
    node_id = world.bootstrap_succeeds(init_b[0])
    world.verify_succeeds(next(s for s in world.sent("verify-node") if s.parameters["NodeId"] == node_id))
    assert world.fakes.lifecycle_results[b] == ["CONTINUE"]
    assert world.in_flight() == []


def test_agent_never_registers_abandons_within_the_bound(world, manager):
    # Given a worker whose SSM agent never registers
    (w,) = world.workers(1)
    world.fakes.unregistered_agents.add(w)
    started = world.clock.now

    # When its launch event arrives and every delayed step comes due
    world.lifecycle(w)
    world.settle()

    # Then the lifecycle action is abandoned within the bound, with a Node Join Failed event
    assert world.fakes.lifecycle_results[w] == ["ABANDON"]
    assert world.clock.now - started <= AGENT_WAIT
    (failed,) = world.published("Node Join Failed")
    assert failed["instanceId"] == w and "SSM agent" in failed["reason"]
    assert failed["correlationId"] == world.published("Node Join Started")[-1]["correlationId"]

    # And nothing is left in flight, no step is pending, no command reached the instance
    assert world.in_flight() == []
    assert world.deliver_steps() == []
    assert [s for s in world.sent() if s.instance_id == w] == []
    delays = [m["DelaySeconds"] for m in world.steps_sent()]
    assert delays == sorted(delays) or max(delays) <= 120  # backoff grows, capped


@pytest.mark.parametrize("status", ["Failed", "TimedOut", "Cancelled"])
def test_bootstrap_failure_abandons_and_publishes(world, manager, status):
    # Given a worker being bootstrapped
    (w,) = world.workers(1)
    world.lifecycle(w)
    (boot,) = [s for s in world.sent("bootstrap-node") if s.instance_id == w]

    # When the command ends unsuccessfully
    world.finish(boot, status=status, stderr="bootstrap-node: dnf install docker failed: no network")

    # Then ABANDON, Node Join Failed with the reason, nothing in flight
    assert world.fakes.lifecycle_results[w] == ["ABANDON"]
    (failed,) = world.published("Node Join Failed")
    assert failed["instanceId"] == w and status in failed["reason"]
    assert world.in_flight() == []


def test_failed_join_of_an_instance_without_pending_action_is_marked_unhealthy(world, manager):
    # Given a worker joining through the running fallback (no lifecycle action pending: InService)
    (w,) = world.workers(1)
    world.fakes.pending_lifecycle.discard(w)
    world.running(w)
    (boot,) = [s for s in world.sent("bootstrap-node") if s.instance_id == w]

    # When its bootstrap fails
    world.finish(boot, status="Failed")

    # Then it does not stay InService: Auto Scaling is told it is unhealthy
    health = world.asg.describe_auto_scaling_instances(InstanceIds=[w])["AutoScalingInstances"][0]
    assert health["HealthStatus"].upper() == "UNHEALTHY"
    assert world.published("Node Join Failed")[-1]["instanceId"] == w


@pytest.mark.parametrize(
    ("status", "stdout"),
    [("Failed", ""), ("TimedOut", ""), ("Success", "node-id={node} state=down role=worker\n")],
)
def test_verify_failure_abandons(world, manager, status, stdout):
    # Given a worker that joined but whose verification goes wrong
    (w,) = world.workers(1)
    world.lifecycle(w)
    node_id = world.bootstrap_succeeds(next(s for s in world.sent("bootstrap-node") if s.instance_id == w))
    verify = next(s for s in world.sent("verify-node") if s.parameters["NodeId"] == node_id)

    # When verify-node ends
    world.finish(verify, status=status, stdout=stdout.format(node=node_id))

    # Then ABANDON and Node Join Failed carrying the node id (for the exit flow to remove it)
    assert world.fakes.lifecycle_results[w] == ["ABANDON"]
    failed = world.published("Node Join Failed")[-1]
    assert failed["instanceId"] == w and failed["nodeId"] == node_id
    assert world.in_flight() == []


def test_join_refused_because_tokens_rotated_is_retried_once(world, manager):
    # Given a worker whose join was refused because the tokens were rotated under it
    (w,) = world.workers(1)
    world.lifecycle(w)
    (first,) = [s for s in world.sent("bootstrap-node") if s.instance_id == w]
    refused = "bootstrap-node: join via 10.0.0.1:2377 refused: A valid join token is necessary to join"

    # When the command fails with that reason
    world.finish(first, status="Failed", stderr=refused)

    # Then bootstrap-node runs again (it reads the new token), without abandoning
    retries = [s for s in world.sent("bootstrap-node") if s.instance_id == w]
    assert len(retries) == 2
    assert w not in world.fakes.lifecycle_results

    # When the retry fails the same way, then the join is abandoned
    world.finish(retries[1], status="Failed", stderr=refused)
    assert world.fakes.lifecycle_results[w] == ["ABANDON"]


def test_stale_command_status_is_ignored(world, manager):
    # Given a worker whose bootstrap was re-sent after a rotated-token refusal
    (w,) = world.workers(1)
    world.lifecycle(w)
    (first,) = [s for s in world.sent("bootstrap-node") if s.instance_id == w]
    world.finish(first, status="Failed", stderr="A valid join token is necessary")

    # When a late duplicate status of the first command arrives
    result = world.finish(first, status="Failed", stderr="A valid join token is necessary")

    # Then it changes nothing
    assert result["outcome"] == "ignore"
    assert w not in world.fakes.lifecycle_results


def test_non_terminal_status_is_ignored_without_calls(world, manager):
    # Given a worker being bootstrapped
    (w,) = world.workers(1)
    world.lifecycle(w)
    boot = next(s for s in world.sent("bootstrap-node") if s.instance_id == w)
    before = len(world.fakes.calls)

    # When an InProgress status arrives
    result = world.finish(boot, status="InProgress")

    # Then it is ignored, and only the idempotency record was written
    assert result["outcome"] == "ignore"
    assert {op for _, op, _ in world.fakes.calls[before:]} <= {"PutItem", "UpdateItem", "GetItem"}


def test_instance_of_another_cluster_is_ignored(world):
    # Given an instance of another cluster's group
    (other,) = world.launch("other-cluster-workers")

    # When its lifecycle and running events reach this cluster's functions
    by_group = world.lifecycle(other, group="other-cluster-workers")
    by_tags = world.running(other)

    # Then both are ignored without raising, and nothing is started
    assert by_group["outcome"] == "ignore" and "not one of cluster" in by_group["reason"]
    assert by_tags["outcome"] == "ignore" and "not a member" in by_tags["reason"]
    assert world.sent() == [] and world.published() == [] and world.in_flight() == []
    assert "ignore" in world.output()


@pytest.mark.parametrize("gone", ["terminated", "missing"])
def test_terminated_or_missing_instance_is_ignored(world, gone):
    # Given a worker that is already terminated, or an instance EC2 does not know
    (w,) = world.workers(1)
    if gone == "terminated":
        world.terminate(w)
    else:
        w = "i-0fffffffffffffff0"

    # When its launch event arrives
    result = world.lifecycle(w, group=WORKERS)

    # Then it is ignored (returns normally: no retry), nothing is started
    assert result["outcome"] == "ignore"
    assert world.sent() == [] and world.published() == [] and world.in_flight() == []


def test_ssm_and_autoscaling_throttling_is_retried(world, manager):
    # Given SSM SendCommand and Auto Scaling CompleteLifecycleAction each throttle once
    (w,) = world.workers(1)
    world.fakes.throttle("ssm", "SendCommand", times=1)

    # When the worker joins
    world.lifecycle(w)
    (boot,) = [s for s in world.sent("bootstrap-node") if s.instance_id == w]
    node_id = world.bootstrap_succeeds(boot)
    world.fakes.throttle("auto-scaling", "CompleteLifecycleAction", times=1)
    world.verify_succeeds(next(s for s in world.sent("verify-node") if s.parameters["NodeId"] == node_id))

    # Then botocore retried both: one command sent, the action completed, no event lost
    assert world.fakes.throttles == {"ssm.SendCommand": 0, "auto-scaling.CompleteLifecycleAction": 0}
    assert world.fakes.lifecycle_results[w] == ["CONTINUE"]
    assert world.published("Node Joined")[-1]["instanceId"] == w


@pytest.mark.parametrize(
    ("handler", "event"),
    [
        (
            "lifecycle_action",
            {"detail-type": "EC2 Instance-launch Lifecycle Action", "id": "x1", "detail": {}},
        ),
        ("instance_state", {"id": "x2", "detail-type": "EC2 Instance State-change Notification"}),
        (
            "command_status",
            {"detail-type": "EC2 Command Invocation Status-change Notification", "detail": {}},
        ),
        ("instance_state", ["not", "an", "event"]),
    ],
)
def test_malformed_event_is_rejected_with_a_clear_log_line(world, handler, event):
    # Given a malformed event
    # When it reaches the handler
    with pytest.raises(MalformedEvent) as raised:
        world.invoke(handler, event)

    # Then it raises (Lambda retries twice, then the DLQ keeps it) and says why in one log line
    out = world.output()
    assert "malformed event rejected" in out and str(raised.value) in out
    assert world.sent() == [] and world.published() == []


def test_malformed_step_message_fails_alone(world, manager):
    # Given a batch with one malformed and one stale-but-valid step message
    event = load_event("unit-sqs-step")
    good = dict(
        event["Records"][0],
        messageId="good",
        body=json.dumps({"kind": "join-step", "instanceId": manager, "version": 99, "correlationId": "c"}),
    )
    bad = dict(event["Records"][0], messageId="bad", body="{not json")

    # When the steps function processes the batch
    result = world.invoke("steps", {"Records": [bad, good]})

    # Then only the malformed one is reported failed (SQS retries it, then its DLQ), with a log line
    assert result == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert "malformed event rejected: step message is not JSON" in world.output()


@pytest.mark.parametrize("state", ["stopping", "stopped", "pending"])
def test_other_state_changes_are_logged_no_ops(world, manager, state):
    # Given a state change other than running (shutting-down / terminated: the exit flow's tests)
    event = load_event("ec2-instance-state-change-notification", **{"instance-id": manager, "state": state})

    # When it arrives, then nothing happens
    assert world.invoke("instance_state", event)["outcome"] == "ignore"
    assert len(world.sent("bootstrap-node")) == 1


def test_no_join_token_is_ever_recorded(world):
    # Given scripts that misbehave and print token-shaped text on every stream
    token = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"
    (m,) = world.managers(1)
    (w1, w2) = world.workers(2)

    # When a manager and a worker join, and another worker fails
    world.lifecycle(m)
    boot = world.sent("bootstrap-node")[0]
    world.ssm.put_parameter(Name="/swarmkeeper/demo/cluster-id", Value=SWARM_ID, Type="String")
    world.finish(
        boot,
        stdout=f"joined with {token}\nnode-id=abcdefghijklmnopqrstuvwxy role=manager cluster-id=x\n",
        stderr=token,
    )
    verify = world.sent("verify-node")[0]
    world.finish(verify, stdout=f"{token}\nnode-id=abcdefghijklmnopqrstuvwxy state=ready role=manager\n")
    world.lifecycle(w1)
    world.lifecycle(w2)
    for boot in world.sent("bootstrap-node")[1:]:
        world.finish(boot, status="Failed", stderr=f"bootstrap-node: join refused: {token}")
    world.rotate = world.invoke("rotate_tokens", load_event("scheduled-event"))
    rotate = world.sent("rotate-tokens")[0]
    world.finish(rotate, stdout=f"{token}\nrotated=worker,manager\n", stderr=token)

    # Then nothing swarmkeeper recorded holds a token: logs, metrics, command parameters, events, table
    recorded = {
        "logs": world.output(),
        "command parameters": json.dumps([s.parameters for s in world.sent()]),
        "api calls": json.dumps(
            [c for c in world.fakes.calls if c[1] != "GetCommandInvocation"], default=str
        ),
        "published events": json.dumps(world.published()),
        "table": json.dumps(world.items(), default=str),
    }
    assert world.published("Node Join Failed") and world.published("Join Tokens Rotated")
    for where, text in recorded.items():
        assert "SWMTKN-" not in text, where


def test_sent_commands_fit_their_documents(world, manager):
    # Given the commands a full join sent
    from infra.documents import render_commands

    (w,) = world.workers(1)
    world.join(w)

    # Then every command's parameters satisfy its document's allowedPatterns, and output goes nowhere
    for sent in world.sent():
        render_commands(sent.action, sent.parameters)
    for call in world.fakes.calls_to("SendCommand"):
        assert call["CloudWatchOutputConfig"] == {"CloudWatchOutputEnabled": False}
        assert "OutputS3BucketName" not in call
        assert len(call["InstanceIds"]) == 1


def test_api_calls_per_join(world, manager):
    # Given a cluster with a joined manager
    (w,) = world.workers(1)
    before = len(world.fakes.calls)

    # When a worker joins on the happy path
    world.join(w)

    # Then the calls are few and bounded (see the report: counted per event)
    ops = [op for _, op, _ in world.fakes.calls[before:]]
    assert ops.count("SendCommand") == 2
    assert ops.count("CompleteLifecycleAction") == 1
    assert ops.count("PutEvents") == 2
    assert len(ops) <= 40, ops


def test_agent_ready_event_bootstraps_a_waiting_join_without_its_poll(world, manager):
    # Given a worker whose launch event found its SSM agent not registered (a poll step is pending)
    (w,) = world.workers(1)
    world.fakes.unregistered_agents.add(w)
    world.lifecycle(w)
    (poll,) = world.steps_sent()
    assert not [s for s in world.sent("bootstrap-node") if s.instance_id == w]

    # When the agent registers and the agent-ready association's Success event arrives (twice)
    world.fakes.unregistered_agents.discard(w)
    world.agent_ready(w, event_id="assoc-1")
    world.agent_ready(w, event_id="assoc-1")

    # Then bootstrap-node is sent at once, once, and the pending poll finds nothing to do
    assert len([s for s in world.sent("bootstrap-node") if s.instance_id == w]) == 1
    event = load_event("unit-sqs-step")
    world.clock.advance(poll["DelaySeconds"])
    before = len(world.fakes.calls)
    world.invoke("steps", {"Records": [dict(event["Records"][0], body=poll["MessageBody"], messageId="p")]})
    assert len([s for s in world.sent("bootstrap-node") if s.instance_id == w]) == 1
    # And the stale step is answered from the op alone (no instance or manager reads)
    ops = [op for _, op, _ in world.fakes.calls[before:]]
    assert "DescribeInstances" not in ops and "BatchGetItem" not in ops, ops


def test_agent_ready_event_without_a_join_changes_nothing(world, manager):
    # Given a worker with no join yet (the association ran before the launch event was handled)
    (w,) = world.workers(1)
    # When the agent-ready event arrives
    result = world.agent_ready(w)
    # Then nothing is sent and nothing starts (its launch event will start the join)
    assert result["outcome"] == "ignore"
    assert all(s.instance_id != w for s in world.sent("bootstrap-node"))
    assert world.op(w) is None


def test_failed_agent_ready_association_does_not_start_the_bootstrap(world, manager):
    # Given a worker waiting for its SSM agent
    (w,) = world.workers(1)
    world.fakes.unregistered_agents.add(w)
    world.lifecycle(w)
    world.fakes.unregistered_agents.discard(w)
    # When the agent-ready association reports Failed (a Success would bootstrap it now)
    result = world.agent_ready(w, status="Failed")
    # Then nothing is sent: the join waits for its poll
    assert result["outcome"] == "ignore"
    assert all(s.instance_id != w for s in world.sent("bootstrap-node"))
    assert world.op(w)["stage"] == "waiting"


def test_duplicated_step_message_runs_once(world, manager):
    # Given a worker waiting for its SSM agent, whose step message SQS delivers twice
    (w,) = world.workers(1)
    world.fakes.unregistered_agents.add(w)
    world.lifecycle(w)
    world.fakes.unregistered_agents.discard(w)
    (step,) = world.steps_sent()
    event = load_event("unit-sqs-step")
    record = dict(event["Records"][0], body=step["MessageBody"])
    world.clock.advance(step["DelaySeconds"])

    # When both copies arrive
    world.invoke("steps", {"Records": [dict(record, messageId="m1")]})
    world.invoke("steps", {"Records": [dict(record, messageId="m2")]})

    # Then the instance is bootstrapped once
    assert len([s for s in world.sent("bootstrap-node") if s.instance_id == w]) == 1


def test_command_finishing_before_its_id_is_recorded_still_completes_the_join(world, manager):
    # Given a worker whose verify-node was sent, but whose op shows the verify stage without the
    # command id yet (the status event won the race against the flow's write after SendCommand)
    (w,) = world.workers(1)
    world.lifecycle(w)
    (boot,) = [s for s in world.sent("bootstrap-node") if s.instance_id == w]
    node_id = world.bootstrap_succeeds(boot)
    (verify,) = [s for s in world.sent("verify-node") if s.parameters["NodeId"] == node_id]
    op = world.op(w)
    assert op["stage"] == "verifying" and op["command_id"] == verify.command_id
    world.ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"op#{w}"}},
        UpdateExpression="SET command_id = :none, version = version - :one",
        ExpressionAttributeValues={":none": {"S": ""}, ":one": {"N": "1"}},
    )

    # When verify's Success arrives
    world.verify_succeeds(verify)

    # Then the join completes as usual
    assert world.fakes.lifecycle_results[w] == ["CONTINUE"]
    assert world.tags(w)["swarmkeeper:node-id"] == node_id
    assert world.in_flight() == []
