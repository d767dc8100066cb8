"""The gather -> decide -> execute loop every flow runs on (``flows.flow``), and what a
decision made again in the same run reads: the AWS calls are counted (join_world's botocore hook), so
a fact read twice comes back as a failing count. Each test reads Given / When / Then.

The flows are imported inside the tests, once the fake environment is set: a Powertools child logger
takes its service name from the environment when its module is imported."""

from __future__ import annotations

import itertools
import json
import logging
from collections import Counter
from dataclasses import dataclass, replace

import pytest
from join_world import PREFIX, SWARM_ID

from swarmkeeper.domain.errors import SwarmkeeperError
from swarmkeeper.domain.join import decide_join
from swarmkeeper.domain.join_types import JoinPolicy, JoinRequested
from swarmkeeper.domain.kernel import Decision, Outcome
from swarmkeeper.domain.leave import decide_leave
from swarmkeeper.domain.leave_types import LeaveFacts, LeavePolicy, LeaveRequested, LeaveStepDue
from swarmkeeper.domain.models import (
    ClusterIdentity,
    ClusterState,
    InitLock,
    InstanceFacts,
    JoinOp,
    LeaveOp,
    LeaveStage,
    Role,
    Stage,
)
from swarmkeeper.domain.swarm import SwarmNode
from swarmkeeper.domain.view import ClusterView

NOW = 1_800_000_000.0
ME, OTHER = "i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2"
IDENTITY = ClusterIdentity("demo", "swarmkeeper-demo-managers", "swarmkeeper-demo-workers")
GROUPS = {Role.MANAGER: IDENTITY.manager_group, Role.WORKER: IDENTITY.worker_group}


# --- the loop itself ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Poke:
    instance_id: str
    n: int = 0


@dataclass(frozen=True)
class Seen:
    op: None = None
    n: int = 0


class NotSettled(SwarmkeeperError):
    pass


class ScriptedFlow:
    """A flow whose ``script[n]`` is what executing round n's one action does."""

    name = "test"
    not_settled = NotSettled

    def __init__(self, script, max_rounds):
        self.script = script
        self.max_rounds = max_rounds
        self.reads: list[int] = []

    def gather(self, stimulus, known):
        self.reads.append(known.get("fact", lambda: len(self.reads)))
        return Seen(n=stimulus.n)

    def decide(self, stimulus, facts):
        return Decision(Outcome.WAIT, f"round {facts.n}", ("act",))

    def execute(self, action, facts, known):
        self.script[facts.n](known)


def run_script(script, max_rounds=3):
    from swarmkeeper.flows import flow

    scripted = ScriptedFlow(script, max_rounds)
    return flow.run(scripted, Poke(ME)), scripted.reads


def again(n, forget=False):
    from swarmkeeper.flows import flow

    def action(known):
        if forget:
            known.forget("fact")
        raise flow.Redecide(Poke(ME, n))

    return action


def test_loop_returns_the_decision_whose_actions_all_ran_and_reuses_known_facts(caplog):
    # Given a flow whose first action asks for another decision
    caplog.set_level(logging.INFO)

    # When it runs
    decision, reads = run_script({0: again(1), 1: lambda known: None})

    # Then the second decision is returned, and the fact read in round one was not read again
    assert decision == Decision(Outcome.WAIT, "round 1", ("act",))
    assert reads == [0, 0]
    assert [r.message for r in caplog.records].count("test decision") == 2


def test_loop_reads_again_what_an_action_forgot():
    # Given an action that changes a fact before asking for another decision
    decision, reads = run_script({0: again(1, forget=True), 1: lambda known: None})

    # Then the next round reads it again
    assert reads == [0, 1] and decision.reason == "round 1"


