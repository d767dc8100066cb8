"""``status`` (the cluster at a glance: managers, workers, leader, quorum, operations in flight, the
last reconcile) and ``nodes`` (one line per instance), read from one ``Snapshot``."""

from __future__ import annotations

from typing import Any

from swarmkeeper.domain.labels import ON_DEMAND, SPOT, node_labels
from swarmkeeper.domain.models import InstanceFacts
from swarmkeeper.domain.quorum import RaftCounts
from swarmkeeper.domain.swarm import NodeState, SwarmNode
from swarmkeeper_cli.context import Context
from swarmkeeper_cli.errors import Exit
from swarmkeeper_cli.output import ago, iso, table
from swarmkeeper_cli.reading import Member, Snapshot, read


def status(ctx: Context) -> Exit:
    snap = read(ctx)
    data = status_data(ctx, snap)
    ctx.out.result(render_status(data), data)
    return Exit.OK if data["healthy"] else Exit.DEGRADED


def status_data(ctx: Context, snap: Snapshot) -> dict[str, Any]:
    view, now = snap.view, snap.now
    data: dict[str, Any] = {"cluster": ctx.names.cluster, "region": ctx.region}
    data["operations"] = [
        {
            "instanceId": op.instance_id,
            "kind": str(op.kind),
            "stage": op.stage,
            "role": str(op.role) if op.role else None,
            "startedAt": iso(op.started_at),
            "ageSeconds": round(now - op.started_at) if op.started_at else None,
        }
        for op in snap.operations
    ]
    data["reconcile"] = {
        "lastPassAt": iso(view.taken_at) if view else None,
        "lastPassAgeSeconds": round(now - view.taken_at) if view else None,
        "inFlight": {
            "target": snap.reconcile.target,
            "commandId": snap.reconcile.command_id,
            "why": snap.reconcile.why,
            "sentAt": iso(snap.reconcile.sent_at),
        }
        if snap.reconcile
        else None,
    }
    data["tokenRotationInFlight"] = (
        {"target": snap.rotation.target, "commandId": snap.rotation.command_id} if snap.rotation else None
    )
    data["managerChangeBy"] = snap.manager_change
    if view is None:
        data.update(managers=None, workers=None, leader=None, quorum=None, healthy=False)
        return data
    managers = [_manager(node, view.manager_instances.get(node.node_id, "")) for node in view.managers]
    manager_ids = {node.node_id for node in view.managers}
    workers_down = len([node for node in view.down_since if node not in manager_ids])
    counts = RaftCounts.of(view.managers)
    leader = next((m for m in managers if m["managerStatus"] == "leader"), None)
    data["managers"] = {
        "total": len(managers),
        "ready": sum(1 for node in view.managers if node.state is NodeState.READY),
        "down": sum(1 for node in view.managers if node.is_down),
        "nodes": managers,
    }
    data["workers"] = {"total": view.nodes - len(managers), "down": workers_down}
    data["leader"] = {"nodeId": leader["nodeId"], "instanceId": leader["instanceId"]} if leader else None
    data["quorum"] = {
        "managers": counts.managers,
        "reachable": counts.reachable,
        "majority": counts.majority,
        "margin": counts.margin,
        "hasQuorum": counts.has_quorum,
    }
    data["healthy"] = bool(
        counts.margin >= 1 and data["managers"]["down"] == 0 and workers_down == 0 and leader is not None
    )
    return data


def _manager(node: SwarmNode, instance_id: str) -> dict[str, Any]:
    return {
        "nodeId": node.node_id,
        "instanceId": instance_id or None,
        "state": str(node.state),
        "availability": str(node.availability),
        "managerStatus": str(node.manager_status) if node.manager_status else None,
        "hostname": node.hostname,
    }


