"""The join decision is a pure function of (stimulus, instance, cluster, op in flight, now): its
invariants are checked over generated inputs, and its key transitions one by one."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarmkeeper.domain.join import NODE_JOIN_FAILED, NODE_JOINED, decide_join, waits_for_the_swarm
from swarmkeeper.domain.join_types import (
    AcquireInitLock,
    AgentNotReady,
    AgentRegistered,
    CompleteLifecycle,
    CreateJoin,
    JoinCommandFinished,
    JoinPolicy,
    JoinRequested,
    JoinStepDue,
    RecordNode,
    ReleaseInitLock,
    RunBootstrap,
    RunVerify,
    SaveJoin,
    ScheduleJoinStep,
    TagNode,
    WakeWaitingJoins,
)
from swarmkeeper.domain.kernel import Publish
from swarmkeeper.domain.models import (
    ClusterIdentity,
    ClusterState,
    InitLock,
    InstanceFacts,
    JoinOp,
    LifecycleResult,
    Mode,
    Role,
    Stage,
)
from swarmkeeper.domain.outputs import BootstrapResult, VerifyResult

POLICY = JoinPolicy(ClusterIdentity("demo", "swarmkeeper-demo-managers", "swarmkeeper-demo-workers"), 300)
NOW = 1_800_000_000.0
ME = "i-0aaaaaaaaaaaaaaa1"
OTHER = "i-0bbbbbbbbbbbbbbb2"
NODE = "abcdefghijklmnopqrstuvwxy"
GROUPS = {Role.MANAGER: "swarmkeeper-demo-managers", Role.WORKER: "swarmkeeper-demo-workers"}


def instance(
    role: Role = Role.WORKER, state: str = "running", node_id: str | None = None, **kw
) -> InstanceFacts:
    tags = {"aws:autoscaling:groupName": GROUPS[role], "swarmkeeper:cluster": "demo"}
    if node_id:
        tags["swarmkeeper:node-id"] = node_id
    return InstanceFacts(ME, state, tags, kw.get("ip", "10.0.1.5"))


def op(role: Role = Role.WORKER, stage: Stage = Stage.WAITING, **kw) -> JoinOp:
    base = JoinOp(
        instance_id=ME,
        role=role,
        group=GROUPS[role],
        stage=stage,
        version=3,
        started_at=NOW - 10,
        deadline=NOW + 290,
        correlation_id="evt-1",
        via="lifecycle",
        command_id="cmd-1" if stage in (Stage.BOOTSTRAPPING, Stage.VERIFYING) else "",
        node_id=NODE if stage in (Stage.VERIFYING, Stage.AWAITING_VERIFIER) else "",
        mode=Mode.JOIN if stage is not Stage.WAITING else None,
        expires_at=NOW + 14_000,
    )
    return replace(base, **kw)


# ------------------------------------------------------------------------------ generated inputs

roles = st.sampled_from(list(Role))
instances = st.one_of(
    st.none(),
    st.builds(
        InstanceFacts,
        instance_id=st.just(ME),
        state=st.sampled_from(["pending", "running", "shutting-down", "terminated", "stopped"]),
        tags=st.one_of(
            st.builds(
                lambda r, node: {
                    "aws:autoscaling:groupName": GROUPS[r],
                    **({"swarmkeeper:node-id": NODE} if node else {}),
                },
                roles,
                st.booleans(),
            ),
            st.just({"aws:autoscaling:groupName": "other-workers", "swarmkeeper:cluster": "other"}),
            st.just({"swarmkeeper:cluster": "demo", "swarmkeeper:role": "manager"}),
            st.just({}),
        ),
        private_ip=st.sampled_from(["10.0.1.5", None]),
    ),
)
locks = st.one_of(
    st.none(),
    st.builds(
        InitLock, holder=st.sampled_from([ME, OTHER]), expires_at=st.sampled_from([NOW - 1, NOW + 600])
    ),
)
clusters = st.builds(
    ClusterState,
    initialized=st.booleans(),
    init_lock=locks,
    managers=st.sampled_from([(), (OTHER,), (ME,), (ME, OTHER)]),
)
ops = st.one_of(
    st.none(),
    st.builds(
        JoinOp,
        instance_id=st.just(ME),
        role=roles,
        group=st.sampled_from([*GROUPS.values(), None]),
        stage=st.sampled_from(list(Stage)),
        version=st.integers(1, 6),
        started_at=st.sampled_from([NOW - 10, NOW - 2000]),
        deadline=st.sampled_from([NOW - 5, NOW + 290]),
        correlation_id=st.just("evt-1"),
        via=st.sampled_from(["lifecycle", "running"]),
        attempts=st.integers(0, 12),
        waiting_for=st.sampled_from(["", "the SSM agent", "the cluster to be initialized"]),
        mode=st.sampled_from([None, Mode.INIT, Mode.JOIN]),
        command_id=st.sampled_from(["", "cmd-1"]),
        node_id=st.sampled_from(["", NODE]),
        verifier=st.sampled_from(["", OTHER]),
        token_retries=st.integers(0, 1),
    ),
)
statuses = st.sampled_from(["Success", "Failed", "TimedOut", "Cancelled", "InProgress", "Pending"])
stimuli = st.one_of(
    st.builds(
        JoinRequested,
        instance_id=st.just(ME),
        via=st.sampled_from(["lifecycle", "running"]),
        correlation_id=st.just("evt-2"),
        group=st.sampled_from([None, *GROUPS.values(), "other-workers"]),
    ),
    st.builds(
        JoinStepDue, instance_id=st.just(ME), version=st.integers(1, 6), correlation_id=st.just("evt-1")
    ),
    st.builds(AgentNotReady, instance_id=st.just(ME), version=st.integers(1, 6)),
    st.builds(
        JoinCommandFinished,
        instance_id=st.just(ME),
        command_id=st.sampled_from(["cmd-1", "cmd-0"]),
        action=st.sampled_from(["bootstrap-node", "verify-node"]),
        status=statuses,
        correlation_id=st.just("evt-3"),
        bootstrap=st.one_of(st.none(), st.builds(BootstrapResult, st.just(NODE), roles, st.just("swarm1"))),
        verify=st.one_of(
            st.none(),
            st.builds(
                VerifyResult,
                st.sampled_from([NODE, "zzzzzzzzzzzzzzzzzzzzzzzzz"]),
                st.sampled_from(["ready", "down"]),
                st.sampled_from(["manager", "worker"]),
            ),
        ),
        bad_join_token=st.booleans(),
        detail=st.sampled_from(["", "boom"]),
    ),
)


def alive(inst: InstanceFacts | None) -> bool:
    return inst is not None and not inst.gone


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stimulus=stimuli, inst=instances, cluster=clusters, current=ops, now=st.sampled_from([NOW, NOW + 5000])
)
def test_decision_invariants(stimulus, inst, cluster, current, now):
    d = decide_join(stimulus, inst, cluster, current, now, POLICY)
    kinds = [type(a) for a in d.actions]

    # An ignored input does nothing; a closed op is never reopened
    assert (d.outcome == "ignore") == (not d.actions)
    if current is not None and current.stage.closed:
        assert d.outcome == "ignore"

    # At most one command (or lock attempt) per decision
    assert sum(k in (RunBootstrap, RunVerify, AcquireInitLock) for k in kinds) <= 1

    # A join is created only for a live, unjoined member of this cluster with nothing in flight
    if CreateJoin in kinds:
        assert isinstance(stimulus, JoinRequested) and current is None and alive(inst)
        assert inst.node_id is None and POLICY.identity.role_of(inst.tags) is not None
        assert kinds[0] is CreateJoin

    # Versions move by one per write from the op the decision saw; two writes only to admit a node
    # (its committing write, then joined)
    base = current.version if current is not None else 1
    writes = [a.op for a in d.actions if isinstance(a, SaveJoin)]
    writes += [a.then for a in d.actions if isinstance(a, (RunBootstrap, RunVerify))]
    assert [w.version for w in writes] == list(range(base + 1, base + 1 + len(writes)))
    assert len(writes) <= 1 or [w.stage for w in writes] == [Stage.ADMITTING, Stage.JOINED]

    for a in d.actions:
        if isinstance(a, RunBootstrap) and a.mode is Mode.INIT:
            # swarm init only by a manager that holds a live lock on a cluster that does not exist
            assert a.then.role is Role.MANAGER and not cluster.initialized
            assert cluster.init_lock is not None and cluster.init_lock.held_by(ME, now)
        if (
            isinstance(a, RunBootstrap)
            and a.mode is Mode.JOIN
            and not isinstance(stimulus, JoinCommandFinished)
        ):
            assert cluster.initialized
        if isinstance(a, RunBootstrap):
            assert alive(inst) and inst.private_ip
        if isinstance(a, RunVerify) and a.then.role is Role.WORKER:
            assert a.target != ME and a.target in cluster.managers
        if isinstance(a, ScheduleJoinStep):
            # A wait is always recorded first, and never outlives the bounds
            (saved,) = [w for w in writes]
            assert a.step.version == saved.version and kinds.index(SaveJoin) < kinds.index(ScheduleJoinStep)
            assert 1 <= a.delay_seconds <= 900
            cluster_deadline = saved.started_at + POLICY.cluster_wait_seconds
            assert now + a.delay_seconds <= max(saved.deadline, cluster_deadline, now + 1)
        if isinstance(a, ReleaseInitLock):
            assert a.holder == ME
        if isinstance(a, CompleteLifecycle):
            assert a.instance_id == ME and alive(inst)
        if isinstance(a, Publish):
            assert a.event.cluster == "demo" and a.event.instance_id == ME
            expected = current.correlation_id if current is not None else stimulus.correlation_id
            assert a.event.correlation_id == expected

    # Failure: close the op first (a leave that replaced it meanwhile makes this write fail, and then
    # nothing is announced), then abandon (when there is an instance to abandon), tell operators
    if d.outcome == "failed":
        published = [a.event.detail_type for a in d.actions if isinstance(a, Publish)]
        assert published == [NODE_JOIN_FAILED]
        (closing,) = writes
        assert closing.stage is Stage.FAILED and closing.expires_at > now
        assert kinds.index(SaveJoin) < kinds.index(Publish)
        assert CompleteLifecycle not in kinds or kinds.index(SaveJoin) < kinds.index(CompleteLifecycle)
        results = [a.result for a in d.actions if isinstance(a, CompleteLifecycle)]
        assert results == ([LifecycleResult.ABANDON] if alive(inst) else [])

    # CONTINUE only after a verified join (node in the swarm, Ready, with the expected role), and only
    # once the committing write is made: first in this decision, or by the one the crash interrupted
    if any(isinstance(a, CompleteLifecycle) and a.result is LifecycleResult.CONTINUE for a in d.actions):
        assert isinstance(stimulus, JoinCommandFinished) and stimulus.status == "Success"
        assert stimulus.action == "verify-node" and current is not None
        if current.stage is Stage.VERIFYING:
            assert stimulus.verify.node_id == current.node_id and stimulus.verify.state == "ready"
            assert stimulus.verify.role == current.role
            assert kinds[0] is SaveJoin and d.actions[0].op.stage is Stage.ADMITTING
            kinds = kinds[1:]
        else:
            assert current.stage is Stage.ADMITTING and stimulus.command_id == current.command_id
        assert kinds[:3] == [TagNode, RecordNode, CompleteLifecycle]
        assert [a.event.detail_type for a in d.actions if isinstance(a, Publish)] == [NODE_JOINED]
        assert [a for a in d.actions if isinstance(a, SaveJoin)][-1].op.stage is Stage.JOINED


# ------------------------------------------------------------------------------ key transitions


@pytest.mark.parametrize(
    ("inst", "group", "reason"),
    [
        (None, None, "not found"),
        (instance(state="terminated"), None, "terminated"),
        (instance(state="shutting-down"), None, "shutting-down"),
        (replace(instance(), tags={"aws:autoscaling:groupName": "x"}), None, "not a member"),
        (instance(), "other-cluster-workers", "not one of cluster"),
        (instance(node_id=NODE), None, "already joined"),
    ],
)
def test_join_requests_that_are_ignored(inst, group, reason):
    # Given a join request that is not ours to act on, When decided, Then ignored with the reason
    d = decide_join(JoinRequested(ME, "running", "evt", group), inst, ClusterState(), None, NOW, POLICY)
    assert d.outcome == "ignore" and reason in d.reason


def test_join_request_with_a_join_in_flight_is_ignored():
    d = decide_join(JoinRequested(ME, "running", "evt-2"), instance(), ClusterState(True), op(), NOW, POLICY)
    assert d.outcome == "ignore" and "already waiting" in d.reason


def test_worker_into_existing_cluster_starts_and_bootstraps():
    d = decide_join(
        JoinRequested(ME, "lifecycle", "evt-2"), instance(), ClusterState(True), None, NOW, POLICY
    )
    assert [type(a) for a in d.actions] == [CreateJoin, Publish, RunBootstrap]
    assert d.actions[2].mode is Mode.JOIN and d.actions[0].op.deadline == NOW + 300


def test_manager_into_empty_cluster_takes_the_lock_first():
    d = decide_join(
        JoinRequested(ME, "lifecycle", "e"), instance(Role.MANAGER), ClusterState(), None, NOW, POLICY
    )
    assert [type(a) for a in d.actions] == [CreateJoin, Publish, AcquireInitLock]
    assert d.actions[2].expires_at == NOW + POLICY.init_lock_seconds


@pytest.mark.parametrize(
    ("lock", "initialized", "expected"),
    [
        (InitLock(ME, NOW + 60), False, "init"),
        (InitLock(OTHER, NOW + 60), False, "wait"),
        (InitLock(OTHER, NOW - 1), False, "lock"),  # the holder died: its lock expired
        (InitLock(ME, NOW - 1), False, "lock"),
        (None, False, "lock"),
        (InitLock(ME, NOW + 60), True, "join+release"),
        (None, True, "join"),
    ],
)
def test_waiting_manager_next_move(lock, initialized, expected):
    d = decide_join(
        JoinStepDue(ME, 3),
        instance(Role.MANAGER),
        ClusterState(initialized, lock),
        op(Role.MANAGER),
        NOW,
        POLICY,
    )
    got = {
        "init": lambda: any(isinstance(a, RunBootstrap) and a.mode is Mode.INIT for a in d.actions),
        "wait": lambda: d.outcome == "wait",
        "lock": lambda: d.outcome == "lock",
        "join": lambda: any(isinstance(a, RunBootstrap) and a.mode is Mode.JOIN for a in d.actions),
        "join+release": lambda: [type(a) for a in d.actions] == [ReleaseInitLock, RunBootstrap],
    }[expected]()
    assert got, d


def test_agent_not_ready_waits_then_gives_up_at_the_deadline():
    # Given a waiting worker whose agent is not registered
    waiting = op()
    # When SendCommand says so before the deadline, Then it waits with backoff
    d = decide_join(AgentNotReady(ME, 3), instance(), ClusterState(True), waiting, NOW, POLICY)
    assert d.outcome == "wait" and "SSM agent" in d.reason
    # When it says so at the deadline, Then ABANDON and Node Join Failed
    d = decide_join(AgentNotReady(ME, 3), instance(), ClusterState(True), waiting, waiting.deadline, POLICY)
    assert d.outcome == "failed" and "did not register within 300s" in d.reason


def test_worker_waits_for_the_cluster_longer_than_for_its_agent():
    # Given a worker waiting for the cluster past its agent deadline
    waiting = op(waiting_for="the cluster to be initialized")
    late = waiting.deadline + 60
    # Then it keeps waiting until the cluster bound (a dead init-lock holder's lock can expire)
    assert (
        decide_join(JoinStepDue(ME, 3), instance(), ClusterState(), waiting, late, POLICY).outcome == "wait"
    )
    end = waiting.started_at + POLICY.cluster_wait_seconds
    assert (
        decide_join(JoinStepDue(ME, 3), instance(), ClusterState(), waiting, end, POLICY).outcome == "failed"
    )


def test_backoff_grows_is_capped_and_stops_at_the_deadline():
    delays = [POLICY.backoff(n, NOW, NOW + 10_000) for n in range(8)]
    assert delays == sorted(delays) and delays[0] == 10 and max(delays) == 120
    assert POLICY.backoff(5, NOW, NOW + 7) == 7
    assert POLICY.backoff(5, NOW, NOW - 3) == 1


def test_agent_poll_is_capped_and_stops_at_the_deadline():
    # Given the agent-registration poll (the fallback when the agent-ready event does not come)
    delays = [POLICY.agent_poll(n, NOW, NOW + 10_000) for n in range(6)]
    # Then it starts at 5 s, doubles, and never waits more than 30 s
    assert delays == [5, 10, 20, 30, 30, 30]
    assert POLICY.agent_poll(3, NOW, NOW + 3) == 3
    assert POLICY.agent_poll(3, NOW, NOW - 3) == 1


def test_agent_not_ready_waits_on_the_short_poll_not_the_general_backoff():
    # Given a waiting join whose SendCommand was refused (agent not registered) for the 3rd time
    waiting = op(stage=Stage.WAITING, attempts=2)
    d = decide_join(AgentNotReady(ME, waiting.version), instance(), ClusterState(True), waiting, NOW, POLICY)
    # Then the next try is scheduled after the agent poll's 20 s, not the general backoff's 40 s
    (step,) = [a for a in d.actions if isinstance(a, ScheduleJoinStep)]
    assert step.delay_seconds == 20


def test_agent_registered_starts_the_waiting_join_now():
    # Given a join waiting for its agent (a poll step pending for version 3)
    waiting = op(stage=Stage.WAITING, attempts=1)
    # When the agent-ready association reports the agent registered
    d = decide_join(AgentRegistered(ME, "evt-9"), instance(), ClusterState(True), waiting, NOW, POLICY)
    # Then the bootstrap starts at once, as the next version (the pending poll becomes stale)
    (run,) = [a for a in d.actions if isinstance(a, RunBootstrap)]
    assert run.mode is Mode.JOIN and run.then.version == waiting.version + 1


@pytest.mark.parametrize(
    "stage", [Stage.BOOTSTRAPPING, Stage.VERIFYING, Stage.AWAITING_VERIFIER, Stage.JOINED, Stage.FAILED]
)
def test_agent_registered_changes_nothing_unless_the_join_waits(stage):
    # Given a join past waiting (or closed) / When the agent-ready event arrives (late, or twice)
    d = decide_join(AgentRegistered(ME), instance(), ClusterState(True), op(stage=stage), NOW, POLICY)
    # Then nothing happens
    assert d.outcome == "ignore" and d.actions == ()


def test_agent_registered_before_any_join_is_ignored():
    # Given no join yet (the association ran before the launch event was handled)
    d = decide_join(AgentRegistered(ME), instance(), ClusterState(True), None, NOW, POLICY)
    # Then nothing starts here: the launch event starts the join and finds the agent registered
    assert d.outcome == "ignore" and d.actions == ()


def test_rotated_token_refusal_is_retried_once():
    booting = op(stage=Stage.BOOTSTRAPPING)
    refused = JoinCommandFinished(ME, "cmd-1", "bootstrap-node", "Failed", "e", bad_join_token=True)
    d = decide_join(refused, instance(), ClusterState(), booting, NOW, POLICY)
    assert d.outcome == "retry" and isinstance(d.actions[0], RunBootstrap)
    d = decide_join(refused, instance(), ClusterState(), replace(booting, token_retries=1), NOW, POLICY)
    assert d.outcome == "failed"


@pytest.mark.parametrize("gone", [None, "shutting-down", "terminated"])
def test_verified_node_whose_instance_is_gone_is_not_continued(gone):
    # Given a worker verified Ready while its instance was terminated (or is no longer found)
    verifying = op(stage=Stage.VERIFYING)
    ready = JoinCommandFinished(
        ME, "cmd-1", "verify-node", "Success", "e", verify=VerifyResult(NODE, "ready", Role.WORKER)
    )
    inst = None if gone is None else instance(state=gone)
    # When the verify-node Success arrives
    d = decide_join(ready, inst, ClusterState(), verifying, NOW, POLICY)
    # Then the join fails without a lifecycle action or a tag (the exit flow removes the node)
    assert d.outcome == "failed"
    assert not [a for a in d.actions if isinstance(a, (CompleteLifecycle, TagNode, RecordNode))]


@pytest.mark.parametrize(
    ("stage", "waiting_for", "woken"),
    [
        (Stage.WAITING, "the cluster to be initialized", True),
        (Stage.WAITING, "the cluster to be initialized by i-0bbbbbbbbbbbbbbb2", True),
        (Stage.WAITING, "the SSM agent", False),
        (Stage.AWAITING_VERIFIER, "a joined manager to verify from", True),
        (Stage.BOOTSTRAPPING, "", False),
        (Stage.JOINED, "", False),
    ],
)
def test_what_a_swarm_init_or_a_manager_join_wakes(stage, waiting_for, woken):
    assert waits_for_the_swarm(op(stage=stage, waiting_for=waiting_for)) is woken


def test_manager_joined_wakes_waiting_joins_a_worker_does_not():
    ready = {
        role: JoinCommandFinished(
            ME, "cmd-1", "verify-node", "Success", "e", verify=VerifyResult(NODE, "ready", role)
        )
        for role in Role
    }
    for role in Role:
        d = decide_join(ready[role], instance(role), ClusterState(), op(role, Stage.VERIFYING), NOW, POLICY)
        assert d.outcome == "joined"
        assert any(isinstance(a, WakeWaitingJoins) for a in d.actions) is (role is Role.MANAGER)


def test_init_success_publishes_and_releases_then_verifies_on_itself():
    booting = op(Role.MANAGER, Stage.BOOTSTRAPPING, mode=Mode.INIT)
    done = JoinCommandFinished(
        ME, "cmd-1", "bootstrap-node", "Success", "e", BootstrapResult(NODE, Role.MANAGER, "s1")
    )
    d = decide_join(done, instance(Role.MANAGER), ClusterState(), booting, NOW, POLICY)
    assert [type(a) for a in d.actions] == [Publish, ReleaseInitLock, WakeWaitingJoins, RunVerify]
    assert d.actions[0].event.detail_type == "Swarm Initialized" and d.actions[0].event.node_id == NODE
    assert d.actions[3].target == ME


def test_worker_with_no_joined_manager_waits_for_a_verifier():
    booting = op(Role.WORKER, Stage.BOOTSTRAPPING)
    done = JoinCommandFinished(
        ME, "cmd-1", "bootstrap-node", "Success", "e", BootstrapResult(NODE, Role.WORKER, "s1")
    )
    d = decide_join(done, instance(), ClusterState(True, managers=()), booting, NOW, POLICY)
    assert d.outcome == "wait" and d.actions[0].op.stage is Stage.AWAITING_VERIFIER
    assert d.actions[0].op.node_id == NODE


@pytest.mark.parametrize(
    ("stage", "action", "accepted"),
    [
        (Stage.VERIFYING, "verify-node", True),
        (Stage.BOOTSTRAPPING, "bootstrap-node", True),
        (Stage.BOOTSTRAPPING, "verify-node", False),
        (Stage.VERIFYING, "bootstrap-node", False),
    ],
)
def test_command_finished_before_its_id_was_recorded_belongs_to_its_stage(stage, action, accepted):
    # Given a join saved at a command's stage, before the flow recorded the command's id
    sending = op(Role.WORKER, stage, command_id="", node_id=NODE, verifier=OTHER)
    done = JoinCommandFinished(
        ME,
        "cmd-new",
        action,
        "Success",
        "e",
        BootstrapResult(NODE, Role.WORKER, "s1") if action == "bootstrap-node" else None,
        VerifyResult(NODE, "ready", "worker") if action == "verify-node" else None,
    )
    # When that command's Success arrives
    d = decide_join(done, instance(), ClusterState(True, managers=(OTHER,)), sending, NOW, POLICY)
    # Then it is taken as the stage's command only when the document matches the stage
    assert (d.outcome != "ignore") is accepted