def test_loop_stops_with_the_actions_outcome(caplog):
    # Given an action whose conditional write lost a race
    caplog.set_level(logging.INFO)

    from swarmkeeper.flows import flow

    def lost(known):
        raise flow.Stop(Outcome.IGNORE, "moved on elsewhere")

    # When it runs / Then the run ends with that outcome, logged
    decision, _ = run_script({0: lost})
    assert decision == Decision(Outcome.IGNORE, "moved on elsewhere")
    assert "test stopped" in [r.message for r in caplog.records]


def test_loop_that_never_settles_raises_so_the_event_is_retried():
    # Given actions that always ask for another decision
    script = {n: again(n + 1) for n in range(5)}

    # When it runs / Then it gives up after max_rounds
    with pytest.raises(NotSettled, match=rf"test of {ME} did not settle after 3 rounds"):
        run_script(script, max_rounds=3)


def test_known_take_is_for_one_round_only():
    # Given a fact put by an action
    from swarmkeeper.flows import flow

    known = flow.Known()
    known.put("op", "written")

    # When two rounds take it / Then the first gets it, the second reads
    assert known.take("op", lambda: "read") == "written"
    assert known.take("op", lambda: "read") == "read"


# --- counting calls through the handlers ----------------------------------------------------------


def reads_since(world, before):
    """The read calls made since ``before``, named by what they read."""
    out = []
    for _, op, params in world.fakes.calls[before:]:
        if op == "GetItem":
            out.append(f"GetItem {params['Key']['pk']['S']}")
        elif op == "GetParameter":
            out.append(f"GetParameter {params['Name']}")
        elif op == "DescribeInstances":
            out.append(f"DescribeInstances {','.join(params.get('InstanceIds', [])) or 'filtered'}")
        elif op in ("BatchGetItem", "GetCommandInvocation", "GetObject"):
            out.append(op)
    return out


@pytest.fixture
def manager(world):
    (m,) = world.managers(1)
    world.join(m)
    return m


def launched_before_its_agent(world, instance_id):
    """The instance's launch lifecycle action arrives before its SSM agent registered: the join
    decides to bootstrap, SendCommand is refused, the join decides again and waits. The reads, counted."""
    world.fakes.unregistered_agents.add(instance_id)
    before = len(world.fakes.calls)
    result = world.lifecycle(instance_id)
    assert result["outcome"] == "wait", result
    return Counter(reads_since(world, before))


def join_reads(instance_id, cluster_reads=1):
    cluster = {f"GetParameter {PREFIX}/cluster-id": cluster_reads, "GetItem lock#swarm-init": cluster_reads}
    return {f"DescribeInstances {instance_id}": 1, f"GetItem op#{instance_id}": 1, **cluster}


def test_join_refused_by_an_unregistered_agent_reads_its_facts_once(world, manager):
    # Given a cluster with a manager, and a worker
    (w,) = world.workers(1)

    # When its launch event comes before its agent registers
    reads = launched_before_its_agent(world, w)

    # Then the second decision read nothing: instance, op and cluster were read once each
    assert reads == join_reads(w)
    # And the op it decided on is the one stored: waiting, its poll scheduled on its version
    op = world.op(w)
    assert op["stage"] == "waiting" and op["waiting_for"] == "the SSM agent"
    (step,) = world.steps_sent()
    assert json.loads(step["MessageBody"])["version"] == op["version"]
    assert not [s for s in world.sent("bootstrap-node") if s.instance_id == w]


def test_first_manager_reads_the_cluster_again_after_taking_the_init_lock_and_only_then(world):
    # Given an empty cluster and a first manager
    (m,) = world.managers(1)

    # When its launch event comes before its agent registers (lock; init refused; wait)
    reads = launched_before_its_agent(world, m)

    # Then the cluster facts are read before and after taking the lock, not a third time
    assert reads == join_reads(m, cluster_reads=2)
    # And the lock it took was released while it waits for its agent
    assert world.lock() is None
    assert world.op(m)["stage"] == "waiting" and world.sent("bootstrap-node") == []


