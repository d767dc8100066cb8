"""The reconcile flow: compare the swarm with the cluster's instances and clean up, one pass at a time
(what a pass does, and in which order: ``domain.reconcile_pass``).

Entry points: ``start`` (schedule, alarm, or the exit flow wanting a fresh view), ``on_alarm`` (one of
the stack's alarms changed state), ``finished`` (describe-swarm's status) and ``removal_finished`` (a
remove-node this flow sent for a dead node). Each runs the ``flows.flow`` loop: gather, ask
``domain.reconcile_pass.decide_reconcile``, execute. A manager whose SSM agent is not registered is
skipped: the next round decides on the next manager. manager-addresses is refreshed by
describe-swarm's own script (the control plane cannot write parameters).

A pass costs a constant number of AWS calls, whatever the cluster's size (see the 1,000-node test):
the node list (inline, or from S3 when it was cut), one paginated DescribeInstances, one paginated
Scan of the operations in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from swarmkeeper.adapters.bus import EventBus
from swarmkeeper.adapters.commands import AgentNotRegistered, Invocation, RunCommands
from swarmkeeper.adapters.instances import Ec2Instances
from swarmkeeper.adapters.lifecycle import LifecycleActions
from swarmkeeper.adapters.outputs import INLINE_LIMIT, CommandOutputs, key_from_url, stdout_key
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.adapters.steps import StepQueue
from swarmkeeper.domain.errors import SwarmkeeperError
from swarmkeeper.domain.join import NODE_JOIN_FAILED, NODE_JOINED
from swarmkeeper.domain.kernel import BusEvent, Outcome, Publish
from swarmkeeper.domain.leave import REMOVE
from swarmkeeper.domain.leave_types import ScheduleLeaveStep
from swarmkeeper.domain.models import (
    ClusterIdentity,
    LeaveOp,
    LeaveStage,
    LifecycleResult,
    OpSummary,
    ReconcilePass,
    Role,
    Stage,
)
from swarmkeeper.domain.outputs import redact
from swarmkeeper.domain.reconcile import NodeRemoval, ReconcileSettings, StuckAction, StuckOperation
from swarmkeeper.domain.reconcile_pass import (
    DESCRIBE,
    AlarmChanged,
    DescribeFinished,
    DescribeNotDelivered,
    EndPass,
    ForgetNode,
    LogDeferred,
    LogFailure,
    MarkUnhealthy,
    PassRequested,
    PublishMetrics,
    ReconcileAction,
    ReconcileDecision,
    ReconcileFacts,
    ReconcilePolicy,
    ReconcileStimulus,
    RemovalFinished,
    RemoveDeadNodes,
    SaveView,
    SendDescribe,
    SettleStuck,
    StartPass,
    decide_reconcile,
    removal_comment,
    waits_for_a_fresh_view,
)
from swarmkeeper.domain.swarm import SwarmListing, SwarmViewError, parse_describe_swarm
from swarmkeeper.flows.flow import Known, Redecide, Stop, run
from swarmkeeper.flows.managers import joined_managers_healthy_first, removals_waiting
from swarmkeeper.settings import RuntimeSettings

logger = Logger(child=True)
metrics = Metrics()  # shares the handler's metric set (Powertools), flushed by its log_metrics

OUTPUT_PREFIX = DESCRIBE
COMMENT = "swarmkeeper reconcile"
# Join ops are stuck past the launch hook's budget (agent wait + init lock + bootstrap + verify).
JOIN_BUDGET_EXTRA_SECONDS = 1080 + 900 + 120
_VIEW, _MANAGERS = "view", "managers"  # Known


class ReconcileNotSettled(SwarmkeeperError):
    """Every round asked for another manager; raised so the event is retried."""


@dataclass
class ReconcileAdapters:
    instances: Ec2Instances
    lifecycle: LifecycleActions
    commands: RunCommands
    outputs: CommandOutputs
    state: StateTable
    bus: EventBus
    steps: StepQueue | None = None  # wakes manager removals waiting for the view this pass takes


class Reconcile:
    name = "reconcile"
    max_rounds = 16  # more managers than a manager group ever holds: each may refuse delivery
    not_settled = ReconcileNotSettled

    def __init__(
        self,
        settings: RuntimeSettings,
        adapters: ReconcileAdapters,
        clock: Callable[[], float] = time.time,
        plan_settings: ReconcileSettings | None = None,
        follow_ports: Callable[[SwarmListing, str], object] | None = None,
    ):
        self.settings = settings
        # Given each listing a pass reads (the listeners follow the published ports in that pass).
        self.follow_ports = follow_ports
        self._read: tuple[SwarmListing, str] | None = None
        self.adapters = adapters
        self.clock = clock
        self.plan_settings = plan_settings or ReconcileSettings()
        self.policy = ReconcilePolicy(
            identity=ClusterIdentity(
                settings.cluster_name, settings.manager_group_name, settings.worker_group_name
            ),
            join_budget_seconds=settings.agent_wait_seconds + JOIN_BUDGET_EXTRA_SECONDS,
            plan=self.plan_settings,
        )

    # --- entry points ----------------------------------------------------------------------

    def start(
        self, correlation_id: str, why: str = "schedule", exclude: Collection[str] = ()
    ) -> ReconcileDecision:
        return run(self, PassRequested(correlation_id, why, tuple(exclude)))

    def on_alarm(self, alarm_name: str, state: str, correlation_id: str) -> ReconcileDecision:
        """In ALARM: operators are told, and a pass starts at once."""
        raised = run(self, AlarmChanged(alarm_name, state, correlation_id))
        if raised.outcome is not Outcome.ALARM:
            return raised
        started = self.start(correlation_id, f"alarm {alarm_name}")
        return replace(raised, reason=f"{raised.reason}; {started.reason}")

    def finished(self, command_id: str, instance_id: str, status: str) -> ReconcileDecision:
        self._read = None
        decision = run(self, DescribeFinished(command_id, instance_id, status))
        read = self._take_read()
        if read is not None and self.follow_ports is not None:
            try:
                self.follow_ports(*read)
            except Exception:  # the pass itself is done; the next one converges the listeners
                logger.exception("the listeners could not follow the published ports")
                metrics.add_metric(name="ListenersFailed", unit=MetricUnit.Count, value=1)
        return decision

    def _take_read(self) -> tuple[SwarmListing, str] | None:
        read, self._read = self._read, None
        return read

    def removal_finished(self, status: str, invocation: Invocation, correlation_id: str) -> ReconcileDecision:
        """A remove-node this flow sent for a dead node (``invocation``: its result on the manager)."""
        stimulus = RemovalFinished(
            status, invocation.comment, invocation.stdout, invocation.stderr, correlation_id
        )
        return run(self, stimulus)

    # --- the flow --------------------------------------------------------------------------

    def gather(self, stimulus: ReconcileStimulus, known: Known) -> ReconcileFacts:
        match stimulus:
            case PassRequested(exclude=exclude):
                return ReconcileFacts(candidates=self._candidates(exclude, known))
            case DescribeNotDelivered(op=pending):
                return ReconcileFacts(op=pending, candidates=self._candidates(pending.excluded, known))
            case DescribeFinished():
                return self._finished_facts(stimulus, known)
        return ReconcileFacts()

    def decide(self, stimulus: ReconcileStimulus, facts: ReconcileFacts) -> ReconcileDecision:
        return decide_reconcile(stimulus, facts, self.clock(), self.policy)

    def execute(self, action: ReconcileAction, facts: ReconcileFacts, known: Known) -> None:
        a = self.adapters
        match action:
            case StartPass(op=pending, after=after):
                if not a.state.start_reconcile(pending, self.clock()):
                    why = "a reconcile pass is already in flight"
                    raise Stop(Outcome.IGNORE, f"{after}; {why}" if after else why)
            case SendDescribe():
                self._send_describe(action)
            case EndPass(command_id=command_id):
                a.state.end_reconcile(command_id)
            case SaveView(view=view):
                a.state.save_view(view)
            case ScheduleLeaveStep(step=step, delay_seconds=delay):
                if a.steps is not None:
                    a.steps.schedule(step, delay)
                    logger.info(
                        "manager removal woken by the fresh view", extra={"instance_id": step.instance_id}
                    )
            case PublishMetrics(metrics=swarm):
                for name, value in swarm.as_dict().items():
                    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
            case Publish(event=event):
                a.bus.publish(event)
            case SettleStuck(stuck=stuck):
                self._settle(stuck, facts.op.correlation_id if facts.op else "")
            case RemoveDeadNodes(target=target, removals=removals):
                self._remove(target, removals)
            case MarkUnhealthy(mark=mark):
                marked = a.lifecycle.mark_unhealthy(mark.instance_id)
                logger.warning(
                    "instance marked Unhealthy",
                    extra={"instance_id": mark.instance_id, "reason": mark.reason, "marked": marked},
                )
                metrics.add_metric(name="InstancesMarkedUnhealthy", unit=MetricUnit.Count, value=1)
            case ForgetNode(instance_id=instance_id):
                a.state.forget_node(instance_id)
            case LogFailure(message=message, details=details):
                logger.error(message, extra=dict(details))
            case LogDeferred(subject=subject, reason=reason):
                logger.info("deferred", extra={"subject": subject, "reason": reason})
            case _:
                raise TypeError(f"unknown action {action!r}")

    # --- gathering -------------------------------------------------------------------------

    def _candidates(self, exclude: Collection[str], known: Known) -> tuple[str, ...]:
        """Managers that may run describe-swarm: the latest view's Reachable + Ready ones, or else
        any joined manager; never an excluded one."""
        view = known.get(_VIEW, self.adapters.state.get_view)
        candidates = view.command_managers(exclude) if view is not None else ()
        if candidates:
            return candidates
        joined = known.get(
            _MANAGERS,
            lambda: joined_managers_healthy_first(
                self.adapters.instances, self.adapters.state, self.settings.manager_group_name
            ),
        )
        return tuple(m for m in joined if m not in exclude)

    def _finished_facts(self, stimulus: DescribeFinished, known: Known) -> ReconcileFacts:
        a = self.adapters
        pending = a.state.get_reconcile()
        if pending is None or pending.command_id != stimulus.command_id:
            return ReconcileFacts(op=pending)
        if stimulus.status != "Success":
            return self._retry_facts(pending, stimulus.instance_id, "", known)
        listing = self._read_nodes(stimulus.command_id, stimulus.instance_id)
        if isinstance(listing, str):
            return self._retry_facts(pending, stimulus.instance_id, listing, known)
        self._read = (listing, pending.correlation_id)
        for line in listing.skipped:
            logger.warning("describe-swarm line skipped", extra={"reason": redact(line.reason)})
        if listing.may_miss_a_manager:
            # The quorum guards (this pass's, and the leave flow's on the saved view) count managers.
            why = next(line.reason for line in listing.skipped if line.may_be_manager)
            unreadable = f"a manager may be missing from the listing: {why}"
            return self._retry_facts(pending, stimulus.instance_id, unreadable, known)
        ops = tuple(a.state.open_ops())
        return ReconcileFacts(
            op=pending,
            nodes=listing.nodes,
            instances=tuple(a.instances.group_instances(self.policy.identity.groups)),
            ops=ops,
            previous=a.state.get_view(),
            removals_waiting=self._removals_waiting(ops),
        )

    def _retry_facts(
        self, pending: ReconcilePass, ran_on: str, unreadable: str, known: Known
    ) -> ReconcileFacts:
        excluded = (*pending.excluded, ran_on)
        if len(excluded) >= self.policy.max_attempts:
            return ReconcileFacts(op=pending, unreadable=unreadable)
        return ReconcileFacts(op=pending, unreadable=unreadable, candidates=self._candidates(excluded, known))

    def _removals_waiting(self, ops: tuple[OpSummary, ...]) -> tuple[LeaveOp, ...]:
        """Manager removals that asked for a fresh view: this pass's view wakes them."""
        if self.adapters.steps is None:
            return ()
        return removals_waiting(self.adapters.state, ops, waits_for_a_fresh_view)

    def _read_nodes(self, command_id: str, instance_id: str) -> SwarmListing | str:
        """The node listing, or why it could not be read."""
        invocation = self.adapters.commands.invocation(command_id, instance_id)
        text = invocation.stdout if invocation else ""
        try:
            return parse_describe_swarm(text)
        except SwarmViewError as err:
            cut = len(text) >= INLINE_LIMIT - 1000 or bool(invocation and invocation.stdout_url)
            if not cut:
                return f"describe-swarm output unusable: {err}"
        bucket = self.settings.command_output_bucket
        url = invocation.stdout_url if invocation else ""
        key = key_from_url(url, bucket) or stdout_key(OUTPUT_PREFIX, command_id, instance_id)
        full = self.adapters.outputs.read(key)
        if full is None:
            return f"describe-swarm output was cut and s3://{bucket}/{key} is missing"
        try:
            return parse_describe_swarm(full)
        except SwarmViewError as err:
            return f"describe-swarm output in S3 unusable: {err}"

    # --- executing -------------------------------------------------------------------------

    def _send_describe(self, action: SendDescribe) -> None:
        s, target, pending = self.settings, action.target, action.op
        params = {"ParameterPrefix": s.parameter_prefix, "Region": s.region}
        output = (s.command_output_bucket, OUTPUT_PREFIX)
        try:
            command_id = self.adapters.commands.send(
                f"{s.document_prefix}{DESCRIBE}", target, params, COMMENT, output=output
            )
        except AgentNotRegistered as err:
            logger.warning("manager's SSM agent is not registered; trying the next", extra={"target": target})
            raise Redecide(DescribeNotDelivered(pending, (*action.tried, target), action.after)) from err
        self.adapters.state.save_reconcile(replace(pending, command_id=command_id, target=target))

    def _remove(self, target: str, removals: tuple[NodeRemoval, ...]) -> None:
        s = self.settings
        for removal in removals:
            params = {"NodeId": removal.node_id, "ParameterPrefix": s.parameter_prefix, "Region": s.region}
            comment = removal_comment(removal.node_id, removal.instance_id, removal.role)
            try:
                self.adapters.commands.send(f"{s.document_prefix}{REMOVE}", target, params, comment)
            except AgentNotRegistered:
                logger.warning(
                    "command manager is gone; the next pass picks another", extra={"target": target}
                )
                return

    def _settle(self, stuck: StuckOperation, correlation_id: str) -> None:
        """Finish or roll back an operation past its deadline (``domain.reconcile`` decided which)."""
        a, s = self.adapters, self.settings
        join, leave = a.state.get_ops(stuck.instance_id)
        now = self.clock()
        closed_until = now + self.policy.closed_op_seconds
        if leave is not None:
            if leave.group:
                a.lifecycle.complete(
                    leave.group, s.terminate_hook_name, leave.instance_id, str(LifecycleResult.CONTINUE)
                )
            if leave.role is Role.MANAGER:
                a.state.release_manager_lock(leave.instance_id)
            done = replace(leave, stage=LeaveStage.DONE, version=leave.version + 1, reason=stuck.reason)
            a.state.save_leave(replace(done, expires_at=closed_until))
            return
        if join is None:
            logger.info("nothing stuck any more", extra={"instance_id": stuck.instance_id})
            return
        node_id = stuck.node_id or ""
        finish = stuck.action is StuckAction.FINISH and bool(node_id)
        if finish:
            closed = replace(join, stage=Stage.JOINED, node_id=node_id, reason=stuck.reason)
        else:
            closed = replace(join, stage=Stage.FAILED, reason=stuck.reason)
        # Closed first, like the join flow closes it: a leave that took the op over meanwhile wins, and
        # then nothing of the join is done or announced.
        if not a.state.save_op(
            replace(closed, version=join.version + 1, waiting_for="", expires_at=closed_until)
        ):
            logger.info("its join moved on meanwhile", extra={"instance_id": stuck.instance_id})
            return
        if finish:
            a.instances.tag_node_id(join.instance_id, node_id)
            a.state.record_node(join.instance_id, node_id, str(join.role), now)
            if join.group:
                a.lifecycle.complete(join.group, s.launch_hook_name, join.instance_id, "CONTINUE")
        elif stuck.destructive:
            completed = bool(join.group) and a.lifecycle.complete(
                join.group or "", s.launch_hook_name, join.instance_id, "ABANDON"
            )
            if not completed:
                a.lifecycle.mark_unhealthy(join.instance_id)
        ended = NODE_JOINED if finish else NODE_JOIN_FAILED
        event = BusEvent(
            ended, s.cluster_name, join.instance_id, node_id, str(join.role), stuck.reason, correlation_id
        )
        a.bus.publish(event)
