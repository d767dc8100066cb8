"""Stacks from the bucket, decided: `stacks/<name>.yml` runs as swarm stack `<name>` at the version the
bucket holds; a deleted file removes its stack. Nothing here touches AWS.

One command per stack at a time (``stack#<name>``, a ``StackRecord``): a version (or a delete) that
arrives while a command runs is recorded as wanted, and the finished command hands over to it, so
two quick versions end with the newer one deployed. S3 events are at least once and unordered: the
event's ``sequencer`` orders the changes of one key, and an event not newer than the newest one
applied is ignored. A version deploy-stack refused (the input itself is wrong) is never sent again;
a command that failed otherwise is tried again by the reconcile pass, at most ``MAX_ATTEMPTS`` times
for one version. The pass compares the bucket's current versions with the records and sends what
differs, at most ``PER_PASS`` commands a pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace

from swarmkeeper.domain.frozen import frozen
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

DEPLOY = "deploy-stack"
REMOVE = "remove-stack"
STACK_DEPLOYED = detail_type("Stack Deployed")
STACK_DEPLOY_FAILED = detail_type("Stack Deploy Failed")
STACK_REMOVED = detail_type("Stack Removed")
STACK_REMOVE_FAILED = detail_type("Stack Remove Failed")

PREFIX = "stacks/"
SUFFIX = ".yml"
# What Swarm accepts as a stack name (the prefix of `<stack>_<service>` and `<stack>_default`, which
# must fit 63 characters); the deploy-stack document's StackName pattern.
STACK_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}"
_STACK_NAME = re.compile(STACK_NAME_PATTERN)
MAX_ATTEMPTS = 3  # commands for one version that failed without refusing it
PER_PASS = 5  # commands one reconcile pass sends at most; the rest wait for the next pass


@frozen
class StackPolicy:
    cluster: str
    bucket: str
    command_seconds: float = 1200  # longer than a command's delivery and execution timeouts
    linger_seconds: float = 7 * 86400  # a removed stack's record, so late events are recognised


def stack_key(name: str) -> str:
    return f"{PREFIX}{name}{SUFFIX}"


def is_stack_file(key: str) -> bool:
    """A key the stacks rule delivers: `stacks/*.yml`, whatever name stands between."""
    return key.startswith(PREFIX) and key.endswith(SUFFIX) and len(key) > len(PREFIX) + len(SUFFIX)


def stack_name(key: str) -> str | None:
    """The stack a file of the bucket is for; None outside `stacks/*.yml` or for a name Swarm refuses."""
    if not is_stack_file(key):
        return None
    name = key[len(PREFIX) : -len(SUFFIX)]
    return name if _STACK_NAME.fullmatch(name) else None


def newer(sequencer: str, than: str) -> bool:
    """S3 sequencers of one key, compared as hexadecimal numbers (left-padded to equal length)."""
    width = max(len(sequencer), len(than))
    return sequencer.upper().rjust(width, "0") > than.upper().rjust(width, "0")


# ------------------------------------------------------------------------------------- the record


@frozen
class StackRecord:
    """``stack#<name>``: what the bucket wants of one stack, what runs, and the command in flight.
    Written on its ``version`` (conditional: each write expects the one before; 0: not stored yet)."""

    name: str
    version: int = 0
    sequencer: str = ""  # of the newest object event applied
    wanted: str = ""  # the object version that should run ("" when the file is gone)
    removed: bool = False  # the file is gone: the stack should not exist
    deleted_version: str = ""  # the delete marker (or version deleted for good) that removed it
    deployed: str = ""  # the object version deployed last ("" none yet, or removed since)
    gone: bool = False  # remove-stack succeeded, and nothing was deployed since
    refused: str = ""  # the object version deploy-stack refused last: never sent again
    attempts: int = 0  # commands for what is wanted that failed without a refusal
    command: str = ""  # DEPLOY | REMOVE in flight, or ""
    command_id: str = ""  # "" while it is being sent
    command_version: str = ""  # the object version the deploy in flight deploys (remove: the delete's)
    target: str = ""  # the manager it runs on
    sent_at: float = 0.0
    correlation_id: str = ""  # the event that asked for what is wanted
    reason: str = ""  # why the last command failed
    expires_at: float = 0.0  # the item's TTL: set only once the stack is removed and settled

    @property
    def key(self) -> str:
        return stack_key(self.name)

    def in_flight(self, now: float, policy: StackPolicy) -> bool:
        return bool(self.command) and self.sent_at + policy.command_seconds > now

    def sent(self, command_id: str) -> StackRecord:
        """The record once its command is sent: the command's id recorded, on the next version."""
        return replace(self, command_id=command_id, version=self.version + 1)

    def settled(self) -> StackRecord:
        """The same record with no command in flight."""
        return replace(self, command="", command_id="", command_version="", target="", sent_at=0.0)

    def next_version(self) -> StackRecord:
        return replace(self, version=self.version + 1)


