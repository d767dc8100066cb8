"""The decisions where a leave meets a join, pure (``domain.leave`` and ``domain.join``): which joins a
leave cancels, how it waits for a bootstrap-node in flight, what a late result does, and that the join
never acts once the leave holds its op. Given / When / Then."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from swarmkeeper.domain.join import NODE_JOIN_FAILED, NODE_JOIN_STARTED, NODE_JOINED, decide_join
from swarmkeeper.domain.join_types import (
    AgentNotReady,
    AgentRegistered,
    JoinCommandFinished,
    JoinPolicy,
    JoinRequested,
    JoinStepDue,
)
from swarmkeeper.domain.kernel import Outcome, Publish
from swarmkeeper.domain.leave import NODE_JOIN_CANCELLED, decide_leave
from swarmkeeper.domain.leave_types import (
    BootstrapReported,
    CompleteTerminate,
    CreateLeave,
    Heartbeat,
    LeaveFacts,
    LeavePolicy,
    LeaveRequested,
    LeaveStepDue,
    SaveLeave,
    ScheduleLeaveStep,
    SendCommand,
)
from swarmkeeper.domain.models import (
    ClusterIdentity,
    ClusterState,
    InstanceFacts,
    JoinOp,
    LeaveOp,
    LeaveStage,
    Role,
    Stage,
)
from swarmkeeper.domain.outputs import VerifyResult

NOW = 1_800_000_000.0
IDENTITY = ClusterIdentity("demo", "swarmkeeper-demo-managers", "swarmkeeper-demo-workers")
POLICY = LeavePolicy(IDENTITY, drain_timeout_seconds=300, parameter_prefix="/swarmkeeper/demo", region="r")
ME = "i-0000000000000000a"
NODE = "a" * 25
MANAGERS = ("i-00000000000000001",)
GROUP = IDENTITY.worker_group
OPEN = (Stage.WAITING, Stage.BOOTSTRAPPING, Stage.AWAITING_VERIFIER, Stage.VERIFYING)


def instance(state: str = "running") -> InstanceFacts:
    return InstanceFacts(ME, state, {"aws:autoscaling:groupName": GROUP}, "10.0.0.9")


def join(stage: Stage, **changes) -> JoinOp:
    node = NODE if stage in (Stage.AWAITING_VERIFIER, Stage.VERIFYING, Stage.ADMITTING) else ""
    base = JoinOp(ME, Role.WORKER, GROUP, stage, 4, NOW - 60, NOW + 240, "launch", "lifecycle", node_id=node)
    command = "boot-1" if stage is Stage.BOOTSTRAPPING else ""
    return replace(base, **{"command_id": command, **changes})


def facts(current: JoinOp | None, state: str = "running", **changes) -> LeaveFacts:
    node = current.node_id if current is not None else ""
    return replace(LeaveFacts(instance(state), Role.WORKER, node, current, managers=MANAGERS), **changes)


def request(via: str) -> LeaveRequested:
    return LeaveRequested(ME, via, "leave-evt", GROUP if via == "lifecycle" else None)


def awaiting(**changes) -> LeaveOp:
    base = LeaveOp(
        ME,
        Role.WORKER,
        "",
        LeaveStage.AWAITING_BOOTSTRAP,
        5,
        NOW - 10,
        NOW + 290,
        NOW + 890,
        "leave-evt",
        "lifecycle",
        group=GROUP,
        waiting_for="the result of the bootstrap-node in flight",
        bootstrap_command="boot-1",
        awaiting_bootstrap=True,
    )
    return replace(base, **changes)


def published(decision) -> list[str]:
    return [a.event.detail_type for a in decision.actions if isinstance(a, Publish)]


def kinds(decision) -> list[type]:
    return [type(a) for a in decision.actions]


@pytest.mark.parametrize("via", ["lifecycle", "spot", "state"])
@pytest.mark.parametrize("stage", list(Stage))
def test_a_leave_cancels_the_join_it_replaces_unless_that_join_already_ended_or_committed(stage, via):
    # Given a join at this stage when the instance's leave begins
    current = join(stage)
    state = "terminated" if via == "state" else "running"

    # When the leave is requested
    d = decide_leave(request(via), facts(current, state), None, NOW, POLICY)

    # Then its op replaces the join's on its version, and the join is cancelled exactly when it was open
    (create,) = [a for a in d.actions if isinstance(a, CreateLeave)]
    assert create.replacing == current.version and create.op.version == current.version + 1
    expected = [NODE_JOIN_CANCELLED] if stage in OPEN else []
    assert [t for t in published(d) if t == NODE_JOIN_CANCELLED] == expected
    assert NODE_JOINED not in published(d) and NODE_JOIN_FAILED not in published(d)


@pytest.mark.parametrize("via", ["lifecycle", "spot", "state"])
def test_a_bootstrap_in_flight_is_awaited_never_taken_for_never_joined(via):
    # Given a join whose bootstrap-node is in flight (no node id known)
    state = "terminated" if via == "state" else "running"

    # When its leave is requested
    d = decide_leave(request(via), facts(join(Stage.BOOTSTRAPPING), state), None, NOW, POLICY)

    # Then the leave waits for the result: nothing completed, a step bounded by the drain budget
    assert d.outcome is Outcome.WAIT
    assert kinds(d) == [CreateLeave, Publish, ScheduleLeaveStep]
    op = d.actions[0].op
    assert op.stage is LeaveStage.AWAITING_BOOTSTRAP and op.awaiting_bootstrap
    assert op.bootstrap_command == "boot-1"
    step = d.actions[-1]
    assert step.step.version == op.version and 1 <= step.delay_seconds <= POLICY.poll_seconds
    assert op.drain_deadline <= NOW + POLICY.drain_budget(via)


def test_a_rebalance_recommendation_leaves_an_open_join_alone():
    for stage in OPEN:
        d = decide_leave(request("rebalance"), facts(join(stage)), None, NOW, POLICY)
        assert d.outcome is Outcome.IGNORE and not d.actions


def test_a_leave_op_ends_every_join_decision():
    # Given the instance's op is a leave
    leave = awaiting()
    verified = VerifyResult(NODE, "ready", "worker")
    stimuli = [
        JoinRequested(ME, "lifecycle", "e", GROUP),
        JoinRequested(ME, "running", "e"),
        JoinStepDue(ME, 5),
        AgentRegistered(ME),
        AgentNotReady(ME, 5),
        JoinCommandFinished(ME, "boot-1", "bootstrap-node", "Success", "e"),
        JoinCommandFinished(ME, "v-1", "verify-node", "Success", "e", verify=verified),
    ]
    policy = JoinPolicy(IDENTITY, 300)
    for stimulus in stimuli:
        # When the join decides on any stimulus, then it is over: no action at all
        d = decide_join(stimulus, instance(), ClusterState(initialized=True), leave, NOW, policy)
        assert d.outcome is Outcome.LEAVE_BEGUN and d.actions == (), stimulus


def test_the_join_announces_nothing_before_its_committing_write():
    # Given a join being verified
    current = join(Stage.VERIFYING, command_id="v-1", verifier=MANAGERS[0])
    finished = JoinCommandFinished(
        ME, "v-1", "verify-node", "Success", "e", verify=VerifyResult(NODE, "ready", "worker")
    )

    # When its verify succeeds, then the first action is the write a leave makes fail
    d = decide_join(finished, instance(), ClusterState(), current, NOW, JoinPolicy(IDENTITY, 300))
    first, *rest = d.actions
    assert first.op.stage is Stage.ADMITTING and first.op.version == current.version + 1
    assert [type(a).__name__ for a in rest][:4] == ["TagNode", "RecordNode", "CompleteLifecycle", "Publish"]

    # And a failure writes first too
    failed = replace(finished, status="Failed")
    d = decide_join(failed, instance(), ClusterState(), current, NOW, JoinPolicy(IDENTITY, 300))
    assert d.actions[0].op.stage is Stage.FAILED


def test_an_awaited_step_reads_the_result_and_acts_on_it():
    # Given a leave awaiting the bootstrap-node, whose step finds it succeeded with a node id
    op = awaiting()
    result = BootstrapReported(ME, "boot-1", "Success", NODE, Role.WORKER)

    # When the step comes, then the node is drained (Node Draining first)
    d = decide_leave(LeaveStepDue(ME, op.version), facts(None, bootstrap=result), op, NOW, POLICY)
    assert d.outcome is Outcome.DRAIN
    assert published(d) == ["Node Draining"]
    (send,) = [a for a in d.actions if isinstance(a, SendCommand)]
    assert dict(send.parameters)["NodeId"] == NODE and not send.then.awaiting_bootstrap

    # When the step finds it still running, then it waits again, heartbeating the action
    running = replace(result, status="InProgress", node_id="")
    d = decide_leave(LeaveStepDue(ME, op.version), facts(None, bootstrap=running), op, NOW, POLICY)
    assert d.outcome is Outcome.WAIT and Heartbeat in kinds(d)


def test_past_the_drain_budget_the_instance_goes_and_a_late_node_is_still_awaited():
    # Given a leave awaiting a bootstrap-node that never reports
    op = awaiting()

    # When its step comes at the drain deadline
    d = decide_leave(LeaveStepDue(ME, op.version), facts(None), op, op.drain_deadline, POLICY)

    # Then the terminate action continues, the op closes and still awaits the result
    assert d.outcome is Outcome.COMPLETE
    assert kinds(d) == [CompleteTerminate, SaveLeave]
    closed = d.actions[-1].op
    assert closed.stage is LeaveStage.DONE and closed.awaiting_bootstrap

    # When the result comes with a node id, then it is removed right away, as a dead node
    late = BootstrapReported(ME, "boot-1", "Success", NODE, Role.WORKER)
    d = decide_leave(late, facts(None, state="terminated"), closed, NOW + 400, POLICY)
    (send,) = [a for a in d.actions if isinstance(a, SendCommand)]
    assert send.action == "remove-node" and dict(send.parameters)["NodeId"] == NODE
    assert send.then.via == "state" and send.then.group is None and send.then.deadline > NOW + 400


@pytest.mark.parametrize(
    ("op", "reported", "acts"),
    [
        (awaiting(), BootstrapReported(ME, "boot-0", "Success", NODE), False),  # another command
        (awaiting(bootstrap_command=""), BootstrapReported(ME, "boot-0", "Success", NODE), True),
        (awaiting(), BootstrapReported(ME, "boot-1", "InProgress"), False),
        (
            awaiting(awaiting_bootstrap=False, stage=LeaveStage.DONE),
            BootstrapReported(ME, "boot-1", "Success", NODE),
            False,
        ),
        (awaiting(stage=LeaveStage.DONE), BootstrapReported(ME, "boot-1", "Failed"), False),
    ],
)
def test_which_results_a_leave_takes(op, reported, acts):
    d = decide_leave(reported, facts(None), op, NOW, POLICY)
    assert (d.outcome is not Outcome.IGNORE) == acts, d


def test_a_result_without_a_node_continues_as_never_joined():
    op = awaiting()
    d = decide_leave(BootstrapReported(ME, "boot-1", "TimedOut"), facts(None), op, NOW, POLICY)
    assert kinds(d) == [CompleteTerminate, SaveLeave]
    assert d.actions[-1].op.stage is LeaveStage.DONE and not d.actions[-1].op.awaiting_bootstrap


def test_the_readme_lists_every_way_a_join_ends():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    contract = readme.split("### Events swarmkeeper publishes")[1].split("\n## ")[0]
    for detail_type in (NODE_JOIN_STARTED, NODE_JOINED, NODE_JOIN_FAILED, NODE_JOIN_CANCELLED):
        assert f"`{detail_type}`" in contract