def test_cluster_initialized_while_the_lock_was_taken_is_joined_not_initialized_again(world):
    # Given a first manager whose run reads "no cluster", then the free lock just after another
    # manager initialized the swarm and released the lock
    (m,) = world.managers(1)
    initialized = []

    def swarm_appears(params, **_):
        if params.get("Key", {}).get("pk", {}).get("S") == "lock#swarm-init" and not initialized:
            world.ssm.put_parameter(Name=f"{PREFIX}/cluster-id", Value=SWARM_ID, Type="String")
            initialized.append(True)

    world.fakes.session.events.register("before-parameter-build.dynamodb.GetItem", swarm_appears)

    # When its launch lifecycle action arrives
    world.lifecycle(m)

    # Then it takes the lock, reads the cluster again, and joins the swarm that exists
    (boot,) = world.sent("bootstrap-node")
    assert boot.instance_id == m and boot.parameters["Mode"] == "join"
    assert world.lock() is None


def test_join_request_for_a_join_in_flight_reads_no_cluster_facts(world, manager):
    # Given a worker whose join waits for its agent
    (w,) = world.workers(1)
    world.fakes.unregistered_agents.add(w)
    world.lifecycle(w)
    before = len(world.fakes.calls)

    # When the running state change (the join fallback) arrives
    result = world.running(w)

    # Then it is ignored on the instance and the op alone
    assert result["outcome"] == "ignore", result
    assert sorted(reads_since(world, before)) == sorted([f"DescribeInstances {w}", f"GetItem op#{w}"])


def test_terminated_after_shutting_down_reads_only_the_op(world, manager):
    # Given a joined worker, a saved swarm view, and the worker's shutting-down event handled
    (w,) = world.workers(1)
    node = world.join(w)
    world.settle()
    world.reconcile_pass()
    world.terminate(w)
    assert world.state_change(w, "shutting-down")["outcome"] == "remove"
    before = len(world.fakes.calls)

    # When its terminated event arrives
    result = world.state_change(w, "terminated")

    # Then the removal in flight answers it: only the op is read, nothing more is sent
    assert result["outcome"] == "ignore", result
    assert reads_since(world, before) == [f"GetItem op#{w}"]
    assert len(world.commands_for("remove-node", node)) == 1


def test_leave_re_decided_after_an_undeliverable_drain_reads_its_facts_once(world, manager):
    # Given a joined worker, a saved swarm view whose only manager's agent is gone
    (w,) = world.workers(1)
    world.join(w)
    world.settle()
    world.reconcile_pass()
    world.fakes.unregistered_agents.add(manager)
    before = len(world.fakes.calls)

    # When the worker is scaled in (drain-node refused; decide again: no manager left, wait)
    result = world.terminating(w)

    # Then it waits for a manager, having read the instance, the op and the view once each
    assert result["outcome"] == "wait", result
    assert sorted(reads_since(world, before)) == sorted(
        [f"DescribeInstances {w}", f"GetItem op#{w}", "GetItem view#cluster"]
    )
    leave = world.leave_op(w)
    assert leave["stage"] == "draining" and leave["waiting_for"] == "a manager to drain from"
    assert world.sent("drain-node") == []


# --- what a flow leaves unread, the decision cannot use ---------------------------------------------

LEAVE_POLICY = LeavePolicy(
    IDENTITY, drain_timeout_seconds=300, parameter_prefix="/swarmkeeper/demo", region="us-east-1"
)
NODE = "a" * 25


BASE_LEAVE = LeaveOp(
    instance_id=ME,
    role=Role.WORKER,
    node_id=NODE,
    stage=LeaveStage.DRAINING,
    version=3,
    started_at=NOW - 10,
    drain_deadline=NOW + 290,
    deadline=NOW + 3000,
    correlation_id="corr",
    via="lifecycle",
)