# ------------------------------------------------------------------------------------- stimuli


@frozen
class ObjectChanged:
    """An S3 event about a file of the stacks bucket: created, or deleted (a delete marker, or a
    version deleted for good: the facts then say what the bucket holds now)."""

    bucket: str
    key: str
    version_id: str
    sequencer: str
    deleted: bool
    permanently: bool  # "Permanently Deleted" (a version removed), not "Delete Marker Created"
    correlation_id: str


@frozen
class StackCommandFinished:
    """A status of a deploy-stack or remove-stack command (``instance_id``: the manager)."""

    action: str
    command_id: str
    instance_id: str
    status: str


@frozen
class StacksPassRequested:
    """The reconcile schedule: compare the bucket with the records."""

    correlation_id: str


StackStimulus = ObjectChanged | StackCommandFinished | StacksPassRequested


@frozen
class CommandResult:
    """What a finished command's output says: its last line's fields, and a redacted excerpt."""

    refused: bool = False
    detail: str = ""


@frozen
class StackFacts:
    record: StackRecord | None = None  # the stack's record, as stored (None: none yet)
    managers: tuple[str, ...] = ()  # joined managers, the one seen healthy most recently first
    current: str | None = None  # a version deleted for good: the file's current version (None: gone)
    result: CommandResult | None = None  # a finished command: what its output says
    records: tuple[StackRecord, ...] = ()  # a pass: every stack's record
    listing: Mapping[str, str] | None = None  # a pass: key -> current version, every file not deleted


# ------------------------------------------------------------------------------------- actions


@frozen
class SaveStack:
    """Write ``record``, conditional on ``record.version - 1`` being the stored one. A lost race (a
    concurrent event wrote first) decides ``again`` on the record as it is now; None (a reconcile
    pass): this stack is left to the next pass."""

    record: StackRecord
    again: StackStimulus | None = None


@frozen
class SendStackCommand:
    """Save ``record`` (its command set, no id yet), send the command to the first of ``managers``
    whose SSM agent takes it, record the id. When none takes it, the record is saved with no command
    in flight: the next event or pass sends it. A lost race: as ``SaveStack``."""

    record: StackRecord
    managers: tuple[str, ...]
    again: StackStimulus | None = None


StackAction = SaveStack | SendStackCommand | Publish
StackDecision = Decision[StackAction]


def decide_stack(
    stimulus: StackStimulus, facts: StackFacts, now: float, policy: StackPolicy
) -> StackDecision:
    match stimulus:
        case ObjectChanged():
            return _on_object(stimulus, facts, now, policy)
        case StackCommandFinished():
            return _on_finished(stimulus, facts, now, policy)
        case StacksPassRequested():
            return _on_pass(stimulus, facts, now, policy)
    raise TypeError(f"unknown stimulus {stimulus!r}")


def command_needed(record: StackRecord) -> str | None:
    """What the stack needs now, with nothing in flight: DEPLOY, REMOVE or None."""
    if record.attempts >= MAX_ATTEMPTS:
        return None
    if record.removed:
        return None if record.gone else REMOVE
    if record.wanted in (record.deployed, record.refused):
        return None
    return DEPLOY


def _on_object(s: ObjectChanged, facts: StackFacts, now: float, policy: StackPolicy) -> StackDecision:
    if s.bucket != policy.bucket:
        return ignore(f"bucket {s.bucket} is not the stacks bucket")
    if not is_stack_file(s.key):
        return ignore(f"{s.key} is not a stacks/<name>.yml file")
    name = stack_name(s.key)
    if name is None:
        if s.deleted:
            return ignore(f"{s.key} names no stack Swarm accepts: nothing to remove")
        reason = f"{s.key}: a stack name is 1-40 letters, digits, '_' or '-', starting with a letter or digit"
        event = _event(policy, STACK_DEPLOY_FAILED, s.key, s.version_id, "", reason, s.correlation_id)
        return Decision(Outcome.DEPLOY_FAILED, reason, (Publish(event),))
    record = facts.record or StackRecord(name)
    if record.sequencer and not newer(s.sequencer, record.sequencer):
        return ignore(f"{s.key} version {s.version_id}: not newer than the last change applied")
    wanted = facts.current if s.permanently else (None if s.deleted else s.version_id)
    updated = _want(record, wanted, s.correlation_id, s.version_id if wanted is None else "")
    updated = replace(updated, sequencer=s.sequencer).next_version()
    what = "removal" if wanted is None else f"version {wanted}"
    if record.in_flight(now, policy):
        reason = f"stack {name}: {record.command} in flight; {what} follows it"
        return Decision(Outcome.WAIT, reason, (SaveStack(updated, s),))
    outcome, reason, actions = _next(updated.settled(), facts.managers, now, policy, s)
    return Decision(outcome, f"stack {name}: {reason}", actions)


