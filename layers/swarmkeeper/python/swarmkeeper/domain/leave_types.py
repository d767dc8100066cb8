"""The terms a leave is decided in: its policy (budgets and waits), the stimuli that move it, the
facts the exit flow gathers for it and the actions a decision returns. ``domain.leave`` decides in
them; ``domain.manager_removal`` (which ``domain.leave`` asks) stands on the policy and the facts."""

from __future__ import annotations

from dataclasses import field

from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.kernel import Decision, Publish
from swarmkeeper.domain.models import ClusterIdentity, GroupLaunches, InstanceFacts, JoinOp, LeaveOp, Role
from swarmkeeper.domain.view import ClusterView

# What started a leave: a terminate lifecycle action, a Spot interruption warning, a rebalance
# recommendation, or the instance's state change (ungraceful: shutting-down / terminated).
VIA_LIFECYCLE, VIA_SPOT, VIA_REBALANCE, VIA_STATE = "lifecycle", "spot", "rebalance", "state"


@frozen
class LeavePolicy:
    identity: ClusterIdentity
    drain_timeout_seconds: int
    parameter_prefix: str  # remove-node refreshes <prefix>/manager-addresses
    region: str
    rebalance_drain_workers: bool = True
    spot_drain_seconds: int = 90  # a Spot warning gives two minutes in all
    drain_chunk_seconds: int = 120  # one drain-node command waits at most this long for tasks to move
    poll_seconds: int = 15  # delay between drain polls
    view_wait_seconds: int = 20  # delay while a fresh swarm view is being taken
    guard_wait_seconds: int = 60  # delay before asking the quorum guard again (on a new view)
    replacement_poll_seconds: int = 30  # delay between looks for a replacement (its join wakes sooner)
    quorum_wait_seconds: int = 1800  # how long a manager removal may wait for the guard / lock
    removal_seconds: int = 600  # leave + remove after the drain
    admission_wait_seconds: int = 2  # the pause before draining a node whose join was admitting
    manager_attempts: int = 3  # managers tried per stage before waiting
    lock_seconds: int = 1200  # manager-change lock lease (longer than remove-node may run)
    closed_op_seconds: int = 86_400

    def drain_budget(self, via: str) -> int:
        return (
            min(self.spot_drain_seconds, self.drain_timeout_seconds)
            if via == VIA_SPOT
            else (self.drain_timeout_seconds)
        )

    def budget(self, via: str, role: Role) -> int:
        """From the op's start to completing the lifecycle action whatever happened."""
        return self.drain_budget(via) + self.removal_budget(role)

    def removal_budget(self, role: Role) -> int:
        return self.removal_seconds + (self.quorum_wait_seconds if role is Role.MANAGER else 0)

    def replacement_wait_until(self, op: LeaveOp) -> float:
        """When a removal stops waiting for a replacement: what is left is for the removal itself."""
        return op.deadline - self.removal_seconds


# ------------------------------------------------------------------------------------- stimuli


@frozen
class LeaveRequested:
    instance_id: str
    via: str  # lifecycle | spot | rebalance | state
    correlation_id: str
    group: str | None = None  # AutoScalingGroupName of a terminate lifecycle action
    token: str = ""  # LifecycleActionToken of a terminate lifecycle action
    into_warm_pool: bool = False  # scale-in back into the warm pool (Destination WarmPool)


@frozen
class LeaveStepDue:
    instance_id: str
    version: int
    correlation_id: str = ""


@frozen
class LeaveCommandFinished:
    instance_id: str  # the leaving instance (not the manager the command ran on)
    command_id: str
    action: str  # drain-node | leave-swarm | remove-node
    status: str
    tasks_remaining: int | None = None  # drain-node
    missing: bool = False  # drain-node: the swarm no longer knows the node
    removed: bool = False  # remove-node said removed=true
    detail: str = ""
    ran_on: str = ""  # the instance the command ran on


@frozen
class BootstrapReported:
    """The result of the bootstrap-node of the join a leave cancelled: its status event (handed over
    by ``flows.commands``), or its invocation as a step of the leave reads it."""

    instance_id: str
    command_id: str
    status: str
    node_id: str = ""  # what bootstrap-node printed; "": no node id
    role: Role | None = None  # the role it joined as


@frozen
class LeaveNotDelivered:
    """SendCommand said InvalidInstanceId: ``target`` is gone or its agent is not registered."""

    instance_id: str
    version: int
    action: str
    target: str


LeaveStimulus = LeaveRequested | LeaveStepDue | LeaveCommandFinished | LeaveNotDelivered | BootstrapReported


@frozen
class LeaveFacts:
    instance: InstanceFacts | None
    role: Role | None  # None: not a member of this cluster (or unknown)
    node_id: str  # from the node-id tag, the node# item or the join in flight; "" when unknown
    join: JoinOp | None = None  # the join op stored for the instance, if any
    view: ClusterView | None = None
    managers: tuple[str, ...] = ()  # instances that may run manager-side commands, best first
    lock_holder: str | None = None  # holder of an unexpired manager-change lock
    replacements: GroupLaunches = field(default_factory=GroupLaunches)  # what the manager group brings in
    bootstrap: BootstrapReported | None = None  # the join's bootstrap-node in flight, as read now
    load_balanced: bool = False  # still a target (any state but out) of the cluster's load balancer


# ------------------------------------------------------------------------------------- actions


@frozen
class CreateLeave:
    op: LeaveOp
    replacing: int | None  # version of the join op it replaces (conditional), None: no op yet


@frozen
class SaveLeave:
    op: LeaveOp  # conditional on the stored version being op.version - 1


@frozen
class SendCommand:
    action: str
    target: str
    parameters: tuple[tuple[str, str], ...]
    then: LeaveOp  # saved with the command id once SendCommand returns
    # A manager's removal takes the manager-change lock (lock#manager-change) until then, first; when
    # another holder has it, the flow saves ``then`` as waiting and schedules a step instead.
    lock_until: float | None = None


@frozen
class Heartbeat:
    instance_id: str
    group: str


@frozen
class CompleteTerminate:
    instance_id: str
    group: str


@frozen
class DeregisterTargets:
    """Out of every target group of the cluster's load balancer (no new connection is sent to it)."""

    instance_id: str


@frozen
class ScheduleLeaveStep:
    step: LeaveStepDue
    delay_seconds: int


@frozen
class RequestView:
    correlation_id: str
    leaving: str  # not from the leaving manager itself


@frozen
class ReleaseManagerLock:
    holder: str


@frozen
class ForgetNode:
    instance_id: str
    clear_tag: bool = False  # the instance lives on (in the warm pool): its node-id tag is cleared too


LeaveAction = (
    CreateLeave
    | SaveLeave
    | SendCommand
    | Heartbeat
    | CompleteTerminate
    | DeregisterTargets
    | ScheduleLeaveStep
    | RequestView
    | ReleaseManagerLock
    | ForgetNode
    | Publish
)

LeaveDecision = Decision[LeaveAction]
