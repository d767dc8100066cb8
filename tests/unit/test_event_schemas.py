"""Every detail-type the layer can publish has its JSON schema in schemas/, every schema is one the layer
publishes, and the schemas are strict: Draft 4 as EventBridge takes it, every detail field required and
no other allowed. (That every event the unit tests publish matches its schema is checked as they
publish it: tests/unit/conftest.py.)"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator

from infra import event_schemas

LAYER = Path(__file__).resolve().parents[2] / "layers/swarmkeeper/python/swarmkeeper"
KERNEL = LAYER / "domain/kernel.py"


def calls_to(name: str) -> list[tuple[Path, ast.Call]]:
    found = []
    for path in sorted(LAYER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) == name
            ):
                found.append((path, node))
    return found


def declared_detail_types() -> set[str]:
    """Every ``detail_type("...")`` in the layer: the detail-types it can publish (``BusEvent`` takes
    only a ``DetailType``, which only ``detail_type`` makes: mypy strict holds the layer to it)."""
    declared = set()
    for path, call in calls_to("detail_type"):
        (argument,) = call.args
        assert isinstance(argument, ast.Constant) and isinstance(argument.value, str), (
            f"{path.name}:{call.lineno}: detail_type() takes a string literal, so that this test can read it"
        )
        declared.add(argument.value)
    return declared


def objects_in(schema: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every object schema (``type: object``) nested in ``schema``, with where it is."""
    found = []
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            found.append((where, schema))
        for key, value in schema.items():
            found.extend(objects_in(value, f"{where}/{key}"))
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            found.extend(objects_in(value, f"{where}/{i}"))
    return found


def test_every_detail_type_the_layer_can_publish_has_a_schema_and_no_schema_is_of_none() -> None:
    # Given the detail-types the layer declares, When the schemas are loaded
    declared = declared_detail_types()
    schemas = event_schemas.load()
    # Then they are the same set (a new detail-type needs its schema file; a schema of nothing is stale)
    assert declared, "no detail_type() found in the layer"
    assert sorted(declared - set(schemas)) == [], "detail-types without a schema in schemas/"
    assert sorted(set(schemas) - declared) == [], "schemas of no detail-type the layer publishes"


def test_only_the_kernel_makes_a_detail_type_by_hand() -> None:
    # Given the layer's source, When DetailType(...) is looked for, Then only detail_type() calls it
    makers = [f"{path.name}:{call.lineno}" for path, call in calls_to("DetailType") if path != KERNEL]
    assert makers == []


@pytest.mark.parametrize("detail_type", sorted(event_schemas.load()))
def test_each_schema_is_draft_4_and_strict(detail_type: str) -> None:
    # Given the schema of one detail-type
    schema = event_schemas.load()[detail_type].content
    # Then it is a valid Draft 4 schema of the whole event, for that detail-type and source only
    Draft4Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert schema["properties"]["detail-type"]["enum"] == [detail_type]
    assert schema["properties"]["source"]["enum"] == ["swarmkeeper"]
    assert {"version", "id", "detail-type", "source", "time", "detail"} <= set(schema["required"])
    # and every object in the detail (the part swarmkeeper alone writes) requires all its fields and
    # allows no other
    details = objects_in(schema.get("definitions", {}), "definitions")
    assert details
    for where, obj in details:
        assert obj.get("additionalProperties") is False, where
        assert sorted(obj.get("required", [])) == sorted(obj.get("properties", {})), where


def test_a_schema_catches_drift() -> None:
    # Given a Node Joined event as the bus delivers it
    event = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Node Joined",
        "source": "swarmkeeper",
        "account": "123456789012",
        "time": "2026-12-01T00:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {
            "cluster": "demo",
            "instanceId": "i-0123456789abcdef0",
            "nodeId": "a" * 25,
            "role": "worker",
            "reason": "ready as worker",
            "correlationId": "7bf73129-1428-4cd3-a780-95db273d1602",
        },
    }
    assert event_schemas.violations(event) == []
    # When a field goes missing, another appears, a value changes shape, or the detail-type is unknown
    missing = {**event, "detail": {k: v for k, v in event["detail"].items() if k != "nodeId"}}
    extra = {**event, "detail": {**event["detail"], "token": "x"}}
    shape = {**event, "detail": {**event["detail"], "role": "leader"}}
    unknown = {**event, "detail-type": "Node Exploded"}
    # Then each is named
    assert "'nodeId' is a required property" in " ".join(event_schemas.violations(missing))
    assert "('token' was unexpected)" in " ".join(event_schemas.violations(extra))
    assert "detail/role" in " ".join(event_schemas.violations(shape))
    assert event_schemas.violations(unknown) == ["no schema for detail-type 'Node Exploded' in schemas/"]


def test_a_schema_file_must_name_its_detail_type(tmp_path: Path) -> None:
    # Given a schema whose file name does not spell its detail-type
    content = (event_schemas.SCHEMA_DIR / "node-joined.json").read_text()
    (tmp_path / "node-added.json").write_text(content)
    # When the directory is loaded, Then it is refused, naming the file it should be
    with pytest.raises(event_schemas.SchemaFileError, match=r"node-joined\.json"):
        event_schemas.load(tmp_path)
