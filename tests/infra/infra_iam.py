"""A tiny IAM evaluator over synthesized templates: enough to ask "can role X do A on resource R?".

Intrinsics are resolved to fixed values (partition aws, region us-east-1, account 123456789012;
GetAtt Arn -> arn:aws:test:::<LogicalId>) so ARNs become plain strings matched with IAM wildcards.
Conditions are returned to the caller, not evaluated.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}


def resolve(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Fn::Join":
            sep, parts = arg
            return sep.join(str(resolve(p)) for p in parts)
        if fn == "Ref":
            return PSEUDO.get(arg, f"ref:{arg}")
        if fn == "Fn::GetAtt":
            return f"arn:aws:test:::{arg[0]}"
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: dict = field(default_factory=dict)

    def covers(self, action: str, resource: str) -> bool:
        return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in self.actions) and any(
            fnmatch.fnmatchcase(resource, r) for r in self.resources
        )


def statements_of_role(resources: dict[str, dict], role_id: str) -> list[Statement]:
    out = []
    for res in resources.values():
        if res["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role_id} not in res["Properties"].get("Roles", []):
            continue
        for st in res["Properties"]["PolicyDocument"]["Statement"]:
            out.append(
                Statement(
                    effect=st["Effect"],
                    actions=tuple(_as_list(st["Action"])),
                    resources=tuple(str(r) for r in _as_list(resolve(st["Resource"]))),
                    conditions=st.get("Condition", {}),
                )
            )
    return out


def allowed(statements: list[Statement], action: str, resource: str) -> list[Statement]:
    """The Allow statements that grant it, or [] if none does or an explicit Deny covers it."""
    if any(s.effect == "Deny" and s.covers(action, resource) for s in statements):
        return []
    return [s for s in statements if s.effect == "Allow" and s.covers(action, resource)]


def role_id_for(resources: dict[str, dict], logical_id_prefix: str) -> str:
    (role_id,) = [
        k for k, r in resources.items() if r["Type"] == "AWS::IAM::Role" and k.startswith(logical_id_prefix)
    ]
    return role_id


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:us-east-1:123456789012:{resource}"
