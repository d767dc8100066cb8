"""The stacks flow: gather the facts, ask ``domain.stacks.decide_stack``, execute.

Entry points: ``object_changed`` (an S3 event of the stacks bucket), ``finished`` (a deploy-stack or
remove-stack status) and ``reconcile`` (the reconcile schedule: one listing of the bucket's versions
under `stacks/` and one Scan of the records, whatever the number of stacks). The control plane never
reads a Compose file or a secret: the command names the bucket, key and version, and the manager
reads them itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from aws_lambda_powertools import Logger

from swarmkeeper.adapters.bus import EventBus
from swarmkeeper.adapters.commands import AgentNotRegistered, Invocation, RunCommands
from swarmkeeper.adapters.instances import Ec2Instances
from swarmkeeper.adapters.stack_files import StackFiles
from swarmkeeper.adapters.stack_records import StackRecords
from swarmkeeper.adapters.state import StateTable
from swarmkeeper.domain import outputs
from swarmkeeper.domain.errors import SwarmkeeperError
from swarmkeeper.domain.frozen import frozen
from swarmkeeper.domain.kernel import NON_TERMINAL, Outcome, Publish
from swarmkeeper.domain.stacks import (
    DEPLOY,
    CommandResult,
    ObjectChanged,
    SaveStack,
    SendStackCommand,
    StackAction,
    StackCommandFinished,
    StackDecision,
    StackFacts,
    StackPolicy,
    StackRecord,
    StacksPassRequested,
    StackStimulus,
    decide_stack,
    newer,
    pass_may_send,
    stack_name,
)
from swarmkeeper.flows.flow import Known, Redecide, Stop, run
from swarmkeeper.flows.managers import joined_managers_healthy_first
from swarmkeeper.settings import RuntimeSettings

logger = Logger(child=True)

COMMENT = "swarmkeeper stack "
_MANAGERS = "managers"  # Known


class StacksNotSettled(SwarmkeeperError):
    """Every round lost a race to a concurrent writer of the same record; raised so it is retried."""


@frozen
class StackAdapters:
    instances: Ec2Instances
    commands: RunCommands
    records: StackRecords
    files: StackFiles
    state: StateTable  # managers' last healthy times
    bus: EventBus


def comment(name: str) -> str:
    return f"{COMMENT}{name}"


def stack_of(invocation: Invocation) -> str | None:
    """The stack a command was sent for, from its comment."""
    if not invocation.comment.startswith(COMMENT):
        return None
    return stack_name(f"stacks/{invocation.comment.removeprefix(COMMENT)}.yml")


class StackFlow:
    name = "stacks"
    max_rounds = 4  # each round past the first follows a lost race on the stack's record
    not_settled = StacksNotSettled

    def __init__(
        self, settings: RuntimeSettings, adapters: StackAdapters, clock: Callable[[], float] = time.time
    ):
        self.settings = settings
        self.adapters = adapters
        self.clock = clock
        self.policy = StackPolicy(settings.cluster_name, settings.stacks_bucket)

    # --- entry points ----------------------------------------------------------------------

    def object_changed(self, change: ObjectChanged) -> StackDecision:
        return run(self, change)

    def finished(self, action: str, command_id: str, instance_id: str, status: str) -> StackDecision:
        return run(self, StackCommandFinished(action, command_id, instance_id, status))

    def reconcile(self, correlation_id: str) -> StackDecision:
        return run(self, StacksPassRequested(correlation_id))

    # --- the flow --------------------------------------------------------------------------

    def gather(self, stimulus: StackStimulus, known: Known) -> StackFacts:
        match stimulus:
            case ObjectChanged():
                return self._object_facts(stimulus, known)
            case StackCommandFinished():
                return self._finished_facts(stimulus, known)
            case StacksPassRequested():
                facts = StackFacts(
                    records=tuple(self.adapters.records.all()), listing=self.adapters.files.listing()
                )
                if pass_may_send(facts, self.policy):
                    facts = replace(facts, managers=self._managers(known))
                return facts
        raise TypeError(f"unknown stimulus {stimulus!r}")

    def decide(self, stimulus: StackStimulus, facts: StackFacts) -> StackDecision:
        return decide_stack(stimulus, facts, self.clock(), self.policy)

    def execute(self, action: StackAction, facts: StackFacts, known: Known) -> None:
        match action:
            case SaveStack(record=record, again=again):
                if not self.adapters.records.save(record):
                    self._lost(record, again)
            case SendStackCommand(record=record, managers=managers, again=again):
                self._send(record, managers, again)
            case Publish(event=event):
                self.adapters.bus.publish(event)
            case _:
                raise TypeError(f"unknown action {action!r}")

    # --- helpers ---------------------------------------------------------------------------

    def _managers(self, known: Known) -> tuple[str, ...]:
        return known.get(
            _MANAGERS,
            lambda: joined_managers_healthy_first(
                self.adapters.instances, self.adapters.state, self.settings.manager_group_name
            ),
        )

    def _object_facts(self, s: ObjectChanged, known: Known) -> StackFacts:
        name = stack_name(s.key) if s.bucket == self.policy.bucket else None
        if name is None:
            return StackFacts()
        record = self.adapters.records.get(name)
        if record is not None and record.sequencer and not newer(s.sequencer, record.sequencer):
            return StackFacts(record=record)  # stale: nothing more to read
        current = self.adapters.files.current(s.key) if s.permanently else None
        return StackFacts(record=record, current=current, managers=self._managers(known))

    def _finished_facts(self, s: StackCommandFinished, known: Known) -> StackFacts:
        if s.status in NON_TERMINAL:
            return StackFacts()
        invocation = self.adapters.commands.invocation(s.command_id, s.instance_id)
        name = stack_of(invocation) if invocation else None
        if invocation is None or name is None:
            return StackFacts()
        fields = outputs.last_line_fields(invocation.stdout)
        result = CommandResult(
            refused=fields.get("refused") == "true",
            detail=outputs.excerpt(invocation.stderr or invocation.stdout),
        )
        record = self.adapters.records.get(name)
        return StackFacts(record=record, result=result, managers=self._managers(known))

    def _lost(self, record: StackRecord, again: StackStimulus | None) -> None:
        if again is None:
            logger.info(
                "stack record moved on during the pass; left to the next", extra={"stack": record.name}
            )
            return
        raise Redecide(again)

    def _send(self, sending: StackRecord, managers: tuple[str, ...], again: StackStimulus | None) -> None:
        """Save the record at its command, send to the first manager that takes it, record the id."""
        record = sending
        for tried, manager in enumerate(managers):
            if tried:
                record = replace(record, target=manager).next_version()
            if not self.adapters.records.save(record):
                self._lost(record, again)
                return
            try:
                command_id = self.adapters.commands.send(
                    f"{self.settings.document_prefix}{record.command}",
                    manager,
                    self._parameters(record),
                    comment(record.name),
                )
            except AgentNotRegistered:
                logger.warning(
                    "manager's SSM agent is not registered; trying the next", extra={"instance_id": manager}
                )
                continue
            if not self.adapters.records.save(record.sent(command_id)):
                logger.info("command finished before its id was recorded", extra={"command_id": command_id})
            return
        waiting = replace(record.settled(), reason="no joined manager took the command").next_version()
        if not self.adapters.records.save(waiting):
            self._lost(waiting, again)
            return
        logger.warning("no manager took the stack's command", extra={"stack": record.name})
        if again is not None:  # in a pass, the other stacks go on
            raise Stop(
                Outcome.WAIT, f"stack {record.name}: no joined manager's SSM agent took {record.command}"
            )

    def _parameters(self, record: StackRecord) -> dict[str, str]:
        s = self.settings
        if record.command != DEPLOY:
            return {"StackName": record.name}
        return {
            "StackName": record.name,
            "Bucket": s.stacks_bucket,
            "Key": record.key,
            "VersionId": record.command_version,
            "ParameterPrefix": s.parameter_prefix,
            "Region": s.region,
        }
