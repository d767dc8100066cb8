"""What provisioning created in the embedded region, as the rest of the lab reads it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lab.events import RuleSpec
from lab.lambdas import FunctionSpec, QueueSource


@dataclass
class GroupInfo:
    logical_id: str
    name: str
    min_size: int
    max_size: int
    desired: int


@dataclass
class AlarmSpec:
    name: str
    arn: str
    props: dict[str, Any]


@dataclass
class AssociationSpec:
    """A State Manager association (moto has none): the lab's agents apply it when they register."""

    association_id: str
    document: str
    targets: list[dict[str, Any]]  # [{"Key": "tag:<name>" | "InstanceIds", "Values": [...]}]


@dataclass
class Provisioned:
    groups: dict[str, GroupInfo] = field(default_factory=dict)  # by name
    functions: dict[str, FunctionSpec] = field(default_factory=dict)  # by function name
    rules: list[RuleSpec] = field(default_factory=list)
    queue_sources: list[QueueSource] = field(default_factory=list)
    alarms: list[AlarmSpec] = field(default_factory=list)
    buses: list[str] = field(default_factory=list)
    queues: dict[str, str] = field(default_factory=dict)  # arn -> url
    documents: list[str] = field(default_factory=list)
    associations: list[AssociationSpec] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    buckets: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # type -> logical ids the lab ignores
    warnings: list[str] = field(default_factory=list)

    def group(self, suffix: str) -> GroupInfo:
        for g in self.groups.values():
            if g.name.endswith(suffix):
                return g
        raise KeyError(f"no Auto Scaling group named *{suffix} in the template")
