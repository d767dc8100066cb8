"""The SSM Command documents swarmkeeper runs on instances.

Each action's shell lives next to this file as ``<action>.sh`` (POSIX sh, checked by shellcheck).
A document is that file behind a prelude that exports each document parameter as ``SK_<NAME>``
(``Role`` -> ``SK_ROLE``). Every parameter has an ``allowedPattern`` that admits no quote, space or
shell metacharacter, so the SSM agent's ``{{ Name }}`` substitution cannot inject shell.

Shell that several documents need lives once, in an include file ``_<name>.sh`` next to them (not
a document; its first line is ``# shellcheck shell=sh`` so shellcheck lints it alone). A script line
``# @include _<name>.sh`` is replaced by that file's other lines when the document is built, so each
document stays self-contained: the instance runs it alone.

Contract with the control plane (layers/) and the lab: the action names, the parameter names and
what each script prints on its last stdout line (``RESULT_FORMATS``, and each script's header).
``render_commands()`` renders what the SSM agent would run (the lab uses it); ``parse_result()`` reads
the last line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOCUMENTS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    allowed_pattern: str
    default: str | None = None

    @property
    def env_name(self) -> str:
        snake = "".join("_" + c if c.isupper() and i else c for i, c in enumerate(self.name))
        return "SK_" + snake.upper()


_ROLE = Parameter("Role", "Swarm role of the node: manager or worker.", r"^(manager|worker)$")
_NODE_ID = Parameter("NodeId", "Swarm node id.", r"^[a-z0-9]{25}$")
_PREFIX = Parameter(
    "ParameterPrefix", "Parameter Store path of the cluster.", r"^/swarmkeeper/[a-z][a-z0-9-]{0,30}$"
)
_KMS_KEY = Parameter("KmsKeyId", "KMS key for the join-token SecureStrings.", r"^[A-Za-z0-9:/_-]{1,2048}$")
_REGION = Parameter("Region", "AWS region of the cluster.", r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
_TIMEOUT = Parameter("TimeoutSeconds", "How long the script may wait.", r"^[0-9]{1,4}$", "60")
# A stack name Swarm accepts as the prefix of its services' and networks' names (`<stack>_<service>`,
# at most 63 characters, letters, digits, `_` and `-`), and the bucket key it is deployed from.
STACK_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}"
_STACK_NAME = Parameter("StackName", "Swarm stack name.", rf"^{STACK_NAME_PATTERN}$")
# The node labels verify-node sets (swarmkeeper.az, .instance-type, .lifecycle; .role from Role).
_AZ = Parameter(
    "AvailabilityZone",
    "Availability Zone of the node's instance (label swarmkeeper.az).",
    r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}([a-z]|(-[a-z0-9]+)+)$",
)
_INSTANCE_TYPE = Parameter(
    "InstanceType",
    "EC2 instance type of the node (label swarmkeeper.instance-type).",
    r"^[a-z0-9][a-z0-9-]{0,30}\.[a-z0-9][a-z0-9-]{0,30}$",
)
_ECR_REGISTRY_PATTERN = r"^([0-9]{12}\.dkr\.ecr\.[a-z]{2}(-[a-z]+)+-[0-9]\.amazonaws\.com(\.cn)?)?$"
_LIFECYCLE = Parameter("Lifecycle", "spot or on-demand (label swarmkeeper.lifecycle).", r"^(spot|on-demand)$")

PARAMETERS: dict[str, tuple[Parameter, ...]] = {
    "bootstrap-node": (
        _ROLE,
        Parameter("Mode", "init: create the swarm; join: join the existing one.", r"^(init|join)$"),
        Parameter(
            "AdvertiseAddress", "Private IPv4 address of the instance.", r"^([0-9]{1,3}\.){3}[0-9]{1,3}$"
        ),
        _PREFIX,
        _KMS_KEY,
        Parameter(
            "DockerVersion",
            "Docker package version to install when missing (empty: the distribution's).",
            r"^([0-9][0-9.]{0,15})?$",
            "",
        ),
        _REGION,
        Parameter(
            "ContainerLogGroup",
            "CloudWatch Logs group for the containers' default log driver (empty: json-file).",
            r"^(/swarmkeeper/[a-z][a-z0-9-]{0,30}/containers)?$",
            "",
        ),
        Parameter(
            "EcrRegistry",
            "The account's ECR registry, pulled from with the instance role (empty: none).",
            _ECR_REGISTRY_PATTERN,
            "",
        ),
    ),
    "verify-node": (_NODE_ID, _ROLE, _AZ, _INSTANCE_TYPE, _LIFECYCLE, _TIMEOUT),
    "drain-node": (_NODE_ID, _TIMEOUT),
    "remove-node": (_NODE_ID, _PREFIX, _REGION),
    "leave-swarm": (),
    "rotate-tokens": (_PREFIX, _KMS_KEY, _REGION),
    "describe-swarm": (_PREFIX, _REGION),
    "agent-ready": (),
    "deploy-stack": (
        _STACK_NAME,
        Parameter("Bucket", "The stacks bucket.", r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
        Parameter(
            "Key", "The Compose file's key: stacks/<StackName>.yml.", rf"^stacks/{STACK_NAME_PATTERN}\.yml$"
        ),
        Parameter("VersionId", "The object version to deploy.", r"^[A-Za-z0-9._+/=-]{1,1024}$"),
        _PREFIX,
        _REGION,
    ),
    "remove-stack": (_STACK_NAME,),
    "refresh-registry-auth": (
        Parameter(
            "EcrRegistry",
            "The account's ECR registry whose services get a fresh credential (empty: none).",
            _ECR_REGISTRY_PATTERN,
            "",
        ),
    ),
}

ACTIONS: tuple[str, ...] = tuple(PARAMETERS)

# The last stdout line of each script: space-separated key=value pairs (never a token).
RESULT_FORMATS: dict[str, str] = {
    "bootstrap-node": "node-id=<id> role=<manager|worker> cluster-id=<id>",
    "verify-node": "node-id=<id> state=ready role=<manager|worker>",
    "drain-node": "node-id=<id> tasks-remaining=<n> [missing=true when the swarm no longer knows the node]",
    "remove-node": "node-id=<id> removed=true",
    "leave-swarm": "left=true",
    "rotate-tokens": "rotated=worker,manager",
    "agent-ready": "agent=ready",
    "describe-swarm": "nodes=<count> (after one line per node: "
    "<id> <role> <state> <availability> <leader|reachable|unreachable|-> <ip> <hostname>, "
    "each field percent-encoded as Go's urlquery does, `-` when empty)",
    "deploy-stack": "stack=<name> version=<object version> services=<n> secrets=<n> "
    "(stack=<name> refused=true when the input is wrong)",
    "remove-stack": "stack=<name> removed=true",
    "refresh-registry-auth": "refreshed=<n> skipped=<n> leader=<true|false>",
}


def script_path(action: str) -> Path:
    return DOCUMENTS_DIR / f"{action}.sh"


def document_name(cluster_name: str, action: str) -> str:
    return f"swarmkeeper-{cluster_name}-{action}"


INCLUDE_MARKER = "# @include "
_INCLUDE_LINE = re.compile(r"# @include (_[a-z0-9-]+\.sh)")
_INCLUDE_FIRST_LINE = "# shellcheck shell=sh"


def include_paths() -> list[Path]:
    """The include files (``_<name>.sh``): shell shared by several documents, never a document."""
    return sorted(DOCUMENTS_DIR.glob("_*.sh"))


def _include_lines(line: str, where: str) -> list[str]:
    match = _INCLUDE_LINE.fullmatch(line)
    if match is None:
        raise ValueError(f"{where}: {line!r} is not `{INCLUDE_MARKER}_<name>.sh`")
    path = DOCUMENTS_DIR / match[1]
    if not path.is_file():
        raise ValueError(f"{where}: {path.name} does not exist")
    first, *rest = path.read_text().splitlines()
    if first != _INCLUDE_FIRST_LINE:
        raise ValueError(f"{path.name}: the first line must be {_INCLUDE_FIRST_LINE!r}")
    if any(other.startswith(INCLUDE_MARKER) for other in rest):
        raise ValueError(f"{path.name}: an include file cannot include another")
    return rest


def script_lines(action: str) -> list[str]:
    """The action's script as its document carries it: every ``# @include _<name>.sh`` line replaced
    by that include file's lines after its first."""
    lines: list[str] = []
    for line in script_path(action).read_text().splitlines():
        if line.startswith(INCLUDE_MARKER):
            lines.extend(_include_lines(line, f"{action}.sh"))
        else:
            lines.append(line)
    return lines


