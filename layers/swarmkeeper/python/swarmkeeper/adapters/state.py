"""DynamoDB state table (``pk`` string, TTL ``expires_at``): operations in flight, the init lock,
joined nodes, the token rotation in flight. Powertools idempotency records share the table.

Items:
  op#<instance-id>     a join (``JoinOp``); created with a conditional put, saved on its version
  lock#swarm-init      holder, expires_at; acquired when absent, expired, or already ours
  node#<instance-id>   node_id, role, joined_at, healthy_at (last time a command on it succeeded)
  op#rotate-tokens     command_id, target, correlation_id, expires_at
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from swarmkeeper.domain.models import InitLock, JoinOp, Mode, Role, Stage

LOCK_PK = "lock#swarm-init"
ROTATION_PK = "op#rotate-tokens"

_ser = TypeSerializer()
_de = TypeDeserializer()


def op_pk(instance_id: str) -> str:
    return f"op#{instance_id}"


def node_pk(instance_id: str) -> str:
    return f"node#{instance_id}"


def _to_ddb(value: Any) -> dict[str, Any]:
    if isinstance(value, float):
        value = Decimal(str(round(value, 3)))
    return _ser.serialize(value)


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


def _conditional_failed(err: ClientError) -> bool:
    return err.response["Error"]["Code"] == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class RotationOp:
    command_id: str
    target: str
    node_id: str
    correlation_id: str
    expires_at: float


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

    # --- join operations -------------------------------------------------------------------

    def get_op(self, instance_id: str) -> JoinOp | None:
        item = self._get(op_pk(instance_id))
        return _op_from_item(item) if item else None

    def create_op(self, op: JoinOp) -> bool:
        """False when an op for the instance exists already (a duplicate or racing event)."""
        return self._put(_op_to_item(op), "attribute_not_exists(pk)")

    def save_op(self, op: JoinOp) -> bool:
        """False when someone else moved the op on (the stored version is not op.version - 1)."""
        return self._put(_op_to_item(op), "version = :previous", {":previous": op.version - 1})

    # --- init lock -------------------------------------------------------------------------

    def get_lock(self) -> InitLock | None:
        item = self._get(LOCK_PK)
        return InitLock(item["holder"], float(item["expires_at"])) if item else None

    def acquire_lock(self, holder: str, now: float, expires_at: float) -> bool:
        return self._put(
            {"pk": LOCK_PK, "holder": holder, "acquired_at": now, "expires_at": expires_at},
            "attribute_not_exists(pk) OR expires_at < :now OR holder = :holder",
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
        return self._put(item, "attribute_not_exists(pk) OR expires_at < :now", {":now": now})

    def save_rotation(self, rotation: RotationOp) -> None:
        self._put({"pk": ROTATION_PK, **asdict(rotation)})

    def get_rotation(self) -> RotationOp | None:
        item = self._get(ROTATION_PK)
        if not item:
            return None
        item.pop("pk")
        return RotationOp(**{k: item.get(k, "") for k in RotationOp.__dataclass_fields__})

    def end_rotation(self, command_id: str) -> bool:
        return self._delete(ROTATION_PK, "command_id = :c", {":c": command_id})


_OP_FIELDS = tuple(JoinOp.__dataclass_fields__)


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
