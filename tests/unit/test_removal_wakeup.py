"""A manager removal waiting for a fresh swarm view goes on as soon as the reconcile pass saves the
view (a step without delay), not view_wait_seconds later; the delayed step then finds it stale."""

from __future__ import annotations

import json


def _steps_for(world, instance_id, since):
    out = []
    for message in world.steps_sent()[since:]:
        body = json.loads(message["MessageBody"])
        if instance_id in message["MessageBody"]:
            out.append((message.get("DelaySeconds", 0), body))
    return out


def test_fresh_view_wakes_the_manager_removal_at_once(world, cluster):
    # Given a manager whose drain finished: it asked for a fresh view and waits (a delayed step)
    managers, _workers, nodes = cluster
    m = managers[1]
    world.terminating(m)
    world.clock.advance(1)
    (drain,) = world.commands_for("drain-node", nodes[m])
    world.finish(drain, stdout=f"node-id={nodes[m]} tasks-remaining=0\n")
    assert world.leave_op(m)["waiting_for"] == "a fresh swarm view"
    before = len(world.steps_sent())
    version = world.leave_op(m)["version"]

    # When the reconcile pass it asked for saves the view
    world.answer_describe()

    # Then a step for the waiting op's version goes out without delay
    woken = _steps_for(world, m, before)
    assert [d for d, _ in woken] == [0]
    assert str(version) in json.dumps(woken[0][1])

    # And delivering it removes the manager right away; the older delayed step is stale
    world.deliver_steps()
    (remove,) = world.commands_for("remove-node", nodes[m])
    assert remove.instance_id in managers and remove.instance_id != m


def test_a_view_wakes_nothing_when_no_removal_waits_for_one(world, cluster):
    # Given no manager removal in flight (a worker draining does not wait for views)
    _managers, workers, _nodes = cluster
    world.terminating(workers[0])
    before = len(world.steps_sent())

    # When a reconcile pass saves a view
    world.reconcile_pass()

    # Then no step is scheduled for anybody
    assert world.steps_sent()[before:] == []
