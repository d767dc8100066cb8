"""``drain INSTANCE``: a graceful leave started by hand, through the path the leave flow already
takes: Auto Scaling's TerminateInstanceInAutoScalingGroup. Auto Scaling holds the instance in
Terminating:Wait and sends the terminate lifecycle action; the control plane drains the node,
demotes a manager, removes it, then lets the termination go on (a replacement is launched unless
``--decrement``). Nothing new is trusted: the instance must be one of this cluster's two groups (as
Auto Scaling itself says), in service, and for a manager the quorum guard must allow its removal on
the latest swarm view (``--force`` skips only that check; the control plane's own guard still holds)."""

from __future__ import annotations

import re
from typing import Any

from swarmkeeper.domain.models import LeaveOp, LeaveStage, Role
from swarmkeeper.domain.quorum import can_remove_manager
from swarmkeeper_cli.context import Context
from swarmkeeper_cli.errors import CliError, Exit
from swarmkeeper_cli.timeline import EventFilter, read_events
from swarmkeeper_cli.waiting import Progress, wait_for

INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")
REMOVED = ("Node Removed", "Dead Node Removed")


def check(ctx: Context, instance_id: str, force: bool) -> Role:
    """The instance's role, or a CliError (REFUSED) saying why it may not be drained."""
    if not INSTANCE_ID.fullmatch(instance_id):
        raise CliError(f"{instance_id!r} is not an EC2 instance id (i- and 8 or 17 hex digits)", Exit.REFUSED)
    found = ctx.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])
    listed = [i for i in found.get("AutoScalingInstances", []) if i.get("InstanceId") == instance_id]
    group = listed[0].get("AutoScalingGroupName") if listed else None
    if group not in ctx.names.groups:
        raise CliError(
            f"{instance_id} is not in cluster {ctx.names.cluster}'s groups ({', '.join(ctx.names.groups)})",
            Exit.REFUSED,
        )
    lifecycle = listed[0].get("LifecycleState", "")
    if lifecycle != "InService":
        why = "a leave is under way" if lifecycle.startswith("Terminating") else "wait until it is in service"
        raise CliError(f"{instance_id} is {lifecycle}, not InService: {why}", Exit.REFUSED)
    role = Role.MANAGER if group == ctx.names.groups[0] else Role.WORKER
    if role is Role.MANAGER and not force:
        view = ctx.state.get_view()
        if view is None:
            raise CliError(
                "no swarm view yet: the quorum guard cannot be checked (--force skips it)", Exit.REFUSED
            )
        node_id = next((n for n, i in view.manager_instances.items() if i == instance_id), None)
        if node_id is not None:
            allowed = can_remove_manager(view.managers, node_id)
            if not allowed.allowed:
                raise CliError(f"{instance_id}: {allowed.reason} (--force skips this check)", Exit.REFUSED)
    return role


def drain(ctx: Context, instance_id: str, decrement: bool, force: bool, wait: bool, timeout: float) -> Exit:
    role = check(ctx, instance_id, force)
    start_ms = int(ctx.clock() * 1000)
    ctx.client("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=instance_id, ShouldDecrementDesiredCapacity=decrement
    )
    replaced = "desired capacity decremented" if decrement else "Auto Scaling launches a replacement"
    ctx.out.progress(f"{instance_id} ({role}) leaves through its terminate lifecycle action; {replaced}")
    data: dict[str, Any] = {"instanceId": instance_id, "role": str(role), "decrement": decrement}
    if not wait:
        ctx.out.result(f"drain: {instance_id} is leaving", data)
        return Exit.OK
    progress = Progress(ctx)

    def left() -> LeaveOp | None:
        _, leave = ctx.state.get_ops(instance_id)
        if leave is None:
            progress.say("waiting for the control plane to take the terminate lifecycle action")
            return None
        waiting = f", waiting for {leave.waiting_for}" if leave.waiting_for else ""
        progress.say(f"leave: {leave.stage}{waiting}")
        return leave if leave.stage is LeaveStage.DONE else None

    leave = wait_for(ctx, f"drain {instance_id}", left, timeout)
    removed = [
        event for _, _, event in read_events(ctx, EventFilter(instance=instance_id, types=REMOVED), start_ms)
    ]
    data.update(reason=leave.reason, removed=bool(removed))
    if not removed:
        ctx.out.result(f"drain: {instance_id}'s leave ended without its node removed: {leave.reason}", data)
        return Exit.FAILED
    ctx.out.result(f"drain: {instance_id} drained and removed from the swarm: {leave.reason}", data)
    return Exit.OK
