"""Managers replaced by Auto Scaling keep the cluster's fault tolerance, and a crashed lock holder
never blocks the next manager change: through the real handlers, moto and the world's fakes (an
instance is Pending:Wait while its launch action is pending). Given / When / Then."""

from __future__ import annotations

import json

LOCK = "lock#manager-change"


class Swarm:
    """What describe-swarm answers: every joined node but those remove-node took out."""

    def __init__(self, world):
        self.world = world
        self.removed: set[str] = set()
        self.smallest_after: list[int] = []  # managers left after each remove-node sent

    def answer(self) -> None:
        if self.world.sent("describe-swarm")[-1].command_id not in self.world.answered:
            self.world.answer_describe(removed=tuple(self.removed))

    def round(self) -> None:
        """One round: the pending describe-swarm answered, then the steps due delivered."""
        self.answer()
        self.world.deliver_steps()

    def remove_succeeds(self, instance_id: str, node_id: str) -> None:
        (remove,) = self.world.commands_for("remove-node", node_id)
        self.removed.add(node_id)
        self.world.finish(remove, stdout=f"node-id={node_id} removed=true\n")
        (leave,) = [s for s in self.world.sent("leave-swarm") if s.instance_id == instance_id]
        self.world.finish(leave, stdout="left=true\n")

    def managers_in_swarm(self) -> int:
        return sum(
            1
            for item in self.world.nodes().values()
            if item["role"] == "manager" and item["node_id"] not in self.removed
        )


def join_now(world, instance_id: str) -> str:
    """A replacement manager joins: launch event, bootstrap, verify (nothing waits for a step)."""
    world.lifecycle(instance_id)
    boot = [s for s in world.sent("bootstrap-node") if s.instance_id == instance_id][-1]
    node_id = world.bootstrap_succeeds(boot)
    verify = [s for s in world.sent("verify-node") if s.parameters["NodeId"] == node_id][-1]
    world.verify_succeeds(verify)
    return node_id


def drained(world, node_id: str) -> None:
    world.clock.advance(1)
    (drain,) = world.commands_for("drain-node", node_id)
    world.finish(drain, stdout=f"node-id={node_id} tasks-remaining=0\n")


def replacing(world, nodes, leaving: str) -> tuple[Swarm, str]:
    """Auto Scaling terminates ``leaving`` and launches its replacement; its drain is done and the
    first fresh view answered: the removal now waits for the replacement."""
    swarm = Swarm(world)
    world.terminating(leaving)
    (replacement,) = world.managers(1)
    drained(world, nodes[leaving])
    swarm.round()
    return swarm, replacement


def steps_for(world, instance_id: str, version: int, since: int) -> list[int]:
    """The delays of the steps sent since ``since`` for that op version."""
    out = []
    for message in world.steps_sent()[since:]:
        body = json.loads(message["MessageBody"])
        if body.get("instanceId") == instance_id and body.get("version") == version:
            out.append(message.get("DelaySeconds", 0))
    return out


def removals(world, node_ids) -> list:
    return [s for n in node_ids for s in world.commands_for("remove-node", n)]