def _want(
    record: StackRecord, wanted: str | None, correlation_id: str, deleted_version: str = ""
) -> StackRecord:
    """``record`` wanting ``wanted`` (None: removed, by ``deleted_version`` when known); the count of
    failed tries starts again when that is a change."""
    if wanted == (None if record.removed else record.wanted):
        return record
    return replace(
        record,
        wanted=wanted or "",
        removed=wanted is None,
        deleted_version=deleted_version,
        attempts=0,
        correlation_id=correlation_id,
        expires_at=0.0,
    )


def _next(
    record: StackRecord,
    managers: tuple[str, ...],
    now: float,
    policy: StackPolicy,
    again: StackStimulus | None,
) -> tuple[Outcome, str, tuple[StackAction, ...]]:
    """``record`` (nothing in flight) written, with the command it needs now, if any."""
    command = command_needed(record)
    if command is None:
        kept = replace(record, expires_at=now + policy.linger_seconds) if record.gone else record
        return Outcome.IGNORE, _state(record), (SaveStack(kept, again),)
    what = f"version {record.wanted}" if command == DEPLOY else "removal"
    if not managers:
        return Outcome.WAIT, f"{what} waits for a joined manager", (SaveStack(record, again),)
    sending = replace(
        record,
        command=command,
        command_id="",
        command_version=record.wanted if command == DEPLOY else record.deleted_version,
        target=managers[0],
        sent_at=now,
        gone=False,
        expires_at=0.0,
    )
    outcome = Outcome.DEPLOY if command == DEPLOY else Outcome.REMOVE_STACK
    return outcome, f"{command} of {what} sent", (SendStackCommand(sending, managers, again),)


def _state(record: StackRecord) -> str:
    if record.removed:
        return "removed" if record.gone else f"not removed after {record.attempts} tries"
    if record.wanted == record.deployed:
        return f"version {record.wanted} deployed"
    if record.wanted == record.refused:
        return f"version {record.wanted} was refused: {record.reason}"
    return f"version {record.wanted} failed {record.attempts} times: {record.reason}"


def _on_finished(
    s: StackCommandFinished, facts: StackFacts, now: float, policy: StackPolicy
) -> StackDecision:
    if s.status in NON_TERMINAL:
        return ignore(f"command {s.status}")
    record = facts.record
    if record is None or record.command != s.action or not _ours(record, s):
        return ignore(f"stale {s.action} command {s.command_id}")
    result = facts.result or CommandResult()
    finish = _deploy_finished if s.action == DEPLOY else _remove_finished
    done, outcome, kind, reason = finish(record, s.status, result)
    event = _event(
        policy, kind, record.key, record.command_version, s.instance_id, reason, record.correlation_id
    )
    done = done.settled().next_version()
    actions: tuple[StackAction, ...]
    if outcome in (Outcome.DEPLOY_FAILED, Outcome.REMOVE_STACK_FAILED) and _same_wanted(record):
        # Not again at once: the next pass tries it again, if it was not the input's fault.
        then, actions = "left to the reconcile pass", (SaveStack(done, s),)
    else:
        _, then, actions = _next(done, facts.managers, now, policy, s)
    return Decision(outcome, f"stack {record.name}: {reason}; then {then}", (Publish(event), *actions))


def _same_wanted(record: StackRecord) -> bool:
    """What the command in flight does is still what the bucket wants."""
    if record.command == REMOVE:
        return record.removed
    return not record.removed and record.wanted == record.command_version


