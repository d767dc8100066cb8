"""The stacks decision, pure: what each object event, command status and reconcile pass leads to."""

from __future__ import annotations

from dataclasses import replace

import pytest

from swarmkeeper.domain.kernel import Outcome, Publish
from swarmkeeper.domain.stacks import (
    DEPLOY,
    MAX_ATTEMPTS,
    PER_PASS,
    REMOVE,
    STACK_DEPLOY_FAILED,
    STACK_DEPLOYED,
    STACK_REMOVE_FAILED,
    STACK_REMOVED,
    CommandResult,
    ObjectChanged,
    SaveStack,
    SendStackCommand,
    StackCommandFinished,
    StackFacts,
    StackPolicy,
    StackRecord,
    StacksPassRequested,
    command_needed,
    decide_stack,
    newer,
    pass_may_send,
    stack_name,
)

BUCKET = "swarmkeeper-demo-stacks"
POLICY = StackPolicy("demo", BUCKET)
NOW = 1_800_000_000.0
MANAGERS = ("i-0aaaaaaaaaaaaaaa1", "i-0bbbbbbbbbbbbbbb2")
CMD = "e8d3c0e4-71f7-4491-898f-c9b35bee5f3b"


def created(version="v1", sequencer="0010", key="stacks/app.yml", bucket=BUCKET):
    return ObjectChanged(bucket, key, version, sequencer, False, False, f"event-{version}")


def deleted(marker="dm1", sequencer="0020", permanently=False, key="stacks/app.yml"):
    return ObjectChanged(BUCKET, key, marker, sequencer, True, permanently, f"event-{marker}")


def in_flight(command=DEPLOY, object_version="v1", **changes):
    """v1's deploy (or a removal) sent to the first manager, on the record's version 2."""
    record = StackRecord(
        "app",
        version=2,
        sequencer="0010",
        wanted=object_version,
        command=command,
        command_id=CMD,
        command_version=object_version,
        target=MANAGERS[0],
        sent_at=NOW - 10,
        correlation_id="event-v1",
    )
    return replace(record, **changes)


def finished(status="Success", action=DEPLOY, command_id=CMD, instance_id=MANAGERS[0]):
    return StackCommandFinished(action, command_id, instance_id, status)


def decide(stimulus, **facts):
    return decide_stack(stimulus, StackFacts(**{"managers": MANAGERS, **facts}), NOW, POLICY)


def published(decision):
    return [a.event for a in decision.actions if isinstance(a, Publish)]


def sends(decision):
    return [a for a in decision.actions if isinstance(a, SendStackCommand)]


def saves(decision):
    return [a for a in decision.actions if isinstance(a, SaveStack)]


# --- names and order -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("stacks/app.yml", "app"),
        ("stacks/My_app-2.yml", "My_app-2"),
        ("stacks/" + "a" * 40 + ".yml", "a" * 40),
        ("stacks/" + "a" * 41 + ".yml", None),  # <stack>_<service> would pass 63 characters
        ("stacks/dot.ted.yml", None),  # a network name Swarm refuses
        ("stacks/-lead.yml", None),  # docker would read it as a flag
        ("stacks/team/app.yml", None),
        ("stacks/app.yaml", None),
        ("other/app.yml", None),
        ("stacks/.yml", None),
    ],
)
def test_the_stack_name_is_the_file_name_when_swarm_accepts_it(key, name):
    assert stack_name(key) == name


@pytest.mark.parametrize(
    ("sequencer", "than", "is_newer"),
    [
        ("0011", "0010", True),
        ("0010", "0010", False),
        ("000F", "0010", False),
        ("100", "0FF", True),  # compared as numbers: left-padded to the same length
        ("0A", "9", True),
        ("00617F08299329D18A", "00617f08299329d189", True),  # case does not matter
    ],
)
def test_sequencers_compare_as_hexadecimal_numbers(sequencer, than, is_newer):
    assert newer(sequencer, than) is is_newer


# --- object events ---------------------------------------------------------------------------------


def test_a_new_file_is_deployed_on_the_healthiest_manager():
    # Given no record and two joined managers / When stacks/app.yml version v1 arrives
    decision = decide(created())

    # Then deploy-stack of v1 is sent (to the first manager; the next ones if it cannot take it)
    assert decision.outcome == Outcome.DEPLOY
    (send,) = decision.actions
    assert isinstance(send, SendStackCommand) and send.managers == MANAGERS
    record = send.record
    assert (record.name, record.command, record.command_version, record.target) == (
        "app",
        DEPLOY,
        "v1",
        MANAGERS[0],
    )
    assert (record.version, record.wanted, record.sequencer, record.command_id) == (1, "v1", "0010", "")
    assert send.again == created()  # a lost race decides again on the record as it is then


