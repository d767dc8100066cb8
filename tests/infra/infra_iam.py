"""A tiny IAM evaluator over synthesized templates: enough to ask "can role X do A on resource R?".

Intrinsics are resolved to fixed values (partition aws, region us-east-1, account 123456789012;
GetAtt Arn -> arn:aws:test:::<LogicalId>) so ARNs become plain strings matched with IAM wildcards.

Conditions are evaluated against the request context a test passes (`{"aws:PrincipalArn": ...}`),
for the operators the stack uses; any other operator raises, so a new one cannot pass unnoticed.
As in IAM, a key missing from the context fails a condition, except under ForAllValues.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}
ACCOUNT_ROOT = "arn:aws:iam::123456789012:root"


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
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _matches(value: str, pattern: str, case_sensitive: bool = True) -> bool:
    if not case_sensitive:
        value, pattern = value.lower(), pattern.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _condition_holds(operator: str, key: str, expected: list[str], context: dict[str, Any]) -> bool:
    present = {k.lower(): v for k, v in context.items()}
    if operator.startswith("ForAllValues:"):
        inner = operator.split(":", 1)[1]
        values = _as_list(present.get(key.lower(), []))
        return all(_condition_holds(inner, key, expected, {key: v}) for v in values)
    if key.lower() not in present:
        return False
    actual = _as_list(present[key.lower()])
    if operator == "StringEquals":
        return any(a == e for a in actual for e in expected)
    if operator in ("StringLike", "ArnEquals", "ArnLike"):
        return any(_matches(a, e) for a in actual for e in expected)
    if operator == "Bool":
        return any(str(a).lower() == str(e).lower() for a in actual for e in expected)
    raise NotImplementedError(f"condition operator {operator} is not evaluated by this helper")


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: dict = field(default_factory=dict)
    principals: tuple[str, ...] = ()  # resource policies only
    sid: str = ""

    def covers(self, action: str, resource: str) -> bool:
        return any(_matches(action, a, case_sensitive=False) for a in self.actions) and any(
            _matches(resource, r) for r in self.resources
        )

    def applies(self, context: dict[str, Any]) -> bool:
        return all(
            _condition_holds(operator, key, [str(v) for v in _as_list(expected)], context)
            for operator, pairs in self.conditions.items()
            for key, expected in pairs.items()
        )


def _statement(st: dict) -> Statement:
    st = resolve(st)
    principal = st.get("Principal", {})
    principals = tuple(_as_list(principal.get("AWS", []))) if isinstance(principal, dict) else (principal,)
    return Statement(
        effect=st["Effect"],
        actions=tuple(_as_list(st["Action"])),
        resources=tuple(str(r) for r in _as_list(st["Resource"])),
        conditions=st.get("Condition", {}),
        principals=principals,
        sid=st.get("Sid", ""),
    )


def statements_of_role(resources: dict[str, dict], role_id: str) -> list[Statement]:
    out = []
    for res in resources.values():
        if res["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role_id} not in res["Properties"].get("Roles", []):
            continue
        out.extend(_statement(st) for st in res["Properties"]["PolicyDocument"]["Statement"])
    return out


def key_policy(resources: dict[str, dict], key_id: str) -> list[Statement]:
    return [_statement(st) for st in resources[key_id]["Properties"]["KeyPolicy"]["Statement"]]


def allowed(
    statements: list[Statement], action: str, resource: str, context: dict[str, Any] | None = None
) -> list[Statement]:
    """The Allow statements that grant it in that context, or [] if none does or a Deny covers it."""
    context = context or {}
    relevant = [s for s in statements if s.covers(action, resource) and s.applies(context)]
    if any(s.effect == "Deny" for s in relevant):
        return []
    return [s for s in relevant if s.effect == "Allow"]


def key_allows(key: list[Statement], action: str, context: dict[str, Any]) -> list[Statement]:
    """Key policy statements that allow the caller (`context["aws:PrincipalArn"]`) `action` in that
    context, whether they name the caller, anyone, or the account (then the caller's own IAM policy
    must allow it too); [] if none does or a Deny covers it."""
    caller = context["aws:PrincipalArn"]
    for_caller = [s for s in key if {ACCOUNT_ROOT, "*", caller} & set(s.principals)]
    return allowed(for_caller, action, "*", context)


def role_id_for(resources: dict[str, dict], logical_id_prefix: str) -> str:
    (role_id,) = [
        k for k, r in resources.items() if r["Type"] == "AWS::IAM::Role" and k.startswith(logical_id_prefix)
    ]
    return role_id


def arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:us-east-1:123456789012:{resource}"
