"""SSM Command documents as the agent reads them: SendCommand's parameter checks and each
aws:runShellScript step's shell with ``{{ Param }}`` substituted, plus the error SSM answers with."""

from __future__ import annotations

import re
from typing import Any

from moto.core.exceptions import ServiceException

_PARAM_RE = re.compile(r"\{\{\s*([A-Za-z0-9_.:-]+)\s*\}\}")


class RunCommandError(ServiceException):
    """An SSM error as AWS returns it (defined outside moto's packages so moto answers with SSM's model)."""


def render_commands(content: dict, parameters: dict[str, list[str]]) -> list[tuple[str, str, int]]:
    """(step name, shell, timeout) of each aws:runShellScript step, ``{{ P }}`` substituted like the agent."""
    specs = content.get("parameters") or {}
    values: dict[str, str] = {}
    for name, spec in specs.items():
        if name in parameters:
            v = parameters[name]
            values[name] = ",".join(v) if isinstance(v, list) else str(v)
        elif "default" in spec:
            values[name] = str(spec["default"])
    steps = []
    for step in content.get("mainSteps") or content.get("runtimeConfig", {}).values():
        if step.get("action") != "aws:runShellScript":
            continue
        inputs = step.get("inputs") or {}
        lines = inputs.get("runCommand") or []
        text = "\n".join(lines) if isinstance(lines, list) else str(lines)
        text = _PARAM_RE.sub(lambda m: values.get(m.group(1), m.group(0)), text)
        timeout = int(inputs.get("timeoutSeconds") or 3600)
        steps.append((step.get("name", "runShellScript"), text, timeout))
    return steps


def validate_parameters(content: dict, parameters: dict[str, Any]) -> None:
    """Raise InvalidParameters as SendCommand does for unknown, missing or ill-formed parameters."""
    specs = content.get("parameters") or {}
    unknown = sorted(set(parameters) - set(specs))
    if unknown:
        raise RunCommandError("InvalidParameters", f"Parameters {unknown} are not defined in the document.")
    for name, spec in specs.items():
        if name not in parameters:
            if "default" not in spec:
                raise RunCommandError(
                    "InvalidParameters", f"Parameter {name} is required but was not provided."
                )
            continue
        value = parameters[name]
        items = value if isinstance(value, list) else [value]
        if spec.get("type", "String") == "String" and len(items) != 1:
            raise RunCommandError("InvalidParameters", f"Parameter {name} takes exactly one value.")
        pattern = spec.get("allowedPattern")
        for item in items:
            if pattern and not re.search(pattern, str(item)):
                raise RunCommandError(
                    "InvalidParameters",
                    f'Parameter "{name}" "{item}" failed to satisfy constraint: '
                    f"Member must satisfy regular expression pattern: {pattern}",
                )
            if spec.get("allowedValues") and item not in spec["allowedValues"]:
                raise RunCommandError("InvalidParameters", f"Parameter {name} value {item} is not allowed.")
