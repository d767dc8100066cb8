"""The stack registers every event schema of the repo in its EventBridge schema registry, as it is."""

from __future__ import annotations

import json

from infra_synth import Synth

from infra import event_schemas


def test_the_registry_holds_every_schema_of_the_repo_as_it_is(demo: Synth, variant: Synth) -> None:
    for synth, cluster in ((demo, "demo"), (variant, "blue")):
        # Given the template's registry and schemas
        ((registry_id, registry),) = synth.of_type("AWS::EventSchemas::Registry").items()
        schemas = synth.of_type("AWS::EventSchemas::Schema")
        # Then the registry is the cluster's, and it holds one schema per file in schemas/, by AWS's
        # naming (<source>@<DetailType>), in Draft 4, with the file's content and description
        assert registry["Properties"]["RegistryName"] == f"swarmkeeper-{cluster}"
        by_name = {s["Properties"]["SchemaName"]: s for s in schemas.values()}
        expected = event_schemas.load()
        assert sorted(by_name) == sorted(s.name for s in expected.values())
        for schema in expected.values():
            registered = by_name[schema.name]
            properties = registered["Properties"]
            assert properties["RegistryName"] == f"swarmkeeper-{cluster}"
            assert properties["Type"] == "JSONSchemaDraft4"
            assert json.loads(properties["Content"]) == schema.content
            assert properties["Description"] == schema.description
            assert registry_id in registered.get("DependsOn", [])


def test_schema_names_follow_the_detail_types() -> None:
    # Given the schemas, Then each one's registry name is swarmkeeper@<its detail-type without spaces>
    names = {s.detail_type: s.name for s in event_schemas.load().values()}
    assert names["Node Join Started"] == "swarmkeeper@NodeJoinStarted"
    assert all(len(name) <= 385 and " " not in name for name in names.values())