def test_two_of_three_managers_replaced_at_once_keep_a_spare_manager_throughout(world, cluster):
    # Given three managers of which Auto Scaling terminates two at once, launching two replacements
    # (desired capacity unchanged)
    managers, _workers, nodes = cluster
    swarm = Swarm(world)
    leaving = managers[:2]
    for iid in leaving:
        world.terminating(iid)
    first, second = world.managers(2)
    for iid in leaving:
        drained(world, nodes[iid])

    # When the fresh views say 3 of 3 and the replacements are still launching
    for _ in range(4):
        swarm.round()

    # Then neither is removed: either removal would leave 2 of 2 (no failure tolerated); they wait,
    # heartbeating their lifecycle actions
    assert removals(world, [nodes[i] for i in leaving]) == []
    for iid in leaving:
        assert world.leave_op(iid)["waiting_for"].startswith("a replacement manager")
        assert iid in world.fakes.heartbeats
    assert world.terminate_results(leaving[0]) == world.terminate_results(leaving[1]) == []

    # When the first replacement joins (its join wakes both), 4 of 4
    join_now(world, first)
    for _ in range(3):
        swarm.round()

    # Then exactly one of them is removed (the lock serialises them), leaving 3 of 3
    sent = removals(world, [nodes[i] for i in leaving])
    assert len(sent) == 1
    gone = next(i for i in leaving if world.commands_for("remove-node", nodes[i]))
    other = next(i for i in leaving if i != gone)
    assert swarm.managers_in_swarm() - 1 >= 3
    swarm.remove_succeeds(gone, nodes[gone])
    assert world.terminate_results(gone) == ["CONTINUE"]

    # When the other decides again on a view taken after that removal (3 of 3), it waits on
    for _ in range(4):
        swarm.round()
    assert world.commands_for("remove-node", nodes[other]) == []
    assert world.leave_op(other)["waiting_for"].startswith("a replacement manager")

    # When the second replacement joins, then the other is removed too: 3 of 3 again
    join_now(world, second)
    for _ in range(3):
        swarm.round()
    assert len(world.commands_for("remove-node", nodes[other])) == 1
    assert swarm.managers_in_swarm() - 1 >= 3
    swarm.remove_succeeds(other, nodes[other])
    assert world.terminate_results(other) == ["CONTINUE"]
    assert swarm.managers_in_swarm() == 3
    assert world.published("Quorum At Risk") == []
    assert not any(i["pk"] == LOCK for i in world.items())


def test_a_replacement_that_never_joins_holds_the_removal_only_until_its_deadline(world, cluster):
    # Given a manager terminated with its replacement launching, which never joins
    managers, _workers, nodes = cluster
    leaving = managers[0]
    started = world.clock.now
    swarm, _replacement = replacing(world, nodes, leaving)

    # When every view says 3 of 3 and the replacement stays Pending:Wait
    for _ in range(400):
        if world.commands_for("remove-node", nodes[leaving]):
            break
        swarm.round()

    # Then it was removed only once the wait's budget was spent, within the hook's budget, saying so
    waited = world.clock.now - started
    budget = 600 + 600 + 1800  # drain timeout + removal + quorum wait
    assert budget - 600 - 60 <= waited < budget - 600 + 60
    (risk,) = world.published("Quorum At Risk")
    assert risk["instanceId"] == leaving and "did not join" in risk["reason"]
    assert len(world.fakes.heartbeats) >= waited // 900
    swarm.remove_succeeds(leaving, nodes[leaving])
    assert world.terminate_results(leaving) == ["CONTINUE"]
    assert len(world.published("Quorum At Risk")) == 1


def test_a_replacement_that_fails_to_join_is_waited_past_until_the_next_one_joins(world, cluster):
    # Given a manager terminated with its replacement launching
    managers, _workers, nodes = cluster
    leaving = managers[1]
    swarm, replacement = replacing(world, nodes, leaving)

    # When the replacement's join fails (ABANDON): the group still owes that capacity
    world.lifecycle(replacement)
    boot = [s for s in world.sent("bootstrap-node") if s.instance_id == replacement][-1]
    world.finish(boot, status="Failed", stderr="bootstrap-node: docker install failed")
    assert world.fakes.lifecycle_results[replacement] == ["ABANDON"]
    waits = []
    for _ in range(4):
        swarm.round()
        waits.append(world.leave_op(leaving)["waiting_for"])

    # Then the removal still waits, for that capacity
    assert world.commands_for("remove-node", nodes[leaving]) == []
    assert any("a replacement manager (1 still to launch)" in w for w in waits), waits

    # When Auto Scaling's next instance joins, then the removal goes on, keeping 3 of 3
    (next_one,) = world.managers(1)
    swarm.round()
    join_now(world, next_one)
    for _ in range(3):
        swarm.round()
    assert len(world.commands_for("remove-node", nodes[leaving])) == 1
    assert world.published("Quorum At Risk") == []


