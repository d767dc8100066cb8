"""What the flows know about the world: instances, the cluster, and the state table's items (operations
in flight, locks, the reconcile pass and the token rotation in flight)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, replace
from datetime import datetime
from enum import StrEnum

from swarmkeeper.domain.frozen import frozen


class Role(StrEnum):
    MANAGER = "manager"
    WORKER = "worker"


class Mode(StrEnum):
    INIT = "init"
    JOIN = "join"


class Stage(StrEnum):
    WAITING = "waiting"  # op created; waiting for the SSM agent, the cluster or the init lock
    BOOTSTRAPPING = "bootstrapping"  # bootstrap-node sent to the instance
    AWAITING_VERIFIER = "awaiting-verifier"  # joined; waiting for a joined manager to verify from
    VERIFYING = "verifying"  # verify-node sent to a manager
    # Verified Ready and committed (the write a leave cannot overtake): tag, node record, CONTINUE and
    # Node Joined are under way; a redelivered verify status does them again.
    ADMITTING = "admitting"
    JOINED = "joined"  # closed: success
    FAILED = "failed"  # closed: failure

    @property
    def closed(self) -> bool:
        return self in (Stage.JOINED, Stage.FAILED)


class LifecycleResult(StrEnum):
    CONTINUE = "CONTINUE"
    ABANDON = "ABANDON"


# EC2 states in which an instance will never join.
GONE_STATES = frozenset({"shutting-down", "terminated", "stopping", "stopped"})

# Set by Auto Scaling on the instances of a group; no principal can create or change an aws: tag, so
# this tag, unlike swarmkeeper:cluster / swarmkeeper:role, says which group an instance belongs to.
GROUP_TAG = "aws:autoscaling:groupName"
NODE_ID_TAG = "swarmkeeper:node-id"

# A lifecycle action's Origin / Destination when the group has a warm pool (EC2 | AutoScalingGroup |
# WarmPool): an instance launched into the pool is stopped (or kept running) outside the group, and
# joins only when a later launch brings it out; scale-in may send a node back into the pool.
WARM_POOL = "WarmPool"


@frozen
class ClusterIdentity:
    name: str
    manager_group: str
    worker_group: str

    def role_of(self, tags: Mapping[str, str]) -> Role | None:
        """The instance's role in this cluster: manager in the manager group, worker in the worker
        group, None outside both (whatever swarmkeeper:* tags anyone put on it)."""
        group = tags.get(GROUP_TAG)
        if group == self.manager_group:
            return Role.MANAGER
        if group == self.worker_group:
            return Role.WORKER
        return None

    @property
    def groups(self) -> tuple[str, str]:
        return (self.manager_group, self.worker_group)

    def owns_group(self, group: str | None) -> bool:
        return group in self.groups


@frozen
class InstanceFacts:
    instance_id: str
    state: str
    tags: Mapping[str, str] = field(default_factory=dict)
    private_ip: str | None = None
    launched_at: datetime | None = None  # EC2's LaunchTime: the instance's last start
    # Auto Scaling's lifecycle state (Pending:Wait, InService, Warmed:Stopped, ...) when it was read;
    # None when it was not (only the `running` fallback needs it).
    lifecycle_state: str | None = None
    # Where and what the instance is (Placement.AvailabilityZone, InstanceType, InstanceLifecycle):
    # the node labels verify-node sets (``domain.labels``).
    availability_zone: str | None = None
    instance_type: str | None = None
    spot: bool = False

    @property
    def group(self) -> str | None:
        return self.tags.get(GROUP_TAG)

    @property
    def node_id(self) -> str | None:
        """The node-id tag; None when there is none or it was cleared (the node left the swarm)."""
        return self.tags.get(NODE_ID_TAG) or None

    @property
    def in_warm_pool(self) -> bool:
        return (self.lifecycle_state or "").startswith("Warmed:")

    @property
    def gone(self) -> bool:
        return self.state in GONE_STATES


@frozen
class InitLock:
    """``lock#swarm-init``: who may run ``docker swarm init``, until when (epoch seconds)."""

    holder: str
    expires_at: float

    def held_by_other(self, instance_id: str, now: float) -> bool:
        return self.holder != instance_id and self.expires_at > now

    def held_by(self, instance_id: str, now: float) -> bool:
        return self.holder == instance_id and self.expires_at > now


@frozen
class ClusterState:
    """Facts about the cluster. ``initialized`` means the parameter ``<prefix>/cluster-id`` exists.
    ``managers``: running manager instances that carry a node-id tag, preferred verifier first."""

    initialized: bool = False
    init_lock: InitLock | None = None
    managers: tuple[str, ...] = ()


