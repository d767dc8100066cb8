"""The SSM Command documents swarmkeeper runs on instances.

Each action's shell lives next to this file as ``<action>.sh`` (POSIX sh, checked by shellcheck).
A document is that file behind a prelude that exports each document parameter as ``SK_<NAME>``
(``Role`` -> ``SK_ROLE``). Every parameter has an ``allowedPattern`` that admits no quote, space or
shell metacharacter, so the SSM agent's ``{{ Name }}`` substitution cannot inject shell.

Contract with the control plane (layers/) and the lab: the action names, the parameter names and
what each script prints on its last stdout line (see each script's header).
"""

from __future__ import annotations

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
_PREFIX = Parameter("ParameterPrefix", "Parameter Store path of the cluster.", r"^/swarmkeeper/[a-z][a-z0-9-]{0,30}$")
_KMS_KEY = Parameter("KmsKeyId", "KMS key for the join-token SecureStrings.", r"^[A-Za-z0-9:/_-]{1,2048}$")
_REGION = Parameter("Region", "AWS region of the cluster.", r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
_TIMEOUT = Parameter("TimeoutSeconds", "How long the script may wait.", r"^[0-9]{1,4}$", "60")

PARAMETERS: dict[str, tuple[Parameter, ...]] = {
    "bootstrap-node": (
        _ROLE,
        Parameter("Mode", "init: create the swarm; join: join the existing one.", r"^(init|join)$"),
        Parameter("AdvertiseAddress", "Private IPv4 address of the instance.", r"^([0-9]{1,3}\.){3}[0-9]{1,3}$"),
        _PREFIX,
        _KMS_KEY,
        Parameter("DockerVersion", "Docker package version to install when missing.", r"^[0-9][0-9.]{0,15}$"),
        _REGION,
    ),
    "verify-node": (_NODE_ID, _ROLE, _TIMEOUT),
    "drain-node": (_NODE_ID, _TIMEOUT),
    "remove-node": (_NODE_ID, _PREFIX, _REGION),
    "leave-swarm": (),
    "rotate-tokens": (_PREFIX, _KMS_KEY, _REGION),
    "describe-swarm": (_PREFIX, _REGION),
}

ACTIONS: tuple[str, ...] = tuple(PARAMETERS)


def script_path(action: str) -> Path:
    return DOCUMENTS_DIR / f"{action}.sh"


def document_name(cluster_name: str, action: str) -> str:
    return f"swarmkeeper-{cluster_name}-{action}"


def run_command_lines(action: str) -> list[str]:
    """The document's aws:runShellScript lines: parameter exports, then the script file."""
    exports = [f"export {p.env_name}='{{{{ {p.name} }}}}'" for p in PARAMETERS[action]]
    return [*exports, *script_path(action).read_text().splitlines()]


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
