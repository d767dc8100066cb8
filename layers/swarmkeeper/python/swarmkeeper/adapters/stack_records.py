"""The stacks' records in the state table: ``stack#<name>`` (``domain.stacks.StackRecord``), written
on their version (a conditional put: a concurrent writer of the same record makes it fail)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from swarmkeeper.adapters.state import StateTable
from swarmkeeper.domain.frozen import record_fields
from swarmkeeper.domain.stacks import StackRecord

PK_PREFIX = "stack#"
_FIELDS = {f.name: f.type for f in record_fields(StackRecord)}


def stack_pk(name: str) -> str:
    return f"{PK_PREFIX}{name}"


class StackRecords:
    def __init__(self, state: StateTable):
        self._state = state

    def get(self, name: str) -> StackRecord | None:
        item = self._state.get_item(stack_pk(name))
        return _from_item(item) if item else None

    def save(self, record: StackRecord) -> bool:
        """False when the stored record is not the one before ``record`` (someone wrote first)."""
        item = {"pk": stack_pk(record.name), **asdict(record)}
        if record.version == 1:
            return self._state.put_item(item, "attribute_not_exists(pk)")
        return self._state.put_item(item, "version = :previous", {":previous": record.version - 1})

    def all(self) -> list[StackRecord]:
        """Every stack's record: one paginated Scan of the ``stack#`` items."""
        return [_from_item(item) for item in self._state.scan_prefix(PK_PREFIX)]


def _from_item(item: dict[str, Any]) -> StackRecord:
    values: dict[str, Any] = {}
    for name, kind in _FIELDS.items():
        if name not in item:
            continue
        value = item[name]
        if kind == "int":
            value = int(value)
        elif kind == "float":
            value = float(value)
        elif kind == "bool":
            value = bool(value)
        else:
            value = str(value)
        values[name] = value
    return StackRecord(**values)