@frozen
class JoinOp:
    """``op#<instance-id>``: the join in flight on one instance (closed ops linger until TTL so late
    duplicates are recognised)."""

    instance_id: str
    role: Role
    group: str | None
    stage: Stage
    version: int
    started_at: float
    deadline: float  # give up waiting (agent, cluster, lock, verifier) after this
    correlation_id: str  # id of the AWS event that started the join
    via: str  # "lifecycle" or "running"
    attempts: int = 0  # delayed re-deliveries so far in the current wait
    waiting_for: str = ""
    mode: Mode | None = None
    command_id: str = ""
    node_id: str = ""
    verifier: str = ""
    token_retries: int = 0
    reason: str = ""
    expires_at: float = 0.0  # the item's TTL (epoch seconds)
    lifecycle_token: str = ""  # LifecycleActionToken of the launch action it holds ("" via running)
    # A join out of the warm pool replaces the leave that sent the node there: that terminate action's
    # token, so a late duplicate of it is not taken for a new scale-in.
    replaced_leave_token: str = ""

    def sent(self, command_id: str) -> JoinOp:
        """The op once its command is sent: the command's id recorded, on the next version."""
        return replace(self, command_id=command_id, version=self.version + 1)


@frozen
class GroupLaunches:
    """What Auto Scaling is bringing into a group: instances on their way into service (Pending,
    Pending:Wait, Pending:Proceed) and capacity it has yet to launch (desired capacity minus what is in
    service or on its way: e.g. a replacement for an instance terminated without decrementing it, in
    the moment before its launch, or after a launch was abandoned)."""

    launching: tuple[str, ...] = ()
    owed: int = 0

    def __bool__(self) -> bool:
        return bool(self.launching) or self.owed > 0


class LeaveStage(StrEnum):
    # The join it cancelled had a bootstrap-node in flight: wait for its result (a node id to remove,
    # or none: never joined) before anything else.
    AWAITING_BOOTSTRAP = "awaiting-bootstrap"
    DRAINING = "draining"  # drain-node sent to a manager, or waiting to poll it again
    LEAVING = "leaving"  # leave-swarm sent to the leaving node itself (best effort)
    REMOVING = "removing"  # waiting for a fresh view / the quorum guard, or remove-node sent to a manager
    DONE = "done"  # closed (removed, or given up and left to reconcile)

    @property
    def closed(self) -> bool:
        return self is LeaveStage.DONE


@frozen
class LeaveOp:
    """``op#<instance-id>`` with kind ``leave``: a node on its way out of the swarm. It replaces the
    instance's join op (conditional on that op's version, so a join still in flight stops) and lingers
    a day once closed, so duplicate and late events are recognised."""

    instance_id: str
    role: Role
    node_id: str
    stage: LeaveStage
    version: int
    started_at: float
    drain_deadline: float  # stop waiting for tasks to move after this; proceed anyway
    deadline: float  # the hook budget: past it the terminate action is completed whatever happened
    correlation_id: str
    via: str  # lifecycle | spot | rebalance | state (ungraceful: shutting-down / terminated)
    group: str | None = None  # set when a terminate lifecycle action waits for this op
    command_id: str = ""
    target: str = ""  # instance the command in flight runs on
    excluded: tuple[str, ...] = ()  # managers that failed a command of this op
    attempts: int = 0
    waiting_for: str = ""
    view_wanted_at: float = 0.0  # a manager is removed only on a swarm view taken after this
    alerted: bool = False  # Quorum At Risk published for this op
    spare_waived: bool = False  # removed without a spare manager: the replacement came too late
    reason: str = ""
    expires_at: float = 0.0
    # The cancelled join's bootstrap-node ("" when its id was never recorded), and whether its result
    # is still to come: a node id it reports, even after this op closed, is removed at once.
    bootstrap_command: str = ""
    awaiting_bootstrap: bool = False
    lifecycle_token: str = ""  # LifecycleActionToken of the terminate action it holds, if any
    # Scale-in back into the warm pool: the instance is stopped, not terminated, so once removed it
    # is no node any more (its node-id tag is cleared) and may join again when it leaves the pool.
    into_warm_pool: bool = False

    @property
    def graceful(self) -> bool:
        return self.via != "state"

    def sent(self, command_id: str) -> LeaveOp:
        """The op once its command is sent: the command's id recorded, on the next version."""
        return replace(self, command_id=command_id, version=self.version + 1)


class OpKind(StrEnum):
    JOIN = "join"
    LEAVE = "leave"


@frozen
class OpSummary:
    """An ``op#<instance-id>`` item as the scan of open operations returns it: which instance, what
    kind of op, at which stage, and its clock; not the op itself (read that by its key)."""

    instance_id: str
    kind: OpKind
    stage: str
    role: Role | None = None
    started_at: float | None = None
    deadline: float | None = None


@frozen
class ReconcilePass:
    """``op#reconcile``: the describe-swarm in flight (no command id yet while it is being sent)."""

    command_id: str
    target: str
    correlation_id: str
    why: str
    excluded: tuple[str, ...]  # managers whose describe-swarm failed earlier in this pass
    sent_at: float
    expires_at: float  # a lost status event blocks reconciles at most until then


@frozen
class RotationOp:
    """``op#rotate-tokens``: the rotation in flight (no command id yet while it is being sent)."""

    command_id: str
    target: str
    node_id: str
    correlation_id: str
    expires_at: float
