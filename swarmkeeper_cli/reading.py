"""The cluster as the control plane keeps it: the latest swarm view, the operations in flight and
the leases (state table, typed by the layer's domain), and the instances of its two Auto Scaling
groups as Auto Scaling and EC2 describe them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from swarmkeeper.domain.models import (
    GROUP_TAG,
    NODE_ID_TAG,
    LeaveStage,
    OpKind,
    OpSummary,
    ReconcilePass,
    Role,
    RotationOp,
    Stage,
)
from swarmkeeper.domain.view import ClusterView
from swarmkeeper_cli.context import Context


@dataclass(frozen=True)
class Member:
    """An instance of one of the cluster's groups."""

    instance_id: str
    role: Role
    availability_zone: str
    instance_type: str
    lifecycle_state: str  # Auto Scaling's: Pending:Wait, InService, Terminating:Wait, ...
    health: str
    spot: bool
    ec2_state: str
    node_id: str  # the swarmkeeper:node-id tag, "" until the node joined


@dataclass(frozen=True)
class Snapshot:
    view: ClusterView | None
    operations: tuple[OpSummary, ...]  # open ones only
    reconcile: ReconcilePass | None  # in flight
    rotation: RotationOp | None  # in flight
    manager_change: str | None  # the instance holding the manager-change lock
    members: tuple[Member, ...]
    now: float


def is_open(op: OpSummary) -> bool:
    if op.kind is OpKind.LEAVE:
        return op.stage != LeaveStage.DONE
    return op.stage not in (Stage.JOINED, Stage.FAILED)


class _Lease(Protocol):
    @property
    def expires_at(self) -> float: ...


LeaseT = TypeVar("LeaseT", bound=_Lease)


def live(lease: LeaseT | None, now: float) -> LeaseT | None:
    """``lease`` while it holds: the control plane counts a lease free from its ``expires_at`` on."""
    return lease if lease is not None and lease.expires_at > now else None


def read(ctx: Context) -> Snapshot:
    now = ctx.clock()
    state = ctx.state
    view = state.get_view()  # first: a missing table says "no such cluster" before anything else
    reconcile = state.get_reconcile()
    rotation = state.get_rotation()
    return Snapshot(
        view=view,
        operations=tuple(sorted((op for op in state.open_ops() if is_open(op)), key=_started)),
        reconcile=live(reconcile, now),
        rotation=live(rotation, now),
        manager_change=state.manager_lock_holder(now),
        members=members(ctx),
        now=now,
    )


def _started(op: OpSummary) -> tuple[float, str]:
    return (op.started_at or 0.0, op.instance_id)


def members(ctx: Context) -> tuple[Member, ...]:
    """Every instance the two groups hold (one DescribeAutoScalingGroups, one DescribeInstances),
    managers first."""
    groups: list[dict[str, Any]] = []
    paginator = ctx.client("autoscaling").get_paginator("describe_auto_scaling_groups")
    for page in paginator.paginate(AutoScalingGroupNames=list(ctx.names.groups)):
        groups.extend(page["AutoScalingGroups"])
    manager_group = ctx.names.groups[0]
    listed = [
        (instance, Role.MANAGER if group["AutoScalingGroupName"] == manager_group else Role.WORKER)
        for group in groups
        for instance in group.get("Instances", [])
    ]
    described = _describe(ctx)
    out = []
    for instance, role in listed:
        ec2 = described.get(instance["InstanceId"], {})
        tags = {t["Key"]: t["Value"] for t in ec2.get("Tags", [])}
        out.append(
            Member(
                instance_id=instance["InstanceId"],
                role=role,
                availability_zone=instance.get("AvailabilityZone", ""),
                instance_type=instance.get("InstanceType") or ec2.get("InstanceType", ""),
                lifecycle_state=instance.get("LifecycleState", ""),
                health=instance.get("HealthStatus", ""),
                spot=ec2.get("InstanceLifecycle") == "spot",
                ec2_state=ec2.get("State", {}).get("Name", ""),
                node_id=tags.get(NODE_ID_TAG, ""),
            )
        )
    return tuple(sorted(out, key=lambda m: (m.role is not Role.MANAGER, m.instance_id)))


def _describe(ctx: Context) -> dict[str, dict[str, Any]]:
    """The groups' instances as EC2 describes them, found by the tag Auto Scaling sets."""
    found: dict[str, dict[str, Any]] = {}
    paginator = ctx.client("ec2").get_paginator("describe_instances")
    tag_filter = [{"Name": f"tag:{GROUP_TAG}", "Values": list(ctx.names.groups)}]
    for page in paginator.paginate(Filters=tag_filter):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                found[instance["InstanceId"]] = instance
    return found