def test_without_a_joined_manager_the_version_is_recorded_and_waits():
    decision = decide(created(), managers=())
    assert decision.outcome == Outcome.WAIT
    (save,) = saves(decision)
    assert save.record.wanted == "v1" and save.record.command == ""
    assert command_needed(save.record) == DEPLOY  # the next event or pass sends it


@pytest.mark.parametrize("sequencer", ["0010", "000F"])
def test_an_event_not_newer_than_the_last_one_applied_is_ignored(sequencer):
    # Given v2 applied at sequencer 0010 / When an event for v1 at the same or an older sequencer comes
    record = StackRecord("app", version=3, sequencer="0010", wanted="v2", deployed="v2")
    decision = decide(created("v1", sequencer), record=record)
    # Then nothing happens (a duplicate, or an older version arriving late)
    assert decision.outcome == Outcome.IGNORE and decision.actions == ()


def test_a_version_arriving_while_a_deploy_runs_is_recorded_and_follows_it():
    # Given v1's deploy in flight / When v2 arrives
    decision = decide(created("v2", "0011"), record=in_flight())

    # Then v2 is wanted, on the next version of the record, and nothing is sent meanwhile
    assert decision.outcome == Outcome.WAIT
    (save,) = decision.actions
    assert isinstance(save, SaveStack)
    assert (save.record.wanted, save.record.sequencer, save.record.version) == ("v2", "0011", 3)
    assert (save.record.command, save.record.command_id, save.record.command_version) == (DEPLOY, CMD, "v1")


def test_a_command_past_its_time_does_not_hold_the_next_version_back():
    stuck = in_flight(sent_at=NOW - POLICY.command_seconds - 1)
    decision = decide(created("v2", "0011"), record=stuck)
    (send,) = sends(decision)
    assert send.record.command_version == "v2" and send.record.command_id == ""


def test_the_same_version_as_deployed_sends_nothing():
    record = StackRecord("app", version=3, sequencer="0010", wanted="v1", deployed="v1")
    decision = decide(created("v1", "0011"), record=record)
    assert sends(decision) == [] and saves(decision)[0].record.sequencer == "0011"


def test_a_delete_marker_removes_the_stack():
    record = StackRecord("app", version=3, sequencer="0010", wanted="v1", deployed="v1")
    decision = decide(deleted("dm1", "0011"), record=record)
    assert decision.outcome == Outcome.REMOVE_STACK
    (send,) = sends(decision)
    assert (send.record.command, send.record.removed, send.record.wanted) == (REMOVE, True, "")
    assert send.record.command_version == "dm1"  # Stack Removed carries the delete's version


def test_a_delete_of_a_stack_never_seen_still_removes_it():
    # (it may have been deployed before the record existed; remove-stack of nothing is a no-op)
    decision = decide(deleted())
    assert sends(decision)[0].record.command == REMOVE


@pytest.mark.parametrize(
    ("current", "command", "wanted"),
    [("v1", DEPLOY, "v1"), (None, REMOVE, "")],
    ids=["an-older-version-is-current-again", "no-version-left"],
)
def test_a_version_deleted_for_good_deploys_what_is_current_now(current, command, wanted):
    # Given v2 deployed / When v2 is deleted for good (not a delete marker)
    record = StackRecord("app", version=3, sequencer="0010", wanted="v2", deployed="v2")
    decision = decide(deleted("v2", "0011", permanently=True), record=record, current=current)
    # Then the stack follows what the bucket holds now
    (send,) = sends(decision)
    assert (send.record.command, send.record.wanted) == (command, wanted)


def test_a_name_swarm_refuses_is_a_clear_deploy_failure_and_nothing_is_sent():
    decision = decide(created(key="stacks/dot.ted.yml"))
    assert decision.outcome == Outcome.DEPLOY_FAILED
    (event,) = published(decision)
    assert event.detail_type == STACK_DEPLOY_FAILED
    assert "stacks/dot.ted.yml: a stack name is 1-40 letters" in event.reason
    assert dict(event.details) == {"stack": "", "key": "stacks/dot.ted.yml", "versionId": "v1"}
    assert sends(decision) == [] and saves(decision) == []


@pytest.mark.parametrize(
    "change",
    [
        created(bucket="someone-elses-bucket"),
        created(key="stacks/app.yaml"),
        created(key="other/app.yml"),
        deleted(key="stacks/dot.ted.yml"),
    ],
    ids=["other-bucket", "not-yml", "not-under-stacks", "delete-of-a-refused-name"],
)
def test_events_about_other_files_change_nothing(change):
    decision = decide(change)
    assert decision.outcome == Outcome.IGNORE and decision.actions == ()