def _deploy_finished(
    record: StackRecord, status: str, result: CommandResult
) -> tuple[StackRecord, Outcome, DetailType, str]:
    version = record.command_version
    detail = f": {result.detail}" if result.detail else ""
    if status == TERMINAL_SUCCESS:
        # a success of what is still wanted starts the count of failed tries again
        attempts = 0 if version == record.wanted else record.attempts
        done = replace(record, deployed=version, gone=False, reason="", attempts=attempts)
        return done, Outcome.DEPLOYED, STACK_DEPLOYED, f"version {version} deployed"
    if result.refused:
        done = replace(record, refused=version, reason=result.detail)
        return done, Outcome.DEPLOY_FAILED, STACK_DEPLOY_FAILED, f"version {version} refused{detail}"
    counts = version == record.wanted and not record.removed
    done = replace(record, attempts=record.attempts + counts, reason=f"{status}{detail}")
    reason = f"{DEPLOY} of version {version} {status}{detail}"
    return done, Outcome.DEPLOY_FAILED, STACK_DEPLOY_FAILED, reason


def _remove_finished(
    record: StackRecord, status: str, result: CommandResult
) -> tuple[StackRecord, Outcome, DetailType, str]:
    if status == TERMINAL_SUCCESS:
        attempts = 0 if record.removed else record.attempts
        done = replace(record, deployed="", gone=True, reason="", attempts=attempts)
        return done, Outcome.STACK_REMOVED, STACK_REMOVED, "removed"
    detail = f": {result.detail}" if result.detail else ""
    done = replace(record, attempts=record.attempts + record.removed, reason=f"{status}{detail}")
    return done, Outcome.REMOVE_STACK_FAILED, STACK_REMOVE_FAILED, f"{REMOVE} {status}{detail}"


def _ours(record: StackRecord, s: StackCommandFinished) -> bool:
    """The status is of the command in flight: its id, or (its status came before SendCommand
    returned) no id recorded yet and the manager it was sent to."""
    if record.command_id:
        return record.command_id == s.command_id
    return record.target == s.instance_id


def pass_may_send(facts: StackFacts, policy: StackPolicy) -> bool:
    """Whether a pass over ``facts.records`` and ``facts.listing`` may have a command to send, whenever
    it is decided: one is needed, or one in flight may have run out of time by then. Only then does
    the pass need the managers."""
    return any(command is not None for *_, command in _pass_updates(facts, math.inf, policy, ""))


def _pass_updates(
    facts: StackFacts, now: float, policy: StackPolicy, correlation_id: str
) -> Iterator[tuple[StackRecord | None, StackRecord, str | None]]:
    """Each stack with nothing in flight: its stored record, the record the bucket wants, and the
    command that needs."""
    records = {r.name: r for r in facts.records}
    listed = {n: v for k, v in (facts.listing or {}).items() if (n := stack_name(k)) is not None}
    for name in sorted(set(records) | set(listed)):
        stored = records.get(name)
        record = stored or StackRecord(name)
        if record.in_flight(now, policy):
            continue
        if record.command:  # sent, and its status never came: a failed try
            record = replace(record.settled(), attempts=record.attempts + 1, reason="no status in time")
        updated = _want(record, listed.get(name), correlation_id)
        yield stored, updated, command_needed(updated)


def _on_pass(s: StacksPassRequested, facts: StackFacts, now: float, policy: StackPolicy) -> StackDecision:
    actions: list[StackAction] = []
    sent: list[str] = []
    for stored, updated, command in _pass_updates(facts, now, policy, s.correlation_id):
        name = updated.name
        if updated == stored and (command is None or not facts.managers):
            continue  # nothing to send, nothing to write
        if command is not None and len(sent) >= PER_PASS:
            continue  # the next pass sends it
        actions.extend(_next(updated.next_version(), facts.managers, now, policy, None)[2])
        if command is not None and facts.managers:
            sent.append(name)
    if not actions:
        return Decision(Outcome.STACKS_CHECKED, "every stack is as its file says")
    reason = f"{len(actions)} stack record(s) written; commands for {', '.join(sent) or 'none'}"
    return Decision(Outcome.STACKS_CHECKED, reason, tuple(actions))


def _event(
    policy: StackPolicy,
    kind: DetailType,
    key: str,
    version: str,
    instance_id: str,
    reason: str,
    correlation_id: str,
) -> BusEvent:
    name = stack_name(key) or ""
    return BusEvent(
        detail_type=kind,
        cluster=policy.cluster,
        instance_id=instance_id,
        node_id="",
        role="manager" if instance_id else "",
        reason=reason,
        correlation_id=correlation_id,
        details=(("stack", name), ("key", key), ("versionId", version)),
    )
