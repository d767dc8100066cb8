"""The synthesized stack as the lab reads it: resources, parameters and the few intrinsics CDK emits.

The lab never keeps a second copy of the stack. It loads ``cdk.out/<stack>.template.json`` and
resolves ``Ref``/``Fn::GetAtt``/``Fn::Join``/``Fn::Sub``/``Fn::Select``/``Fn::Split``/``Fn::GetAZs``/
``Fn::If``/``Fn::Base64`` against the physical ids of what it created in the embedded region.
Resources the lab does not create (IAM, log groups, permissions) get stable synthetic ids.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NO_VALUE = object()  # AWS::NoValue: the key is dropped from its parent


class TemplateError(Exception):
    """The template is missing, malformed, or uses something the lab cannot resolve."""


@dataclass
class Resource:
    logical_id: str
    type: str
    properties: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)


def find_template(cdk_out: Path, cluster: str | None = None) -> Path:
    """``cdk.out/swarmkeeper-<C>.template.json``; with several clusters, ``cluster`` picks one."""
    if cluster:
        path = cdk_out / f"swarmkeeper-{cluster}.template.json"
        if not path.is_file():
            raise TemplateError(f"no template {path} (run `make synth`)")
        return path
    found = sorted(cdk_out.glob("swarmkeeper-*.template.json"))
    if not found:
        raise TemplateError(f"no swarmkeeper-*.template.json in {cdk_out} (run `make synth`)")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise TemplateError(f"several stacks in {cdk_out} ({names}): pass --cluster")
    return found[0]


class Template:
    """One synthesized stack. ``resolve`` turns intrinsics into values via ``ref``/``getatt`` callbacks."""

    def __init__(self, body: dict[str, Any], stack_name: str, *, region: str, account: str):
        if not isinstance(body.get("Resources"), dict):
            raise TemplateError("template has no Resources")
        self.body = body
        self.stack_name = stack_name
        self.region = region
        self.account = account
        self.parameters: dict[str, Any] = {}
        self.resources: dict[str, Resource] = {
            lid: Resource(
                lid,
                spec.get("Type", ""),
                spec.get("Properties") or {},
                spec.get("Metadata") or {},
                _as_list(spec.get("DependsOn")),
            )
            for lid, spec in body["Resources"].items()
        }
        self.conditions: dict[str, Any] = body.get("Conditions") or {}
        self._condition_values: dict[str, bool] = {}

    @classmethod
    def load(cls, path: Path, *, region: str, account: str) -> Template:
        try:
            body = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise TemplateError(f"cannot read template {path}: {e}") from e
        stack = Path(path).name.removesuffix(".template.json")
        return cls(body, stack, region=region, account=account)

    @property
    def cluster(self) -> str:
        return self.stack_name.removeprefix("swarmkeeper-")

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.type == type_]

    def set_parameters(self, lab_values: Callable[[str, dict[str, Any]], Any]) -> None:
        """Give every CFN parameter a value: ``lab_values(name, spec)`` or its Default."""
        for name, spec in (self.body.get("Parameters") or {}).items():
            value = lab_values(name, spec)
            if value is None:
                value = spec.get("Default")
            if value is None:
                raise TemplateError(f"parameter {name} has no default and no lab value")
            self.parameters[name] = value

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account}:stack/"
            f"{self.stack_name}/{_uuidish(self.stack_name)}",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }.get(name)

    def references(self, value: Any) -> set[str]:
        """Logical ids of resources that ``value`` refers to (for creation order)."""
        found: set[str] = set()

        def walk(v: Any) -> None:
            if isinstance(v, dict):
                if len(v) == 1:
                    ((k, arg),) = v.items()
                    if k == "Ref" and isinstance(arg, str) and arg in self.resources:
                        found.add(arg)
                    elif k == "Fn::GetAtt":
                        lid = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                        if lid in self.resources:
                            found.add(lid)
                    elif k == "Fn::Sub":
                        text = arg[0] if isinstance(arg, list) else arg
                        for name in re.findall(r"\$\{([^!}][^}]*)\}", text):
                            lid = name.split(".", 1)[0]
                            if lid in self.resources:
                                found.add(lid)
                for x in v.values():
                    walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)

        walk(value)
        return found

    def creation_order(self, logical_ids: list[str]) -> list[str]:
        """Topological order of ``logical_ids`` (references and DependsOn), ties by template order."""
        wanted = set(logical_ids)
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(lid: str) -> None:
            if state.get(lid) == 2:
                return
            if state.get(lid) == 1:
                return  # a cycle through resources the lab does not create: order does not matter
            state[lid] = 1
            res = self.resources[lid]
            deps = self.references(res.properties) | set(res.depends_on)
            for dep in sorted(deps & wanted):
                visit(dep)
            state[lid] = 2
            if lid in wanted:
                order.append(lid)

        for lid in logical_ids:
            visit(lid)
        return order

    def condition(self, name: str, ref: Callable, getatt: Callable) -> bool:
        if name not in self._condition_values:
            self._condition_values[name] = bool(self.resolve(self.conditions[name], ref, getatt))
        return self._condition_values[name]

    def resolve(self, value: Any, ref: Callable[[str], Any], getatt: Callable[[str, str], Any]) -> Any:
        """Resolve intrinsics in ``value``. ``ref(logical_id)``/``getatt(logical_id, attr)`` answer
        for resources; parameters and pseudo parameters are answered here."""

        def r(v: Any) -> Any:
            if isinstance(v, list):
                return [x for x in (r(i) for i in v) if x is not NO_VALUE]
            if not isinstance(v, dict):
                return v
            if len(v) == 1:
                ((k, arg),) = v.items()
                if k == "Ref":
                    return self._ref(arg, ref)
                if k == "Fn::GetAtt":
                    lid, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
                    return getatt(lid, r(attr))
                if k == "Fn::Join":
                    sep, items = arg
                    return r(sep).join(str(x) for x in r(items))
                if k == "Fn::Select":
                    index, items = arg
                    return r(items)[int(r(index))]
                if k == "Fn::Split":
                    sep, text = arg
                    return r(text).split(r(sep))
                if k == "Fn::GetAZs":
                    return [f"{self.region}{s}" for s in "abc"]
                if k == "Fn::Base64":
                    import base64

                    return base64.b64encode(str(r(arg)).encode()).decode()
                if k == "Fn::Sub":
                    return self._sub(arg, ref, getatt, r)
                if k == "Fn::If":
                    cond, yes, no = arg
                    return r(yes) if self.condition(cond, ref, getatt) else r(no)
                if k == "Fn::Equals":
                    a, b = arg
                    return r(a) == r(b)
                if k == "Fn::Not":
                    return not r(arg[0])
                if k == "Fn::And":
                    return all(r(x) for x in arg)
                if k == "Fn::Or":
                    return any(r(x) for x in arg)
                if k == "Condition":
                    return self.condition(arg, ref, getatt)
                if k == "Fn::ImportValue":
                    raise TemplateError(f"Fn::ImportValue {arg!r}: the lab runs one stack alone")
            return {k: x for k, x in ((k, r(x)) for k, x in v.items()) if x is not NO_VALUE}

        return r(value)

    def _ref(self, name: str, ref: Callable[[str], Any]) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return ref(name)
        raise TemplateError(f"Ref to unknown {name!r}")

    def _sub(self, arg: Any, ref: Callable, getatt: Callable, r: Callable) -> str:
        text, variables = arg if isinstance(arg, list) else (arg, {})
        values = {k: r(v) for k, v in (variables or {}).items()}

        def one(m: re.Match) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return str(values[name])
            if "." in name and not name.startswith("AWS::"):
                lid, attr = name.split(".", 1)
                return str(getatt(lid, attr))
            return str(self._ref(name, ref))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def generated_name(self, logical_id: str, max_len: int = 64, lower: bool = False) -> str:
        """A CloudFormation-like physical name for a resource whose name the template leaves open."""
        suffix = hashlib.sha1(f"{self.stack_name}/{logical_id}".encode()).hexdigest()[:12].upper()
        name = f"{self.stack_name}-{logical_id[: max_len - len(self.stack_name) - 14]}-{suffix}"
        return name.lower() if lower else name


def _as_list(v: Any) -> list[str]:
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


def _uuidish(seed: str) -> str:
    h = hashlib.sha1(seed.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
