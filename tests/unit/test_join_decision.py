"""The join decision is a pure function of (stimulus, instance, cluster, op in flight, now): its
invariants are checked over generated inputs, and its key transitions one by one."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarmkeeper.domain.join import (
    NODE_JOIN_FAILED,
    NODE_JOINED,
    SWARM_INITIALIZED,
    decide_join,
    waits_for_the_swarm,
)
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
from swarmkeeper.domain.labels import AZ_PATTERN, INSTANCE_TYPE_PATTERN, node_labels
from swarmkeeper.domain.models import (
    WARM_POOL,
    ClusterIdentity,
    ClusterState,
    InitLock,
    InstanceFacts,
    JoinOp,
    LeaveOp,
    LeaveStage,
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
TOKEN_A, TOKEN_B, TOKEN_C = (f"{n}0000000-0000-4000-8000-000000000000" for n in "abc")
LAUNCHED = datetime.fromtimestamp(NOW - 1000, UTC)  # the instance's last start
GROUPS = {Role.MANAGER: "swarmkeeper-demo-managers", Role.WORKER: "swarmkeeper-demo-workers"}


def instance(
    role: Role = Role.WORKER, state: str = "running", node_id: str | None = None, **kw
) -> InstanceFacts:
    tags = {"aws:autoscaling:groupName": GROUPS[role], "swarmkeeper:cluster": "demo"}
    if node_id:
        tags["swarmkeeper:node-id"] = node_id
    return InstanceFacts(
        ME, state, tags, kw.get("ip", "10.0.1.5"), availability_zone="eu-west-1a", instance_type="t4g.small"
    )


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
        launched_at=st.sampled_from([None, LAUNCHED]),
        lifecycle_state=st.sampled_from([None, "Pending:Wait", "InService", "Warmed:Pending"]),
        # what EC2 says of the instance's zone and type, including what no label may hold
        availability_zone=st.sampled_from(["eu-west-1a", None, "eu-west-1a;reboot"]),
        instance_type=st.sampled_from(["t4g.small", None, "$(id).large"]),
        spot=st.booleans(),
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
        lifecycle_token=st.sampled_from(["", TOKEN_A, TOKEN_B]),
    ),
    st.builds(
        LeaveOp,
        instance_id=st.just(ME),
        role=roles,
        node_id=st.sampled_from(["", NODE]),
        stage=st.sampled_from(list(LeaveStage)),
        version=st.integers(1, 6),
        started_at=st.just(NOW - 100),
        drain_deadline=st.just(NOW + 500),
        deadline=st.just(NOW + 900),
        correlation_id=st.just("evt-0"),
        via=st.just("lifecycle"),
        lifecycle_token=st.just(TOKEN_C),
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
        token=st.sampled_from(["", TOKEN_A, TOKEN_B]),
        origin=st.sampled_from(["", "EC2", WARM_POOL]),
        destination=st.sampled_from(["", "AutoScalingGroup", WARM_POOL]),
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

    into_pool = isinstance(stimulus, JoinRequested) and stimulus.destination == WARM_POOL
    out_of_pool = isinstance(stimulus, JoinRequested) and stimulus.origin == WARM_POOL and not into_pool

    # An ignored input does nothing; a closed op is never reopened (a launch out of the warm pool may
    # replace it with a new join; a launch into the pool only continues)
    assert (d.outcome in ("ignore", "leave-begun")) == (not d.actions)
    if current is not None and current.stage.closed and not (into_pool or out_of_pool):
        assert d.outcome in ("ignore", "leave-begun")
    # A leave ends the join; only a launch out of the pool gets past a closed one (to join again),
    # and one into the pool past any (it is only continued)
    if isinstance(current, LeaveOp) and not (into_pool or (out_of_pool and current.stage.closed)):
        assert d.outcome == "leave-begun"

    # A launch into the warm pool is continued, that action alone, and nothing else happens
    if d.outcome == "complete":
        assert into_pool and alive(inst) and POLICY.identity.role_of(inst.tags) is not None
        assert d.actions == (CompleteLifecycle(ME, stimulus.group, LifecycleResult.CONTINUE, stimulus.token),)
    if into_pool:
        assert d.outcome in ("complete", "ignore")

    # At most one command (or lock attempt) per decision
    assert sum(k in (RunBootstrap, RunVerify, AcquireInitLock) for k in kinds) <= 1

    # A join is created only for a live, unjoined member of this cluster with nothing in flight, or
    # out of the warm pool over the closed op of an earlier life (never one of its own launch action)
    created = [a for a in d.actions if isinstance(a, CreateJoin)]
    if created:
        assert isinstance(stimulus, JoinRequested) and alive(inst) and not inst.in_warm_pool
        assert POLICY.identity.role_of(inst.tags) is not None and kinds[0] is CreateJoin
        if current is None:
            assert (inst.node_id is None or out_of_pool) and created[0].replacing is None
        else:
            assert out_of_pool and current.stage.closed and created[0].replacing == current.version
            # never over this launch's own join (one the `running` fallback started has no token:
            # whether it is of an earlier life is the instance's launch time's to say)
            assert not (isinstance(current, JoinOp) and current.lifecycle_token == stimulus.token != "")
        assert created[0].op.lifecycle_token == stimulus.token

    # Versions move by one per write from the op the decision saw (or created); two writes only to
    # admit a node (its committing write, then joined)
    base = created[0].op.version if created else current.version if current is not None else 1
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
        if isinstance(a, RunVerify):
            # verified only with the labels of this instance, each value a zone or a type
            assert a.labels == node_labels(inst, a.then.role)
            assert re.fullmatch(AZ_PATTERN, a.labels.availability_zone)
            assert re.fullmatch(INSTANCE_TYPE_PATTERN, a.labels.instance_type)
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
            expected = stimulus.correlation_id if created or current is None else current.correlation_id
            assert a.event.correlation_id == expected

    # Failure: close the op first (a leave that replaced it meanwhile makes this write fail, and then
    # nothing is announced), then abandon (when there is an instance to abandon), tell operators
    if d.outcome == "failed":
        published = [a.event.detail_type for a in d.actions if isinstance(a, Publish)]
        # (a manager whose `swarm init` succeeded says so, then fails to be labelled)
        inited = isinstance(stimulus, JoinCommandFinished) and stimulus.action == "bootstrap-node"
        inited = inited and current is not None and current.mode is Mode.INIT and stimulus.status == "Success"
        assert published in ([NODE_JOIN_FAILED], *([[SWARM_INITIALIZED, NODE_JOIN_FAILED]] if inited else []))
        (closing,) = writes
        assert closing.stage is Stage.FAILED and closing.expires_at > now
        # (closed before it says the join failed; a swarm init is announced as in a success)
        failed_at = [i for i, a in enumerate(d.actions) if isinstance(a, Publish)][-1]
        assert kinds.index(SaveJoin) < failed_at
        assert CompleteLifecycle not in kinds or kinds.index(SaveJoin) < kinds.index(CompleteLifecycle)
        results = [a.result for a in d.actions if isinstance(a, CompleteLifecycle)]
        assert results == ([LifecycleResult.ABANDON] if alive(inst) else [])

    # CONTINUE only after a verified join (node in the swarm, Ready, with the expected role), and only
    # once the committing write is made: first in this decision, or by the one the crash interrupted
    # (or for a launch into the warm pool, above)
    continued = any(
        isinstance(a, CompleteLifecycle) and a.result is LifecycleResult.CONTINUE for a in d.actions
    )
    if continued and not into_pool:
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


def test_an_initialized_manager_ec2_gives_no_zone_for_says_so_then_fails_unverified():
    # Given a manager whose swarm init succeeded, holding the init lock, EC2 giving no zone for it
    booting = op(Role.MANAGER, Stage.BOOTSTRAPPING, mode=Mode.INIT)
    done = JoinCommandFinished(
        ME, "cmd-1", "bootstrap-node", "Success", "e", BootstrapResult(NODE, Role.MANAGER, "s1")
    )
    held = ClusterState(init_lock=InitLock(ME, NOW + 600))
    unzoned = replace(instance(Role.MANAGER), availability_zone=None)
    # When its bootstrap's success arrives
    d = decide_join(done, unzoned, held, booting, NOW, POLICY)
    # Then the swarm's init is announced and the lock released once, the join is closed as failed
    # before it says so, the instance is abandoned, and no verify-node is sent
    assert d.outcome == "failed" and f"cannot label node {NODE}" in d.reason
    assert [type(a) for a in d.actions] == [
        Publish, ReleaseInitLock, WakeWaitingJoins, SaveJoin, CompleteLifecycle, Publish
    ]  # fmt: skip
    assert [a.event.detail_type for a in d.actions if isinstance(a, Publish)] == [
        "Swarm Initialized",
        NODE_JOIN_FAILED,
    ]
    assert d.actions[3].op.stage is Stage.FAILED
    assert d.actions[4].result is LifecycleResult.ABANDON


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


# ------------------------------------------------------------------------------ warm pools


def a_leave(stage: LeaveStage = LeaveStage.DONE, **kw) -> LeaveOp:
    base = LeaveOp(
        ME, Role.WORKER, NODE, stage, 7, NOW - 500, NOW - 400, NOW - 100, "evt-0", "lifecycle",
        lifecycle_token=TOKEN_C, into_warm_pool=True,
    )  # fmt: skip
    return replace(base, **kw)


def launch(origin: str = WARM_POOL, token: str = TOKEN_B, **kw) -> JoinRequested:
    return JoinRequested(ME, "lifecycle", "evt-2", GROUPS[Role.WORKER], token=token, origin=origin, **kw)


BACK = replace(instance(), launched_at=LAUNCHED)  # a worker just started out of the pool, tag cleared


def test_a_launch_into_the_warm_pool_only_continues_its_own_action():
    d = decide_join(launch("EC2", TOKEN_A, destination=WARM_POOL), BACK, ClusterState(), None, NOW, POLICY)
    assert d.outcome == "complete"
    assert d.actions == (CompleteLifecycle(ME, GROUPS[Role.WORKER], LifecycleResult.CONTINUE, TOKEN_A),)


@pytest.mark.parametrize(
    "state", ["Warmed:Pending", "Warmed:Pending:Wait", "Warmed:Running", "Warmed:Stopped"]
)
def test_the_running_fallback_leaves_an_instance_in_the_warm_pool_alone(state):
    running = JoinRequested(ME, "running", "evt-2")
    d = decide_join(running, replace(BACK, lifecycle_state=state), ClusterState(), None, NOW, POLICY)
    assert d.outcome == "ignore" and "warm pool" in d.reason
    joins = decide_join(
        running, replace(BACK, lifecycle_state="Pending:Wait"), ClusterState(), None, NOW, POLICY
    )
    assert joins.outcome == "start"


@pytest.mark.parametrize(
    ("current", "replaced"),
    [
        (a_leave(), True),  # the scale-in that sent the node into the pool
        (a_leave(LeaveStage.DRAINING), False),  # still leaving: not overtaken
        (op(stage=Stage.JOINED, lifecycle_token=TOKEN_A), True),  # the join of an earlier launch
        (op(stage=Stage.JOINED, lifecycle_token=TOKEN_B), False),  # this launch's own join: a duplicate
        (op(stage=Stage.FAILED, lifecycle_token=TOKEN_B), False),
        (op(stage=Stage.VERIFYING, lifecycle_token=TOKEN_A), False),  # a join in flight
        (op(stage=Stage.JOINED, started_at=LAUNCHED.timestamp() - 60), True),  # running fallback, before
        (op(stage=Stage.JOINED, started_at=LAUNCHED.timestamp() + 60), False),  # ... since the last start
    ],
)
def test_a_launch_out_of_the_pool_replaces_only_an_op_of_the_instances_earlier_life(current, replaced):
    # Given the op a launch out of the warm pool finds, When it is decided
    d = decide_join(launch(), BACK, ClusterState(), current, NOW, POLICY)

    # Then a new join replaces the op (on its version) exactly when the op is of an earlier life
    created = [a for a in d.actions if isinstance(a, CreateJoin)]
    assert bool(created) is replaced, d
    if replaced:
        (create,) = created
        assert create.replacing == current.version and create.op.version == current.version + 1
        assert create.op.lifecycle_token == TOKEN_B and create.op.stage is Stage.WAITING
        assert create.op.replaced_leave_token == (TOKEN_C if isinstance(current, LeaveOp) else "")


def test_the_running_fallback_started_join_is_kept_without_a_launch_time():
    current = op(stage=Stage.JOINED, started_at=NOW - 10_000)
    d = decide_join(launch(), replace(BACK, launched_at=None), ClusterState(), current, NOW, POLICY)
    assert d.outcome == "ignore"


def test_an_old_op_or_node_tag_is_no_reason_to_join_outside_a_launch_out_of_the_pool():
    # A launch straight into the group, or the running fallback, never replaces an op
    for request in (launch("EC2"), JoinRequested(ME, "running", "evt-2")):
        assert decide_join(request, BACK, ClusterState(), a_leave(), NOW, POLICY).outcome == "leave-begun"
    # A node-id tag: already joined, unless the launch brings the instance out of the pool
    tagged = replace(BACK, tags={**BACK.tags, "swarmkeeper:node-id": NODE})
    assert decide_join(launch("EC2"), tagged, ClusterState(), None, NOW, POLICY).outcome == "ignore"
    assert decide_join(launch(), tagged, ClusterState(), None, NOW, POLICY).outcome == "start"