# --- command statuses ------------------------------------------------------------------------------


def test_a_deploy_that_succeeds_is_published_with_its_version():
    decision = decide(finished(), record=in_flight())
    assert decision.outcome == Outcome.DEPLOYED
    (event,) = published(decision)
    assert event.detail_type == STACK_DEPLOYED
    assert dict(event.details) == {"stack": "app", "key": "stacks/app.yml", "versionId": "v1"}
    assert (event.instance_id, event.role, event.correlation_id) == (MANAGERS[0], "manager", "event-v1")
    (save,) = saves(decision)
    assert (save.record.deployed, save.record.command, save.record.version) == ("v1", "", 3)


def test_the_newer_version_follows_the_finished_deploy():
    # Given v1's deploy in flight and v2 wanted since
    record = in_flight(wanted="v2", sequencer="0011")
    # When v1's deploy succeeds
    decision = decide(finished(), record=record)
    # Then Stack Deployed v1, and v2's deploy goes out (on the record's next version)
    assert [e.detail_type for e in published(decision)] == [STACK_DEPLOYED]
    (send,) = sends(decision)
    assert (send.record.deployed, send.record.command_version, send.record.version) == ("v1", "v2", 3)


def test_a_refused_version_is_published_and_never_sent_again():
    result = CommandResult(refused=True, detail="deploy-stack: service web: image nosuch:1 does not exist")
    decision = decide(finished("Failed"), record=in_flight(), result=result)
    assert decision.outcome == Outcome.DEPLOY_FAILED
    (event,) = published(decision)
    assert event.detail_type == STACK_DEPLOY_FAILED
    assert event.reason == "version v1 refused: deploy-stack: service web: image nosuch:1 does not exist"
    (save,) = saves(decision)
    assert save.record.refused == "v1" and save.record.deployed == "" and command_needed(save.record) is None
    # and a reconcile pass leaves it alone (no retry loop)
    listing = {"stacks/app.yml": "v1"}
    assert decide(StacksPassRequested("pass"), records=(save.record,), listing=listing).actions == ()


def test_a_refused_version_leaves_the_running_one_as_it_is():
    record = in_flight(object_version="v2", deployed="v1")
    decision = decide(finished("Failed"), record=record, result=CommandResult(refused=True))
    (save,) = saves(decision)
    assert (save.record.deployed, save.record.refused) == ("v1", "v2")


def test_a_deploy_that_fails_otherwise_is_tried_again_by_the_pass_a_few_times_only():
    record = in_flight()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        # When the deploy times out (not the input's fault)
        decision = decide(finished("TimedOut"), record=record, result=CommandResult(detail="no answer"))
        assert [e.detail_type for e in published(decision)] == [STACK_DEPLOY_FAILED]
        (save,) = saves(decision)
        assert save.record.attempts == attempt and save.record.refused == ""
        # Then the pass sends it again, until MAX_ATTEMPTS tries failed
        listing = {"stacks/app.yml": "v1"}
        again = decide(StacksPassRequested("pass"), records=(save.record,), listing=listing)
        if attempt < MAX_ATTEMPTS:
            (send,) = sends(again)
            record = replace(send.record, command_id=CMD)
        else:
            assert again.actions == ()


def test_a_removal_that_succeeds_is_published_and_the_record_lingers_then_expires():
    record = in_flight(
        REMOVE, object_version="", removed=True, wanted="", deployed="v1", command_version="dm1"
    )
    decision = decide(finished(action=REMOVE), record=record)
    assert decision.outcome == Outcome.STACK_REMOVED
    (event,) = published(decision)
    assert event.detail_type == STACK_REMOVED and dict(event.details)["versionId"] == "dm1"
    (save,) = saves(decision)
    assert save.record.gone and save.record.deployed == ""
    assert save.record.expires_at == NOW + POLICY.linger_seconds


def test_a_removal_that_fails_is_published_and_tried_again():
    record = in_flight(REMOVE, object_version="", removed=True, wanted="", deployed="v1")
    decision = decide(finished("Failed", action=REMOVE), record=record)
    assert [e.detail_type for e in published(decision)] == [STACK_REMOVE_FAILED]
    (save,) = saves(decision)
    assert save.record.attempts == 1 and command_needed(save.record) == REMOVE


def test_a_file_put_again_after_its_delete_is_deployed_once_the_removal_is_done():
    record = in_flight(REMOVE, object_version="", removed=False, wanted="v3", deployed="v1")
    decision = decide(finished(action=REMOVE), record=record)
    (send,) = sends(decision)
    assert (send.record.command, send.record.command_version, send.record.gone) == (DEPLOY, "v3", False)