def test_duplicate_events_while_waiting_change_nothing(world, cluster):
    # Given a manager whose removal waits for a launching replacement
    managers, _workers, nodes = cluster
    leaving = managers[2]
    swarm, replacement = replacing(world, nodes, leaving)
    version = world.leave_op(leaving)["version"]

    # When its terminate event comes again, with a new id, and that one twice
    duplicate = "cccccccc-0000-4000-8000-000000000001"
    assert world.terminating(leaving, event_id=duplicate)["outcome"] == "ignore"
    assert world.terminating(leaving, event_id=duplicate)["outcome"] == "ignore"

    # Then the op did not move, and when the replacement joins it is removed once
    assert world.leave_op(leaving)["version"] == version
    join_now(world, replacement)
    for _ in range(4):
        swarm.round()
    assert len(world.commands_for("remove-node", nodes[leaving])) == 1
    assert len(world.commands_for("drain-node", nodes[leaving])) == 1


def test_a_later_manager_change_proceeds_after_the_lock_holder_died(world, cluster):
    # Given four managers; the first leaving one took the manager-change lock and sent remove-node,
    # then its instance died and the command's status never came (nothing will release the lock)
    managers, _workers, nodes = cluster
    (fourth,) = world.managers(1)
    nodes[fourth] = join_now(world, fourth)
    swarm = Swarm(world)
    swarm.round()
    holder = managers[0]
    world.terminating(holder)
    drained(world, nodes[holder])
    swarm.round()
    (lost,) = world.commands_for("remove-node", nodes[holder])
    lock = next(i for i in world.items() if i["pk"] == LOCK)
    assert lock["holder"] == holder
    swarm.removed.add(nodes[holder])  # it was taken out; only its status event was lost
    world.dies(holder)

    # When another manager leaves
    later = managers[1]
    world.terminating(later)
    drained(world, nodes[later])

    # Then it waits while the lock lasts
    while world.clock.now < float(lock["expires_at"]) - 30:
        swarm.round()
        assert world.commands_for("remove-node", nodes[later]) == []
    assert world.leave_op(later)["waiting_for"].startswith("another manager change")
    assert world.terminate_results(later) == []

    # And once it has expired (DynamoDB's TTL never deleted it: moto does not), it proceeds
    for _ in range(10):
        if world.commands_for("remove-node", nodes[later]):
            break
        swarm.round()
    (remove,) = world.commands_for("remove-node", nodes[later])
    assert remove.instance_id != holder and remove.instance_id != later
    assert next(i for i in world.items() if i["pk"] == LOCK)["holder"] == later
    assert lost.command_id not in world.answered
    swarm.remove_succeeds(later, nodes[later])
    assert world.terminate_results(later) == ["CONTINUE"]


def test_a_replacement_joining_wakes_the_waiting_removal_at_once(world, cluster):
    # Given a manager removal waiting for its replacement (its next look 30 s away)
    managers, _workers, nodes = cluster
    leaving = managers[0]
    _swarm, replacement = replacing(world, nodes, leaving)
    op = world.leave_op(leaving)
    assert op["waiting_for"].startswith("a replacement manager")
    before = len(world.steps_sent())

    # When the replacement joins
    join_now(world, replacement)

    # Then a step for the waiting op's version goes out without delay
    assert steps_for(world, leaving, op["version"], since=before) == [0]


def test_the_lock_released_wakes_the_removal_waiting_for_it_at_once(world, cluster):
    # Given five managers, two leaving: one holds the manager-change lock, the other waits for it
    managers, _workers, nodes = cluster
    for iid in world.managers(2):
        nodes[iid] = join_now(world, iid)
    swarm = Swarm(world)
    swarm.round()
    first, second = managers[:2]
    for iid in (first, second):
        world.terminating(iid)
        drained(world, nodes[iid])
    for _ in range(3):
        swarm.round()
    holder = next(i for i in (first, second) if world.commands_for("remove-node", nodes[i]))
    waiter = first if holder == second else second
    op = world.leave_op(waiter)
    assert op["waiting_for"].startswith("another manager change")
    before = len(world.steps_sent())

    # When the holder's removal succeeds (it lets go of the lock)
    (remove,) = world.commands_for("remove-node", nodes[holder])
    world.finish(remove, stdout=f"node-id={nodes[holder]} removed=true\n")

    # Then a step for the waiting op's version goes out without delay
    assert steps_for(world, waiter, op["version"], since=before) == [0]