def render_status(data: dict[str, Any]) -> str:
    lines = [f"cluster    {data['cluster']} ({data['region']})"]
    if data["managers"] is None:
        lines.append("swarm      no swarm view yet: no reconcile pass has finished")
    else:
        managers, workers, quorum, leader = data["managers"], data["workers"], data["quorum"], data["leader"]
        where = (
            f"leader {leader['instanceId'] or '?'} (node {leader['nodeId'][:12]})" if leader else "NO LEADER"
        )
        lines.append(
            f"managers   {managers['ready']} ready, {managers['down']} down of {managers['total']}; {where}"
        )
        lines.append(
            f"workers    {workers['total'] - workers['down']} up, {workers['down']} down "
            f"of {workers['total']}"
        )
        verdict = "margin" if quorum["hasQuorum"] else "QUORUM LOST, margin"
        lines.append(
            f"quorum     {quorum['reachable']} of {quorum['managers']} managers reachable, "
            f"{quorum['majority']} needed: {verdict} {quorum['margin']}"
        )
    operations = data["operations"]
    lines.append(f"operations {len(operations)} in flight")
    for op in operations:
        age = ago(op["ageSeconds"]) if op["ageSeconds"] is not None else "?"
        lines.append(
            f"           {op['instanceId']}  {op['kind']:<5}  {op['stage']:<17}  "
            f"{op['role'] or '-':<7}  {age}"
        )
    reconcile = data["reconcile"]
    last = (
        f"last pass {reconcile['lastPassAt']} ({ago(reconcile['lastPassAgeSeconds'])} ago)"
        if reconcile["lastPassAt"]
        else "no pass finished yet"
    )
    flight = reconcile["inFlight"]
    now = f"describe-swarm on {flight['target']} in flight ({flight['why']})" if flight else "none in flight"
    lines.append(f"reconcile  {last}; {now}")
    if data["tokenRotationInFlight"]:
        lines.append(f"rotation   rotate-tokens on {data['tokenRotationInFlight']['target']} in flight")
    if data["managerChangeBy"]:
        lines.append(f"locks      manager change in progress for {data['managerChangeBy']}")
    return "\n".join(lines)


def nodes(ctx: Context) -> Exit:
    snap = read(ctx)
    rows = [node_row(member, snap) for member in snap.members]
    header = ["INSTANCE", "AZ", "TYPE", "LIFECYCLE", "ROLE", "STATE", "ASG", "NODE", "LABELS"]
    human = (
        table([header, *[_cells(row) for row in rows]]) if rows else "no instances in the cluster's groups"
    )
    ctx.out.result(human, {"cluster": ctx.names.cluster, "nodes": rows})
    return Exit.OK


def node_row(member: Member, snap: Snapshot) -> dict[str, Any]:
    return {
        "instanceId": member.instance_id,
        "availabilityZone": member.availability_zone,
        "instanceType": member.instance_type,
        "lifecycle": SPOT if member.spot else ON_DEMAND,
        "role": str(member.role),
        "state": node_state(member, snap),
        "autoScaling": member.lifecycle_state,
        "health": member.health,
        "nodeId": member.node_id or None,
        "labels": labels(member),
    }


def node_state(member: Member, snap: Snapshot) -> str:
    """What the node is doing: its operation in flight, else as the last swarm view saw it."""
    op = next((op for op in snap.operations if op.instance_id == member.instance_id), None)
    if op is not None:
        return f"{'joining' if op.kind == 'join' else 'leaving'}:{op.stage}"
    if not member.node_id:
        return "not-joined"
    view = snap.view
    manager = view.node(member.node_id) if view else None
    if manager is not None:
        return f"{manager.state}:{manager.manager_status}"
    if view is not None and member.node_id in view.down_since:
        return "down"
    return "ready"


def labels(member: Member) -> dict[str, str]:
    """The labels verify-node put on the node at its join (``domain.labels``), from the instance as
    EC2 describes it; none before the node joined."""
    facts = InstanceFacts(
        member.instance_id,
        member.ec2_state,
        availability_zone=member.availability_zone or None,
        instance_type=member.instance_type or None,
        spot=member.spot,
    )
    found = node_labels(facts, member.role) if member.node_id else None
    return found.labels() if found else {}


def _cells(row: dict[str, Any]) -> list[str]:
    node = (row["nodeId"] or "-")[:12]
    label_text = ",".join(
        f"{key.removeprefix('swarmkeeper.')}={value}" for key, value in row["labels"].items()
    )
    return [
        row["instanceId"],
        row["availabilityZone"],
        row["instanceType"],
        row["lifecycle"],
        row["role"],
        row["state"],
        row["autoScaling"],
        node,
        label_text or "-",
    ]