def run_command_lines(action: str) -> list[str]:
    """The document's aws:runShellScript lines: parameter exports, then the script (includes in place)."""
    exports = [f"export {p.env_name}='{{{{ {p.name} }}}}'" for p in PARAMETERS[action]]
    return [*exports, *script_lines(action)]


def render_commands(action: str, values: dict[str, str]) -> str:
    """The shell the SSM agent runs for ``action`` with these parameter values: defaults applied, each
    value checked against its allowedPattern, ``{{ Name }}`` substituted as the agent does."""
    params = {p.name: p for p in PARAMETERS[action]}
    if unknown := set(values) - set(params):
        raise ValueError(f"{action}: unknown parameters {sorted(unknown)}")
    resolved: dict[str, str] = {}
    for name, p in params.items():
        value = values.get(name, p.default)
        if value is None:
            raise ValueError(f"{action}: parameter {name} is required")
        if not re.fullmatch(p.allowed_pattern, value):
            raise ValueError(f"{action}: {name}={value!r} does not match {p.allowed_pattern}")
        resolved[name] = value
    text = "\n".join(run_command_lines(action)) + "\n"
    return re.sub(r"\{\{\s*([A-Za-z0-9]+)\s*\}\}", lambda m: resolved.get(m[1], m[0]), text)


def parse_result(stdout: str) -> dict[str, str]:
    """The key=value pairs of a script's last non-empty stdout line."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return {}
    return dict(item.split("=", 1) for item in lines[-1].split() if "=" in item)


def document_content(action: str) -> dict:
    """SSM Command document (schemaVersion 2.2) for one action."""
    parameters = {}
    for p in PARAMETERS[action]:
        spec = {"type": "String", "description": p.description, "allowedPattern": p.allowed_pattern}
        if p.default is not None:
            spec["default"] = p.default
        parameters[p.name] = spec
    return {
        "schemaVersion": "2.2",
        "description": f"swarmkeeper: {action}",
        "parameters": parameters,
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": action.replace("-", ""),
                "inputs": {"runCommand": run_command_lines(action), "timeoutSeconds": "900"},
            }
        ],
    }
