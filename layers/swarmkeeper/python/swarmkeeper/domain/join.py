"""What to do next for a joining instance: a pure function of (stimulus, instance facts, cluster
state, operation in flight, now).

``decide_join`` returns a ``Decision``: an ``Outcome``, a reason and the actions to execute in order. The flow
(``swarmkeeper.flows.join``) gathers the facts and executes the actions; three actions can send it
back here with fresh facts (``AcquireInitLock`` always; ``RunBootstrap`` when the SSM agent has not
registered, as ``AgentNotReady``). Nothing here touches AWS.

A join ends in one conditional write of its op, made before anything it announces: ADMITTING (then
the tag, the node record, CONTINUE and Node Joined) or FAILED (then ABANDON and Node Join Failed). A
leave replaces the op on its version (``domain.leave``): once it has, that write fails and the join
announces nothing; every later stimulus finds the leave's op and is answered ``leave-begun``.

With a warm pool, one instance has several launch actions: into the pool (completed at once, no
join: the instance is stopped there) and out of it (the join). One that was a node comes back with
the op of its earlier life (the leave that sent it into the pool, or its old join): the launch out of
the pool replaces that op, and its cleared node-id tag is no reason to skip the join.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from swarmkeeper.domain.join_types import (
    AcquireInitLock,
    AgentNotReady,
    AgentRegistered,
    CompleteLifecycle,
    CreateJoin,
    JoinAction,
    JoinCommandFinished,
    JoinDecision,
    JoinPolicy,
    JoinRequested,
    JoinStepDue,
    JoinStimulus,
    RecordNode,
    ReleaseInitLock,
    RunBootstrap,
    RunVerify,
    SaveJoin,
    ScheduleJoinStep,
    TagNode,
    WakeWaitingJoins,
)
from swarmkeeper.domain.kernel import (
    NON_TERMINAL,
    TERMINAL_SUCCESS,
    BusEvent,
    Decision,
    DetailType,
    Outcome,
    Publish,
    detail_type,
    ignore,
)
from swarmkeeper.domain.labels import UnlabelledNode, node_labels
from swarmkeeper.domain.models import (
    WARM_POOL,
    ClusterState,
    InstanceFacts,
    JoinOp,
    LeaveOp,
    LifecycleResult,
    Mode,
    Role,
    Stage,
)

SWARM_INITIALIZED = detail_type("Swarm Initialized")
NODE_JOIN_STARTED = detail_type("Node Join Started")
NODE_JOINED = detail_type("Node Joined")
NODE_JOIN_FAILED = detail_type("Node Join Failed")


def _ignore(reason: str) -> JoinDecision:
    return ignore(reason)


# -------------------------------------------------------------------------------------- decide


def decide_join(
    stimulus: JoinStimulus,
    instance: InstanceFacts | None,
    cluster: ClusterState,
    op: JoinOp | LeaveOp | None,
    now: float,
    policy: JoinPolicy,
) -> JoinDecision:
    """``op``: the instance's op item. A leave op means the join is over, except for a launch into
    the warm pool or out of it over the closed leave that sent the node there (``past_the_leave``)."""
    if isinstance(stimulus, JoinRequested):
        if isinstance(op, LeaveOp) and not past_the_leave(stimulus, op):
            return _leave_begun(op)
        return _on_join_requested(stimulus, instance, cluster, op, now, policy)
    if isinstance(op, LeaveOp):
        return _leave_begun(op)
    match stimulus:
        case JoinStepDue():
            return _on_step(stimulus, instance, cluster, op, now, policy)
        case AgentRegistered():
            return _on_agent_registered(stimulus, instance, cluster, op, now, policy)
        case AgentNotReady():
            return _on_agent_not_ready(stimulus, instance, cluster, op, now, policy)
        case JoinCommandFinished():
            return _on_command_finished(stimulus, instance, cluster, op, now, policy)
    raise TypeError(f"unknown stimulus {stimulus!r}")


def _on_join_requested(
    s: JoinRequested,
    instance: InstanceFacts | None,
    cluster: ClusterState,
    op: JoinOp | LeaveOp | None,
    now: float,
    policy: JoinPolicy,
) -> JoinDecision:
    identity = policy.identity
    if s.group is not None and not identity.owns_group(s.group):
        return _ignore(f"group {s.group} is not one of cluster {identity.name}")
    if instance is None:
        return _ignore("instance not found")
    if instance.gone:
        return _ignore(f"instance is {instance.state}")
    role = identity.role_of(instance.tags)
    if role is None:
        return _ignore(f"instance is not a member of cluster {identity.name}")
    if s.destination == WARM_POOL:
        # Into the warm pool, to be stopped there: let it go on (this action only), join it later.
        done = CompleteLifecycle(instance.instance_id, s.group, LifecycleResult.CONTINUE, s.token)
        return Decision(
            Outcome.COMPLETE, "launched into the warm pool: it joins when it leaves the pool", (done,)
        )
    if instance.in_warm_pool:
        return _ignore(f"instance is in the warm pool ({instance.lifecycle_state}): it joins when it leaves")
    from_pool = s.origin == WARM_POOL
    if instance.node_id and not from_pool:
        return _ignore(f"instance already joined as node {instance.node_id}")
    if op is not None and not (from_pool and _of_an_earlier_life(op, s, instance)):
        return _ignore(f"join already {op.stage} (started by {op.via} event {op.correlation_id})")
    new = JoinOp(
        instance_id=instance.instance_id,
        role=role,
        group=instance.group or s.group,
        stage=Stage.WAITING,
        version=op.version + 1 if op is not None else 1,
        started_at=now,
        deadline=now + policy.agent_wait_seconds,
        correlation_id=s.correlation_id,
        via=s.via,
        expires_at=now + policy.open_op_seconds,
        lifecycle_token=s.token,
        replaced_leave_token=op.lifecycle_token if isinstance(op, LeaveOp) else "",
    )
    why = f"{s.via} event" + (" (out of the warm pool)" if from_pool else "")
    created = CreateJoin(new, op.version if op is not None else None)
    started = (created, Publish(_event(policy, new, NODE_JOIN_STARTED, why)))
    nxt = _advance(new, instance, cluster, now, policy)
    return Decision(Outcome.START, nxt.reason, started + nxt.actions)


def _leave_begun(op: LeaveOp) -> JoinDecision:
    # The join is over, whatever the stimulus says; a late bootstrap-node result is the leave's
    # (``flows.commands`` hands it over).
    return Decision(Outcome.LEAVE_BEGUN, f"the instance's leave began first (it is {op.stage})")


def out_of_the_pool_over(stimulus: JoinStimulus, op: JoinOp | LeaveOp | None) -> bool:
    """A launch out of the warm pool that finds a closed op: the op may be of the instance's earlier
    life (``_of_an_earlier_life`` tells, on the instance's facts), and then a new join replaces it."""
    return (
        isinstance(stimulus, JoinRequested)
        and stimulus.origin == WARM_POOL
        and op is not None
        and op.stage.closed
    )


def past_the_leave(stimulus: JoinRequested, op: LeaveOp) -> bool:
    """Whether a request is decided despite the instance's leave op: a launch into the warm pool (it
    is only continued) or one out of it over the closed leave that sent the node there."""
    return stimulus.destination == WARM_POOL or out_of_the_pool_over(stimulus, op)


def _of_an_earlier_life(op: JoinOp | LeaveOp, s: JoinRequested, instance: InstanceFacts) -> bool:
    """Whether the op a launch out of the warm pool finds is from before the pool (a new join
    replaces it) rather than of this launch (a duplicate, or its join already under way)."""
    if not op.stage.closed:
        return False
    if isinstance(op, LeaveOp):
        return True  # the scale-in that sent the node into the pool
    if op.lifecycle_token:
        return op.lifecycle_token != s.token
    # Started by the `running` fallback: of this life when it started after the instance last did.
    return instance.launched_at is not None and op.started_at < instance.launched_at.timestamp()


def _on_step(
    s: JoinStepDue,
    instance: InstanceFacts | None,
    cluster: ClusterState,
    op: JoinOp | None,
    now: float,
    policy: JoinPolicy,
) -> JoinDecision:
    if op is None:
        return _ignore("no join in flight")
    if op.stage.closed:
        return _ignore(f"join already {op.stage}")
    if op.version != s.version:
        return _ignore(f"stale step (version {s.version}, op at {op.version})")
    if instance is None or instance.gone:
        state = instance.state if instance else "gone"
        return _fail(op, f"instance is {state}", cluster, now, policy, complete=False)
    if op.stage is Stage.WAITING:
        return _advance(op, instance, cluster, now, policy)
    if op.stage is Stage.AWAITING_VERIFIER:
        if now >= op.deadline:
            return _fail(op, "no joined manager to verify the node from", cluster, now, policy)
        return _verify_or_wait(op, op.node_id, instance, cluster, now, policy)
    return _ignore(f"command in flight ({op.stage})")


def _on_agent_registered(
    s: AgentRegistered,
    instance: InstanceFacts | None,
    cluster: ClusterState,
    op: JoinOp | None,
    now: float,
    policy: JoinPolicy,
) -> JoinDecision:
    if op is None:
        return _ignore("no join in flight (its launch event will find the agent registered)")
    if op.stage is not Stage.WAITING:
        return _ignore(f"join is {op.stage}, not waiting")
    # What the next poll would do, now: the pending poll's step finds a newer version and is dropped.
    return _on_step(
        JoinStepDue(s.instance_id, op.version, s.correlation_id), instance, cluster, op, now, policy
    )


def _on_agent_not_ready(
    s: AgentNotReady,
    instance: InstanceFacts | None,
    cluster: ClusterState,
    op: JoinOp | None,
    now: float,
    policy: JoinPolicy,
) -> JoinDecision:
    if op is None or op.stage is not Stage.WAITING or op.version != s.version:
        return _ignore("no waiting join for this instance")
    if now >= op.deadline:
        reason = f"SSM agent did not register within {policy.agent_wait_seconds}s"
        return _fail(op, reason, cluster, now, policy, complete=_alive(instance))
    poll = policy.agent_poll(op.attempts, now, op.deadline)
    waiting = _wait(op, "the SSM agent", now, policy, delay=poll)
    return _with_first(_release_if_held(op, cluster, now), waiting)


_STAGE_OF_ACTION = {"bootstrap-node": Stage.BOOTSTRAPPING, "verify-node": Stage.VERIFYING}


def _on_command_finished(
    s: JoinCommandFinished,
    instance: InstanceFacts | None,
    cluster: ClusterState,
    op: JoinOp | None,
    now: float,
    policy: JoinPolicy,
) -> JoinDecision:
    if op is None or op.stage.closed:
        return _ignore("no join in flight for this command")
    # The flow saves the stage before it sends the command and records the id after: a command that
    # finishes in between finds its stage with no id yet, and is that stage's command.
    sent_not_recorded = op.command_id == "" and _STAGE_OF_ACTION.get(s.action) is op.stage
    if op.command_id != s.command_id and not sent_not_recorded:
        return _ignore(f"stale command {s.command_id} (join is at {op.stage} {op.command_id or '-'})")
    if s.status in NON_TERMINAL:
        return _ignore(f"command {s.status}")
    ok = s.status == TERMINAL_SUCCESS
    if op.stage is Stage.ADMITTING and s.action == "verify-node" and ok:
        # Its verify's Success again (a retry after a crash mid-admission): what the admission had to do.
        return _admit(op, now, policy, commit=False, alive=_alive(instance))
    if op.stage is Stage.BOOTSTRAPPING and s.action == "bootstrap-node":
        return _after_bootstrap(s, ok, instance, cluster, op, now, policy)
    if op.stage is Stage.VERIFYING and s.action == "verify-node":
        return _after_verify(s, ok, instance, cluster, op, now, policy)
    return _ignore(f"{s.action} does not match join stage {op.stage}")


def _after_bootstrap(
    s: JoinCommandFinished,
    ok: bool,
    instance: InstanceFacts | None,
    cluster: ClusterState,
    op: JoinOp,
    now: float,
    policy: JoinPolicy,
) -> JoinDecision:
    release = (ReleaseInitLock(op.instance_id),) if op.mode is Mode.INIT else ()
    if not ok:
        alive = instance is not None and not instance.gone and instance.private_ip is not None
        if op.mode is Mode.JOIN and s.bad_join_token and op.token_retries < policy.token_retries and alive:
            # Tokens were rotated between the script's read and its join: run it again, it reads anew.
            then = _next(op, stage=Stage.BOOTSTRAPPING, token_retries=op.token_retries + 1)
            return Decision(
                Outcome.RETRY, "join token was rotated under the join", (RunBootstrap(Mode.JOIN, then),)
            )
        reason = _failed("bootstrap-node", s)
        return _with_first(release, _fail(op, reason, cluster, now, policy, complete=_alive(instance)))
    result = s.bootstrap
    if result is None:
        reason = "bootstrap-node printed no node-id"
        return _with_first(release, _fail(op, reason, cluster, now, policy, complete=_alive(instance)))
    if result.role is not op.role:
        reason = f"node joined as {result.role}, expected {op.role}"
        return _with_first(release, _fail(op, reason, cluster, now, policy, complete=_alive(instance)))
    inited: tuple[JoinAction, ...] = ()
    if op.mode is Mode.INIT:
        reason = f"swarm {result.cluster_id} initialized" if result.cluster_id else "swarm initialized"
        inited = (
            Publish(_event(policy, op, SWARM_INITIALIZED, reason, result.node_id)),
            *release,
            WakeWaitingJoins(),
        )
    op = replace(op, node_id=result.node_id)
    d = _verify_or_wait(op, result.node_id, instance, cluster, now, policy, fresh_wait=True)
    return _with_first(inited, d)


def _after_verify(
    s: JoinCommandFinished,
    ok: bool,
    instance: InstanceFacts | None,
    cluster: ClusterState,
    op: JoinOp,
    now: float,
    policy: JoinPolicy,
) -> JoinDecision:
    v = s.verify
    if not ok:
        return _fail(op, _failed("verify-node", s), cluster, now, policy, complete=_alive(instance))
    if v is None or v.node_id != op.node_id or v.state != "ready" or v.role != op.role:
        seen = f"{v.node_id} {v.state} {v.role}" if v else "nothing"
        reason = f"verify-node saw {seen}, expected {op.node_id} ready {op.role}"
        return _fail(op, reason, cluster, now, policy, complete=_alive(instance))
    if not _alive(instance):
        # Ready, but its instance is gone: nothing to CONTINUE or tag; the instance's shutting-down /
        # terminated event removes the node from the swarm.
        state = instance.state if instance else "not found"
        reason = f"node {op.node_id} is ready but its instance is {state}"
        return _fail(op, reason, cluster, now, policy, complete=False)
    admitting = _next(op, stage=Stage.ADMITTING, command_id=s.command_id, reason="verified ready")
    return _admit(admitting, now, policy, commit=True, alive=True)


def _admit(op: JoinOp, now: float, policy: JoinPolicy, commit: bool, alive: bool) -> JoinDecision:
    """The admission of a verified node: the ADMITTING write first (``commit``; a leave that began
    before it makes it fail, and then nothing below happens), then what it announces (CONTINUE while
    the instance is ``alive``), then JOINED."""
    closed = _closing(_next(op, stage=Stage.JOINED, reason="joined"), now, policy)
    return Decision(
        Outcome.JOINED,
        f"node {op.node_id} is ready as {op.role}",
        (
            *((SaveJoin(op),) if commit else ()),
            TagNode(op.instance_id, op.node_id),
            RecordNode(op.instance_id, op.node_id, op.role, op.verifier),
            *((CompleteLifecycle(op.instance_id, op.group, LifecycleResult.CONTINUE),) if alive else ()),
            Publish(_event(policy, op, NODE_JOINED, f"ready as {op.role}")),
            *((WakeWaitingJoins(),) if op.role is Role.MANAGER else ()),
            SaveJoin(closed),
        ),
    )


def waits_for_the_swarm(op: JoinOp) -> bool:
    """A join that a WakeWaitingJoins moves on: waiting for the cluster to be initialized, or
    bootstrapped and waiting for a joined manager to verify it from."""
    return (op.stage is Stage.WAITING and op.waiting_for.startswith("the cluster")) or (
        op.stage is Stage.AWAITING_VERIFIER
    )


# ------------------------------------------------------------------------------------- helpers


def _advance(
    op: JoinOp, instance: InstanceFacts, cluster: ClusterState, now: float, policy: JoinPolicy
) -> JoinDecision:
    """Next move of a WAITING op: give up, wait, take the init lock, or bootstrap. Waits for the
    instance end at ``op.deadline``; waits for the cluster at ``started_at + cluster_wait_seconds``."""
    cluster_deadline = op.started_at + policy.cluster_wait_seconds
    if now >= cluster_deadline or (now >= op.deadline and not op.waiting_for.startswith("the cluster")):
        waited = int(now - op.started_at)
        what = op.waiting_for or "the instance"
        return _fail(op, f"gave up after {waited}s waiting for {what}", cluster, now, policy)
    if not instance.private_ip:
        return _wait(op, "the instance's private address", now, policy)
    bootstrapping = _next(op, stage=Stage.BOOTSTRAPPING)
    if cluster.initialized:
        then = replace(bootstrapping, mode=Mode.JOIN)
        return Decision(
            Outcome.BOOTSTRAP,
            "cluster exists: join",
            (*_release_if_held(op, cluster, now), RunBootstrap(Mode.JOIN, then)),
        )
    if op.role is Role.WORKER:
        return _wait(op, "the cluster to be initialized", now, policy, until=cluster_deadline)
    lock = cluster.init_lock
    if lock is not None and lock.held_by(op.instance_id, now):
        return Decision(
            Outcome.BOOTSTRAP,
            "holds the init lock: init",
            (RunBootstrap(Mode.INIT, replace(bootstrapping, mode=Mode.INIT)),),
        )
    if lock is not None and lock.held_by_other(op.instance_id, now):
        what = f"the cluster to be initialized by {lock.holder}"
        return _wait(op, what, now, policy, until=cluster_deadline)
    return Decision(
        Outcome.LOCK,
        "no cluster and no live init lock",
        (AcquireInitLock(op.instance_id, now + policy.init_lock_seconds),),
    )


def _verify_or_wait(
    op: JoinOp,
    node_id: str,
    instance: InstanceFacts | None,
    cluster: ClusterState,
    now: float,
    policy: JoinPolicy,
    fresh_wait: bool = False,
) -> JoinDecision:
    # The verifying manager labels the node before it checks it is Ready (a node cannot label
    # itself): a node that cannot be labelled is never verified, so never reported joined.
    try:
        labels = node_labels(instance, op.role)
    except UnlabelledNode as err:
        reason = f"cannot label node {node_id}: {err}"
        return _fail(op, reason, cluster, now, policy, complete=_alive(instance))
    # A manager verifies itself (it can run `docker node ls`); a worker needs a joined manager.
    if op.role is Role.MANAGER:
        target = op.instance_id
    else:
        target = next((m for m in cluster.managers if m != op.instance_id), "")
    if target:
        then = _next(op, stage=Stage.VERIFYING, node_id=node_id, verifier=target)
        verify = RunVerify(target, node_id, then, labels)
        return Decision(Outcome.VERIFY, f"verify {node_id} on {target}", (verify,))
    waiting = replace(op, stage=Stage.AWAITING_VERIFIER, node_id=node_id)
    if fresh_wait:
        waiting = replace(waiting, attempts=0, deadline=now + policy.agent_wait_seconds)
    return _wait(waiting, "a joined manager to verify from", now, policy)


def _wait(
    op: JoinOp,
    what: str,
    now: float,
    policy: JoinPolicy,
    until: float | None = None,
    delay: int | None = None,
) -> JoinDecision:
    if delay is None:
        delay = policy.backoff(op.attempts, now, op.deadline if until is None else until)
    waiting = _next(op, attempts=op.attempts + 1, waiting_for=what)
    step = JoinStepDue(op.instance_id, waiting.version, op.correlation_id)
    return Decision(
        Outcome.WAIT, f"waiting {delay}s for {what}", (SaveJoin(waiting), ScheduleJoinStep(step, delay))
    )


def _fail(
    op: JoinOp, reason: str, cluster: ClusterState, now: float, policy: JoinPolicy, complete: bool = True
) -> JoinDecision:
    # Closed first: a leave that replaced the op meanwhile makes the write fail, so a join the leave
    # cancelled is never also announced as failed. A crash right after it leaves the launch action to
    # its default result, which is ABANDON too.
    closed = _closing(_next(op, stage=Stage.FAILED, reason=reason), now, policy)
    actions: tuple[JoinAction, ...] = (
        SaveJoin(closed),
        *_release_if_held(op, cluster, now),
        *((CompleteLifecycle(op.instance_id, op.group, LifecycleResult.ABANDON),) if complete else ()),
        Publish(_event(policy, op, NODE_JOIN_FAILED, reason)),
    )
    return Decision(Outcome.FAILED, reason, tuple(dict.fromkeys(actions)))


def _release_if_held(op: JoinOp, cluster: ClusterState, now: float) -> tuple[JoinAction, ...]:
    lock = cluster.init_lock
    if lock is not None and lock.holder == op.instance_id:
        return (ReleaseInitLock(op.instance_id),)
    return ()


def _with_first(first: tuple[JoinAction, ...], d: JoinDecision) -> JoinDecision:
    """Prepend ``first`` to the decision's actions, dropping later duplicates."""
    actions = tuple(dict.fromkeys(first + d.actions))
    return replace(d, actions=actions)


def _alive(instance: InstanceFacts | None) -> bool:
    """Only a live instance has a lifecycle action or a health status worth setting."""
    return instance is not None and not instance.gone


def _failed(action: str, s: JoinCommandFinished) -> str:
    return f"{action} {s.status}: {s.detail}" if s.detail else f"{action} {s.status}"


def _next(op: JoinOp, **changes: Any) -> JoinOp:
    return replace(op, version=op.version + 1, **changes)


def _closing(op: JoinOp, now: float, policy: JoinPolicy) -> JoinOp:
    return replace(op, waiting_for="", expires_at=now + policy.closed_op_seconds)


def _event(policy: JoinPolicy, op: JoinOp, kind: DetailType, reason: str, node_id: str = "") -> BusEvent:
    return BusEvent(
        detail_type=kind,
        cluster=policy.identity.name,
        instance_id=op.instance_id,
        node_id=node_id or op.node_id,
        role=str(op.role),
        reason=reason,
        correlation_id=op.correlation_id,
    )
