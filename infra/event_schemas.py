"""The JSON schemas of the events swarmkeeper publishes on its bus: one file per detail-type in
`schemas/`, JSON Schema Draft 4 (one of the two formats EventBridge's schema registry takes, and one a
validator reads as it is). The stack registers each one; the unit tests and the lab validate what was
published against them. No CDK here: the lab reads this module too."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from infra.names import EVENT_SOURCE

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
SCHEMA_TYPE = "JSONSchemaDraft4"  # AWS::EventSchemas::Schema Type
DETAIL_TYPE_KEY = "x-amazon-events-detail-type"
SOURCE_KEY = "x-amazon-events-source"


class SchemaFileError(Exception):
    pass


@dataclass(frozen=True)
class EventSchema:
    detail_type: str
    path: Path
    content: Mapping[str, Any]

    @property
    def name(self) -> str:
        """The schema's name in the registry, by AWS's own convention: `<source>@<DetailTypeNoSpaces>`."""
        return f"{EVENT_SOURCE}@{self.detail_type.replace(' ', '')}"

    @property
    def description(self) -> str:
        return str(self.content.get("description", ""))


def file_name(detail_type: str) -> str:
    """`Node Join Started` -> `node-join-started.json`."""
    return detail_type.lower().replace(" ", "-") + ".json"


@cache
def load(directory: Path = SCHEMA_DIR) -> Mapping[str, EventSchema]:
    """Every schema in ``directory`` by the detail-type it describes; a file that names no detail-type,
    another source, or a detail-type its file name does not spell is an error."""
    schemas: dict[str, EventSchema] = {}
    for path in sorted(directory.glob("*.json")):
        content = json.loads(path.read_text())
        detail_type = content.get(DETAIL_TYPE_KEY)
        if not isinstance(detail_type, str) or not detail_type:
            raise SchemaFileError(f"{path.name}: no {DETAIL_TYPE_KEY}")
        if content.get(SOURCE_KEY) != EVENT_SOURCE:
            raise SchemaFileError(f"{path.name}: {SOURCE_KEY} is not {EVENT_SOURCE!r}")
        if path.name != file_name(detail_type):
            raise SchemaFileError(f"{path.name}: the schema of {detail_type!r} is {file_name(detail_type)}")
        schemas[detail_type] = EventSchema(detail_type, path, content)
    return schemas


def violations(event: Mapping[str, Any], schemas: Mapping[str, EventSchema] | None = None) -> list[str]:
    """Why ``event`` (an EventBridge event as delivered: envelope and detail) does not match the schema
    of its detail-type, one line per mismatch; empty when it matches."""
    from jsonschema import Draft4Validator

    detail_type = event.get("detail-type")
    schema = (load() if schemas is None else schemas).get(str(detail_type))
    if schema is None:
        return [f"no schema for detail-type {detail_type!r} in {SCHEMA_DIR.name}/"]
    validator = Draft4Validator(schema.content, format_checker=Draft4Validator.FORMAT_CHECKER)
    return [
        f"{detail_type}: {'/'.join(map(str, error.absolute_path)) or '(event)'}: {error.message}"
        for error in sorted(validator.iter_errors(event), key=lambda e: list(map(str, e.absolute_path)))
    ]


def delivered(
    entry: Mapping[str, Any], *, event_id: str, account: str, region: str, time: str
) -> dict[str, Any]:
    """The event EventBridge delivers for one PutEvents entry: its documented envelope around the
    entry's detail."""
    return {
        "version": "0",
        "id": event_id,
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": account,
        "time": time,
        "region": region,
        "resources": list(entry.get("Resources", [])),
        "detail": json.loads(entry["Detail"]),
    }
