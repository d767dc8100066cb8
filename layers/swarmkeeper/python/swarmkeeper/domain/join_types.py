"""The terms a join is decided in: its policy (waits, backoffs, lock and op lifetimes), the stimuli
that move it and the actions a decision returns. ``domain.join`` decides in them."""

from __future__ import annotations

from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.kernel import Decision, Publish
from swarmkeeper.domain.labels import NodeLabels
from swarmkeeper.domain.models import ClusterIdentity, JoinOp, LifecycleResult, Mode, Role
from swarmkeeper.domain.outputs import BootstrapResult, VerifyResult

# ---------------------------------------------------------------------------------------- policy


@frozen
class JoinPolicy:
    identity: ClusterIdentity
    agent_wait_seconds: int
    # Must outlast bootstrap-node's delivery timeout plus its 900 s execution timeout: a lock that
    # expires while `swarm init` still runs would let a second manager init a second swarm.
    init_lock_seconds: int = 1080
    backoff_base_seconds: int = 10
    backoff_cap_seconds: int = 120
    # An agent that registers runs the cluster's agent-ready association, whose status event
    # (AgentRegistered) starts the bootstrap at once. The agent is also polled (a SendCommand that AWS
    # refuses) on its own capped backoff (5, 10, 20, 30, 30 ... s), in case that event never comes:
    # EventBridge delivers AWS service events on a best-effort basis.
    agent_poll_base_seconds: int = 5
    agent_poll_cap_seconds: int = 30
    token_retries: int = 1
    # TTL of an op item: open ones outlive the longest lifecycle hook (7200 s) with margin; closed ones
    # linger a day so late duplicates of the launch event are recognised.
    open_op_seconds: int = 14_400
    closed_op_seconds: int = 86_400

    @property
    def cluster_wait_seconds(self) -> int:
        """How long a join may wait for the cluster to exist: long enough for a crashed init-lock
        holder's lock to expire and the next manager to register its agent and init."""
        return self.init_lock_seconds + self.agent_wait_seconds

    def backoff(self, attempts: int, now: float, deadline: float) -> int:
        """Exponential, capped (never above SQS's 900 s), and never past the deadline."""
        delay = min(self.backoff_cap_seconds, 900, self.backoff_base_seconds * 2 ** min(attempts, 16))
        return int(max(1, min(delay, deadline - now)))

    def agent_poll(self, attempts: int, now: float, deadline: float) -> int:
        """The wait before asking the SSM agent again: short, capped, never past the deadline."""
        delay = min(self.agent_poll_cap_seconds, self.agent_poll_base_seconds * 2 ** min(attempts, 16))
        return int(max(1, min(delay, deadline - now)))


# ------------------------------------------------------------------------------------- stimuli


@frozen
class JoinRequested:
    """A launch lifecycle action, or (fallback) the instance's `running` state change."""

    instance_id: str
    via: str  # "lifecycle" | "running"
    correlation_id: str
    group: str | None = None  # AutoScalingGroupName of a lifecycle action
    token: str = ""  # LifecycleActionToken of a lifecycle action
    origin: str = ""  # a lifecycle action's Origin / Destination (EC2, AutoScalingGroup, WarmPool)
    destination: str = ""


@frozen
class JoinStepDue:
    """A delayed re-delivery from the step queue (or the flow re-deciding with fresh facts)."""

    instance_id: str
    version: int
    correlation_id: str = ""


@frozen
class AgentRegistered:
    """The instance's SSM agent registered: the agent-ready association ran on it."""

    instance_id: str
    correlation_id: str = ""


@frozen
class AgentNotReady:
    """SendCommand said InvalidInstanceId: the instance's SSM agent has not registered yet."""

    instance_id: str
    version: int


@frozen
class JoinCommandFinished:
    """A terminal status of a bootstrap-node or verify-node command of this join."""

    instance_id: str  # the joining instance (not the verifier)
    command_id: str
    action: str  # "bootstrap-node" | "verify-node"
    status: str  # Success, Failed, TimedOut, Cancelled, ...
    correlation_id: str
    bootstrap: BootstrapResult | None = None
    verify: VerifyResult | None = None
    bad_join_token: bool = False
    detail: str = ""  # redacted excerpt of the command's stderr/stdout


JoinStimulus = JoinRequested | JoinStepDue | AgentRegistered | AgentNotReady | JoinCommandFinished

# ------------------------------------------------------------------------------------- actions


@frozen
class CreateJoin:
    op: JoinOp  # conditional put: if an op exists already, the flow stops (a duplicate lost the race)
    replacing: int | None = None  # or over the closed op of the instance's earlier life, at this version


@frozen
class SaveJoin:
    op: JoinOp  # conditional on the stored version being op.version - 1


@frozen
class AcquireInitLock:
    holder: str
    expires_at: float


@frozen
class ReleaseInitLock:
    holder: str


@frozen
class RunBootstrap:
    mode: Mode
    then: JoinOp  # saved with the new command id once SendCommand returns


@frozen
class RunVerify:
    target: str  # manager instance that runs verify-node
    node_id: str
    then: JoinOp
    labels: NodeLabels  # set by that manager before it checks the node is Ready


@frozen
class ScheduleJoinStep:
    step: JoinStepDue
    delay_seconds: int


@frozen
class CompleteLifecycle:
    instance_id: str
    group: str | None
    result: LifecycleResult
    token: str = ""  # only the action of this token (else whichever launch action is pending)


@frozen
class TagNode:
    instance_id: str
    node_id: str


@frozen
class RecordNode:
    instance_id: str
    node_id: str
    role: Role
    verifier: str


@frozen
class WakeWaitingJoins:
    """What other joins waited for happened (the swarm exists, a manager joined): their next step
    now, not at their next backoff (see ``waits_for_the_swarm``); so for manager removals waiting
    for a replacement (``domain.leave.waits_for_a_replacement``)."""


JoinAction = (
    WakeWaitingJoins
    | CreateJoin
    | SaveJoin
    | AcquireInitLock
    | ReleaseInitLock
    | RunBootstrap
    | RunVerify
    | ScheduleJoinStep
    | CompleteLifecycle
    | TagNode
    | RecordNode
    | Publish
)


JoinDecision = Decision[JoinAction]
