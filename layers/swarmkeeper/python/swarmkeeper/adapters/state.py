"""DynamoDB state table (``pk`` string, TTL ``expires_at``): operations in flight, the init lock,
joined nodes, the token rotation in flight. Powertools idempotency records share the table.

Items:
  op#<instance-id>     a join (``JoinOp``); created with a conditional put, saved on its version
  lock#swarm-init      holder, expires_at; acquired when absent, expired, or already ours
  node#<instance-id>   node_id, role, joined_at, healthy_at (last time a command on it succeeded)
  op#rotate-tokens     command_id, target, correlation_id, expires_at
  op#<instance-id>     kind leave: a node leaving (``LeaveOp``); replaces the join op on its version
  op#reconcile         the describe-swarm in flight: command_id, target, excluded, expires_at
  lock#manager-change  holder (a leaving instance), expires_at: one manager change at a time
  view#cluster         the latest reconcile's view (``domain.view.ClusterView``)
  listeners#rejected   the Listener Rejected causes published and in force (``adapters.rejections``)

Every lock and lease (the two locks, op#reconcile, op#rotate-tokens) is free from its ``expires_at``
on, as read and as taken: TTL deletes expired items up to days late on AWS, and never in moto, so
nothing relies on it. A crashed holder blocks the next one at most until then.
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from swarmkeeper.domain.frozen import field_names
from swarmkeeper.domain.models import (
    InitLock,
    JoinOp,
    LeaveOp,
    LeaveStage,
    Mode,
    OpKind,
    OpSummary,
    ReconcilePass,
    Role,
    RotationOp,
    Stage,
)
from swarmkeeper.domain.view import ClusterView

LOCK_PK = "lock#swarm-init"
ROTATION_PK = "op#rotate-tokens"
RECONCILE_PK = "op#reconcile"
MANAGER_LOCK_PK = "lock#manager-change"
VIEW_PK = "view#cluster"

_ser = TypeSerializer()
_de = TypeDeserializer()


def op_pk(instance_id: str) -> str:
    return f"op#{instance_id}"


def node_pk(instance_id: str) -> str:
    return f"node#{instance_id}"


def _numbers(value: Any) -> Any:
    """Floats (also nested in maps and lists) as Decimals, which is what DynamoDB takes."""
    if isinstance(value, float):
        return Decimal(str(round(value, 3)))
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers(v) for v in value]
    return value


def _to_ddb(value: Any) -> dict[str, Any]:
    serialized: dict[str, Any] = _ser.serialize(_numbers(value))
    return serialized


def _encode(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _to_ddb(v) for k, v in item.items() if v is not None}


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in item.items():
        value = _de.deserialize(v)
        if isinstance(value, Decimal):
            value = int(value) if value == value.to_integral_value() else float(value)
        out[k] = value
    return out


# The condition on taking a lock or lease: nobody holds it, or its holder's time is up.
_FREE = "attribute_not_exists(pk) OR attribute_not_exists(expires_at) OR expires_at <= :now"


def _conditional_failed(err: ClientError) -> bool:
    return bool(err.response["Error"]["Code"] == "ConditionalCheckFailedException")


class StateTable:
    def __init__(self, dynamodb: Any, table_name: str):
        self._ddb = dynamodb
        self._table = table_name

    # --- generic ---------------------------------------------------------------------------

    def _get(self, pk: str) -> dict[str, Any] | None:
        r = self._ddb.get_item(TableName=self._table, Key={"pk": {"S": pk}}, ConsistentRead=True)
        return _decode(r["Item"]) if "Item" in r else None

    def _put(
        self, item: dict[str, Any], condition: str | None = None, values: dict[str, Any] | None = None
    ) -> bool:
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": _encode(item)}
        if condition:
            kwargs["ConditionExpression"] = condition
        if values:
            kwargs["ExpressionAttributeValues"] = _encode(values)
        try:
            self._ddb.put_item(**kwargs)
        except ClientError as err:
            if _conditional_failed(err):
                return False
            raise
        return True

    def _delete(self, pk: str, condition: str | None = None, values: dict[str, Any] | None = None) -> bool:
        kwargs: dict[str, Any] = {"TableName": self._table, "Key": {"pk": {"S": pk}}}
        if condition:
            kwargs["ConditionExpression"] = condition
        if values:
            kwargs["ExpressionAttributeValues"] = _encode(values)
        try:
            self._ddb.delete_item(**kwargs)
        except ClientError as err:
            if _conditional_failed(err):
                return False
            raise
        return True

    # --- for the records other adapters keep in this table (stacks) ------------------------

    def get_item(self, pk: str) -> dict[str, Any] | None:
        """The item, read consistently; None when there is none."""
        return self._get(pk)

    def put_item(
        self, item: dict[str, Any], condition: str | None = None, values: dict[str, Any] | None = None
    ) -> bool:
        """False when ``condition`` does not hold."""
        return self._put(item, condition, values)

    def scan_prefix(self, prefix: str) -> list[dict[str, Any]]:
        """Every item whose key starts with ``prefix`` (one paginated Scan)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "begins_with(pk, :prefix)",
            "ExpressionAttributeValues": {":prefix": {"S": prefix}},
        }
        pages = self._ddb.get_paginator("scan").paginate(**request)
        return [_decode(raw) for page in pages for raw in page["Items"]]

    # --- join operations -------------------------------------------------------------------

    def get_op(self, instance_id: str) -> JoinOp | None:
        """The instance's join op; None when there is none or a leave op has replaced it."""
        item = self._get(op_pk(instance_id))
        return _op_from_item(item) if item and item.get("kind", "join") == "join" else None

    def get_op_or_leave(self, instance_id: str) -> JoinOp | LeaveOp | None:
        """The instance's op item, whichever kind it is."""
        join, leave = self.get_ops(instance_id)
        return leave if leave is not None else join

    def get_ops(self, instance_id: str) -> tuple[JoinOp | None, LeaveOp | None]:
        """The instance's op item, read once: (join op, None) or (None, leave op) or (None, None)."""
        item = self._get(op_pk(instance_id))
        if not item:
            return None, None
        if item.get("kind", "join") == "leave":
            return None, _leave_from_item(item)
        return _op_from_item(item), None

    def create_op(self, op: JoinOp) -> bool:
        """False when an op for the instance exists already (a duplicate or racing event)."""
        return self._put(_op_to_item(op), "attribute_not_exists(pk)")

    def replace_op(self, op: JoinOp, replacing: int) -> bool:
        """Put a new join over the instance's closed op (join or leave) at version ``replacing``;
        False when that op moved on meanwhile (another event replaced it first)."""
        return self._put(_op_to_item(op), "version = :v", {":v": replacing})

    def save_op(self, op: JoinOp) -> bool:
        """False when someone else moved the op on (the stored version is not op.version - 1), or a
        leave replaced it: from then on no write of the join lands."""
        return self._put(
            _op_to_item(op),
            "kind = :join AND version = :previous",
            {":join": "join", ":previous": op.version - 1},
        )

    # --- leave operations ------------------------------------------------------------------

    def create_leave(self, op: LeaveOp, replacing: int | None) -> bool:
        """Put a new leave op where there is no op, or over the join op at version ``replacing``
        (a join that moved on meanwhile wins: False). False too when a leave op exists already."""
        if replacing is None:
            return self._put(_leave_to_item(op), "attribute_not_exists(pk)")
        return self._put(
            _leave_to_item(op), "kind = :join AND version = :v", {":join": "join", ":v": replacing}
        )

    def save_leave(self, op: LeaveOp) -> bool:
        return self._put(
            _leave_to_item(op),
            "kind = :leave AND version = :previous",
            {":leave": "leave", ":previous": op.version - 1},
        )

    def open_ops(self) -> list[OpSummary]:
        """Every join or leave op item (one paginated Scan, only op# items' few attributes)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "begins_with(pk, :op) AND attribute_exists(kind)",
            "ExpressionAttributeValues": {":op": {"S": "op#i-"}},
            "ProjectionExpression": "pk, kind, stage, started_at, deadline, #r",
            "ExpressionAttributeNames": {"#r": "role"},
        }
        out: list[OpSummary] = []
        for page in self._ddb.get_paginator("scan").paginate(**request):
            out.extend(_summary(_decode(raw)) for raw in page["Items"])
        return out

    # --- manager-change lock ---------------------------------------------------------------

    def manager_lock_holder(self, now: float) -> str | None:
        item = self._get(MANAGER_LOCK_PK)
        if not item or float(item.get("expires_at", 0)) <= now:
            return None
        return str(item["holder"])

    def acquire_manager_lock(self, holder: str, now: float, expires_at: float) -> bool:
        return self._put(
            {"pk": MANAGER_LOCK_PK, "holder": holder, "acquired_at": now, "expires_at": expires_at},
            f"{_FREE} OR holder = :holder",
            {":now": now, ":holder": holder},
        )

    def release_manager_lock(self, holder: str) -> bool:
        return self._delete(MANAGER_LOCK_PK, "holder = :holder", {":holder": holder})

    # --- swarm view and reconcile ------------------------------------------------------------

    def get_view(self) -> ClusterView | None:
        item = self._get(VIEW_PK)
        return ClusterView.from_item(item) if item else None

    def save_view(self, view: ClusterView) -> None:
        self._put({"pk": VIEW_PK, **view.to_item()})

    def get_reconcile(self) -> ReconcilePass | None:
        item = self._get(RECONCILE_PK)
        if not item:
            return None
        return ReconcilePass(
            command_id=str(item.get("command_id", "")),
            target=str(item.get("target", "")),
            correlation_id=str(item.get("correlation_id", "")),
            why=str(item.get("why", "")),
            excluded=tuple(item.get("excluded") or ()),
            sent_at=float(item.get("sent_at", 0)),
            expires_at=float(item.get("expires_at", 0)),
        )

    def start_reconcile(self, reconcile: ReconcilePass, now: float) -> bool:
        """False while another reconcile's describe-swarm is in flight (and not expired)."""
        return self._put(_reconcile_to_item(reconcile), _FREE, {":now": now})

    def save_reconcile(self, reconcile: ReconcilePass) -> None:
        self._put(_reconcile_to_item(reconcile))

    def end_reconcile(self, command_id: str) -> bool:
        return self._delete(RECONCILE_PK, "command_id = :c", {":c": command_id})

    # --- init lock -------------------------------------------------------------------------

    def get_lock(self) -> InitLock | None:
        item = self._get(LOCK_PK)
        return InitLock(item["holder"], float(item.get("expires_at", 0))) if item else None

    def acquire_lock(self, holder: str, now: float, expires_at: float) -> bool:
        return self._put(
            {"pk": LOCK_PK, "holder": holder, "acquired_at": now, "expires_at": expires_at},
            f"{_FREE} OR holder = :holder",
            {":now": now, ":holder": holder},
        )

    def release_lock(self, holder: str) -> bool:
        return self._delete(LOCK_PK, "holder = :holder", {":holder": holder})

    # --- joined nodes ----------------------------------------------------------------------

    def record_node(self, instance_id: str, node_id: str, role: str, now: float) -> None:
        self._put(
            {
                "pk": node_pk(instance_id),
                "node_id": node_id,
                "role": role,
                "joined_at": now,
                "healthy_at": now,
            }
        )

    def mark_healthy(self, instance_id: str, now: float) -> None:
        self._ddb.update_item(
            TableName=self._table,
            Key={"pk": {"S": node_pk(instance_id)}},
            UpdateExpression="SET healthy_at = :now",
            ExpressionAttributeValues={":now": _to_ddb(now)},
        )

    def get_node(self, instance_id: str) -> tuple[str, Role] | None:
        """(node id, role) recorded when the instance joined."""
        item = self._get(node_pk(instance_id))
        if not item or not item.get("node_id") or item.get("role") not in set(Role):
            return None
        return item["node_id"], Role(item["role"])

    def forget_node(self, instance_id: str) -> None:
        self._delete(node_pk(instance_id))

    def healthy_at(self, instance_ids: list[str]) -> dict[str, float]:
        """When each instance last proved healthy (0 when never recorded)."""
        seen: dict[str, float] = dict.fromkeys(instance_ids, 0.0)
        for start in range(0, len(instance_ids), 100):
            keys = [{"pk": {"S": node_pk(i)}} for i in instance_ids[start : start + 100]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ProjectionExpression": "pk, healthy_at"}}
            while request:
                r = self._ddb.batch_get_item(RequestItems=request)
                for raw in r["Responses"].get(self._table, []):
                    item = _decode(raw)
                    seen[item["pk"].removeprefix("node#")] = float(item.get("healthy_at", 0))
                request = r.get("UnprocessedKeys") or {}
        return seen

    # --- token rotation --------------------------------------------------------------------

    def start_rotation(self, rotation: RotationOp, now: float) -> bool:
        item = {"pk": ROTATION_PK, **asdict(rotation)}
        return self._put(item, _FREE, {":now": now})

    def save_rotation(self, rotation: RotationOp) -> None:
        self._put({"pk": ROTATION_PK, **asdict(rotation)})

    def get_rotation(self) -> RotationOp | None:
        item = self._get(ROTATION_PK)
        if not item:
            return None
        item.pop("pk")
        return RotationOp(**{k: item.get(k, "") for k in field_names(RotationOp)})

    def end_rotation(self, command_id: str) -> bool:
        return self._delete(ROTATION_PK, "command_id = :c", {":c": command_id})


_OP_FIELDS = field_names(JoinOp)


def _op_to_item(op: JoinOp) -> dict[str, Any]:
    item = {"pk": op_pk(op.instance_id), "kind": "join", **asdict(op)}
    item["role"] = str(op.role)
    item["stage"] = str(op.stage)
    item["mode"] = str(op.mode) if op.mode else None
    return item


def _op_from_item(item: dict[str, Any]) -> JoinOp:
    values = {k: item[k] for k in _OP_FIELDS if k in item}
    values["role"] = Role(values["role"])
    values["stage"] = Stage(values["stage"])
    values["mode"] = Mode(values["mode"]) if values.get("mode") else None
    for name in ("started_at", "deadline", "expires_at"):
        values[name] = float(values.get(name, 0))
    return JoinOp(**values)


_LEAVE_FIELDS = field_names(LeaveOp)


def _leave_to_item(op: LeaveOp) -> dict[str, Any]:
    item = {"pk": op_pk(op.instance_id), "kind": "leave", **asdict(op)}
    item["role"] = str(op.role)
    item["stage"] = str(op.stage)
    item["excluded"] = list(op.excluded) or None
    return item


def _leave_from_item(item: dict[str, Any]) -> LeaveOp:
    values = {k: item[k] for k in _LEAVE_FIELDS if k in item}
    values["role"] = Role(values["role"])
    values["stage"] = LeaveStage(values["stage"])
    values["excluded"] = tuple(values.get("excluded") or ())
    for name in ("started_at", "drain_deadline", "deadline", "view_wanted_at", "expires_at"):
        values[name] = float(values.get(name, 0))
    return LeaveOp(**values)


def _summary(item: dict[str, Any]) -> OpSummary:
    role = item.get("role")
    started, deadline = item.get("started_at"), item.get("deadline")
    return OpSummary(
        instance_id=str(item["pk"]).removeprefix("op#"),
        kind=OpKind(item.get("kind", "join")),
        stage=str(item.get("stage", "")),
        role=Role(role) if role in set(Role) else None,
        started_at=float(started) if started is not None else None,
        deadline=float(deadline) if deadline is not None else None,
    )


def _reconcile_to_item(reconcile: ReconcilePass) -> dict[str, Any]:
    return {"pk": RECONCILE_PK, **asdict(reconcile), "excluded": list(reconcile.excluded)}