@pytest.mark.parametrize(
    ("record", "status"),
    [
        (None, finished()),
        (in_flight(), finished(command_id="0b1c0000-71f7-4491-898f-c9b35bee5f3b")),
        (in_flight(), finished(action=REMOVE)),
        (in_flight(command="", command_id=""), finished()),
    ],
    ids=["no-record", "another-command", "another-action", "nothing-in-flight"],
)
def test_a_status_of_another_command_is_stale(record, status):
    decision = decide(status, record=record)
    assert decision.outcome == Outcome.IGNORE and decision.actions == ()


def test_a_status_that_comes_before_the_command_id_was_recorded_is_taken():
    record = in_flight(command_id="")
    assert decide(finished(), record=record).outcome == Outcome.DEPLOYED
    other_manager = finished(instance_id=MANAGERS[1])
    assert decide(other_manager, record=record).outcome == Outcome.IGNORE


def test_a_running_command_status_changes_nothing():
    assert decide(finished("InProgress"), record=in_flight()).actions == ()


# --- reconcile pass --------------------------------------------------------------------------------


def _pass(records=(), listing=None, managers=MANAGERS):
    return decide(
        StacksPassRequested("pass-1"), records=tuple(records), listing=listing or {}, managers=managers
    )


def test_the_pass_deploys_a_file_no_event_announced():
    decision = _pass(listing={"stacks/app.yml": "v1"})
    (send,) = sends(decision)
    assert (send.record.command_version, send.record.version, send.again) == ("v1", 1, None)
    assert send.record.correlation_id == "pass-1"


def test_the_pass_deploys_the_current_version_where_another_runs():
    record = StackRecord("app", version=4, sequencer="0010", wanted="v1", deployed="v1")
    (send,) = sends(_pass([record], {"stacks/app.yml": "v2"}))
    assert (send.record.command_version, send.record.sequencer, send.record.version) == ("v2", "0010", 5)


def test_the_pass_removes_a_stack_whose_file_is_gone():
    record = StackRecord("app", version=4, wanted="v1", deployed="v1")
    (send,) = sends(_pass([record], {}))
    assert send.record.command == REMOVE and send.record.removed


def test_the_pass_leaves_alone_what_is_as_its_file_says_or_in_flight():
    records = [
        StackRecord("same", version=2, wanted="v1", deployed="v1"),
        StackRecord("gone", version=2, removed=True, gone=True, expires_at=NOW + 10),
        in_flight(),
    ]
    listing = {"stacks/same.yml": "v1", "stacks/app.yml": "v2"}
    decision = _pass(records, listing)
    assert decision.outcome == Outcome.STACKS_CHECKED and decision.actions == ()


def test_the_pass_counts_a_command_whose_status_never_came_and_sends_it_again():
    stuck = in_flight(sent_at=NOW - POLICY.command_seconds - 1)
    (send,) = sends(_pass([stuck], {"stacks/app.yml": "v1"}))
    assert send.record.attempts == 1 and send.record.command_id == ""


def test_the_pass_sends_a_bounded_number_of_commands():
    listing = {f"stacks/s{i:02}.yml": "v1" for i in range(PER_PASS + 3)}
    assert len(sends(_pass([], listing))) == PER_PASS


def test_the_pass_without_managers_writes_nothing_it_wrote_before():
    record = StackRecord("app", version=2, wanted="v1")
    assert _pass([record], {"stacks/app.yml": "v1"}, managers=()).actions == ()


def test_the_pass_ignores_files_whose_name_swarm_refuses():
    assert _pass([], {"stacks/dot.ted.yml": "v1"}).actions == ()


def test_a_pass_may_send_when_a_command_is_needed_or_one_in_flight_may_run_out():
    # Given stacks as their files say / Then the pass may send nothing (it need not read the managers)
    same = StackRecord("same", version=2, wanted="v1", deployed="v1")
    listing = {"stacks/same.yml": "v1"}
    assert not pass_may_send(StackFacts(records=(same,), listing=listing), POLICY)
    # Given a file no record knows, or a stack whose file is gone / Then it may send
    assert pass_may_send(StackFacts(records=(same,), listing={**listing, "stacks/new.yml": "v1"}), POLICY)
    assert pass_may_send(StackFacts(records=(same,), listing={}), POLICY)
    # Given a command in flight, not yet out of time / Then it may send (it may be by the decision)
    assert pass_may_send(
        StackFacts(records=(in_flight(sent_at=NOW),), listing={"stacks/app.yml": "v1"}), POLICY
    )