def leave_ops():
    """Leave ops of every role and stage, with and without a lifecycle action, a command, a wait."""
    choices = itertools.product(
        Role, LeaveStage, (None, IDENTITY.worker_group), ("", "cmd-1"), ("", "a fresh swarm view")
    )
    for (role, stage, group, command, waiting), via in itertools.product(
        choices, ("lifecycle", "spot", "state")
    ):
        target = OTHER if command else ""
        changes = {"group": group, "command_id": command, "waiting_for": waiting, "target": target}
        yield replace(BASE_LEAVE, role=role, stage=stage, via=via, **changes)


def full_facts(role: Role):
    manager = SwarmNode(NODE, Role.MANAGER, "ready", "active", "reachable", "10.0.1.9", "me")
    other = SwarmNode("b" * 25, Role.MANAGER, "ready", "active", "leader", "10.0.1.8", "other")
    view = ClusterView(NOW + 1, (manager, other), {NODE: ME, "b" * 25: OTHER})
    for state, view_, managers, holder in itertools.product(
        ("running", "terminated", None), (None, view), ((), (OTHER,)), (None, OTHER, ME)
    ):
        tags = {"aws:autoscaling:groupName": GROUPS[role], "swarmkeeper:node-id": NODE}
        instance = InstanceFacts(ME, state, tags, "10.0.1.9") if state else None
        yield LeaveFacts(instance, role, NODE, None, view_, managers, holder)


@pytest.mark.parametrize("via", ["lifecycle", "spot", "rebalance", "state"])
@pytest.mark.parametrize("group", [None, IDENTITY.worker_group, "other-cluster-workers"])
def test_a_request_answered_by_the_leave_op_is_decided_alike_on_any_facts(via, group):
    from swarmkeeper.flows.leave import answered_by_the_op

    checked = 0
    for op in leave_ops():
        stimulus = LeaveRequested(ME, via, "evt-2", group)
        if not answered_by_the_op(stimulus, op):
            continue
        # Given the facts the flow gathers for it (the op's role and node, nothing read)
        alone = decide_leave(stimulus, LeaveFacts(None, op.role, op.node_id), op, NOW, LEAVE_POLICY)
        # Then every set of facts it did not read would have given the same decision
        for facts in full_facts(op.role):
            assert decide_leave(stimulus, facts, op, NOW, LEAVE_POLICY) == alone, (op, facts)
            checked += 1
    assert checked > 0


def test_only_requests_are_answered_by_the_leave_op_and_not_a_removal_to_start():
    from swarmkeeper.flows.leave import answered_by_the_op

    op = next(o for o in leave_ops() if o.stage is LeaveStage.DRAINING)
    assert not answered_by_the_op(LeaveStepDue(ME, op.version), op)
    assert not answered_by_the_op(LeaveRequested(ME, "state", "evt-2"), op)
    assert answered_by_the_op(LeaveRequested(ME, "state", "evt-2"), replace(op, stage=LeaveStage.REMOVING))


def test_a_join_request_with_a_join_in_flight_is_decided_alike_on_any_cluster():
    policy = JoinPolicy(IDENTITY, agent_wait_seconds=300)
    clusters = [
        ClusterState(initialized, lock, managers)
        for initialized, lock, managers in itertools.product(
            (False, True), (None, InitLock(ME, NOW + 60), InitLock(OTHER, NOW + 60)), ((), (OTHER,))
        )
    ]
    for role, stage, via in itertools.product(Role, Stage, ("lifecycle", "running")):
        tags = {"aws:autoscaling:groupName": GROUPS[role]}
        instance = InstanceFacts(ME, "running", tags, "10.0.1.5")
        op = JoinOp(ME, role, GROUPS[role], stage, 3, NOW - 10, NOW + 290, "evt-1", "lifecycle")
        stimulus = JoinRequested(ME, via, "evt-2", GROUPS[role] if via == "lifecycle" else None)
        alone = decide_join(stimulus, instance, ClusterState(), op, NOW, policy)
        for cluster in clusters:
            assert decide_join(stimulus, instance, cluster, op, NOW, policy) == alone
