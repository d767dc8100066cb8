"""Cluster settings: the `cdk.json` context (overridable with `cdk -c key=value`) parsed once.

`ClusterSettings.from_context(app.node)` reads every key, validates types and ranges, and raises one
`SettingsError` that names each bad key and its value. Values given with `-c` arrive as strings
("3", "true", "subnet-a,subnet-b"), so numbers, booleans and lists are accepted in string form too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
MANAGER_COUNTS = (1, 3, 5, 7)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_CLUSTER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
NEW_VPC_CIDR = "10.42.0.0/16"  # the VPC a stack creates when no vpcId is given
LOAD_BALANCER_SCHEMES = ("internet-facing", "internal")
_DOCKER_VERSION = re.compile(r"^[0-9][0-9.]{0,15}$")  # the bootstrap-node document's allowedPattern


class SettingsError(ValueError):
    """One or more context values are wrong; the message names each key and value."""


class _Node(Protocol):
    def try_get_context(self, key: str) -> Any: ...


@dataclass(frozen=True)
class ClusterSettings:
    cluster_name: str = "demo"
    manager_count: int = 3
    worker_min_size: int = 1
    worker_desired_capacity: int = 2
    worker_max_size: int = 10
    manager_instance_type: str = "t4g.small"
    worker_instance_type: str = "t4g.small"
    worker_spot: bool = False
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    ami_id: str | None = None
    docker_version: str = "25.0"
    token_rotation_days: int = 30
    reconcile_minutes: int = 5
    lambda_architecture: str = "arm64"
    log_retention_days: int = 30
    log_level: str = "INFO"
    agent_wait_seconds: int = 300
    drain_timeout_seconds: int = 300
    nat_gateways: int = 1
    rebalance_drain_workers: bool = True
    down_grace_seconds: int = 600
    stack_version_days: int = 30
    container_logs: bool = True
    load_balancer_scheme: str = "internet-facing"
    load_balancer_subnet_ids: tuple[str, ...] = ()
    load_balancer_client_cidr: str | None = None
    load_balancer_deregistration_seconds: int = 30

    # ---- derived values -------------------------------------------------------------------------
    @property
    def uses_existing_vpc(self) -> bool:
        return self.vpc_id is not None

    @property
    def internet_facing(self) -> bool:
        return self.load_balancer_scheme == "internet-facing"

    @property
    def client_cidr(self) -> str:
        """Where the load balancer's clients may connect from (its listener ports only)."""
        if self.load_balancer_client_cidr is not None:
            return self.load_balancer_client_cidr
        return "0.0.0.0/0" if self.internet_facing else NEW_VPC_CIDR

    @property
    def log_retention(self) -> logs.RetentionDays:
        # RetentionDays lists its members in the order of LOG_RETENTION_DAYS (then INFINITE).
        return list(logs.RetentionDays)[LOG_RETENTION_DAYS.index(self.log_retention_days)]

    @property
    def launch_heartbeat_seconds(self) -> int:
        """Launch hook: the longest join the control plane allows before it abandons by itself.

        A manager may wait for the SSM agent (agentWaitSeconds), then behind a crashed holder's
        swarm-init lock (1080 s, see swarmkeeper.domain.join.JoinPolicy), then run bootstrap-node
        (900 s execution timeout) and verify-node (~120 s): the hook must outlast all of that, so
        the control plane, not the hook's default result, decides every join.
        """
        return min(7200, self.agent_wait_seconds + 1080 + 900 + 120)

    @property
    def terminate_heartbeat_seconds(self) -> int:
        """Terminate hook: drain the node, demote a manager, remove it (at least 15 minutes)."""
        return min(7200, max(900, self.drain_timeout_seconds + 300))

    # ---- parsing ---------------------------------------------------------------------------------
    @classmethod
    def from_context(cls, node: _Node) -> ClusterSettings:
        """Read every key from the construct tree's context (cdk.json + `-c`)."""
        raw = {key: node.try_get_context(key) for key in CONTEXT_KEYS}
        return cls.from_mapping({k: v for k, v in raw.items() if v is not None})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ClusterSettings:
        """Parse context values keyed by their cdk.json names; missing keys take the defaults."""
        errors: list[str] = []
        parsed: dict[str, Any] = {}
        defaults = {f.name: f.default for f in fields(cls)}
        for key, (attr, parse) in CONTEXT_KEYS.items():
            if key not in values or values[key] is None or values[key] == "":
                parsed[attr] = defaults[attr]
                continue
            try:
                parsed[attr] = parse(values[key])
            except ValueError as exc:
                errors.append(f"cdk.json context '{key}' = {values[key]!r}: {exc}")
        if not errors:
            errors.extend(_cross_checks(parsed))
        if errors:
            raise SettingsError("invalid swarmkeeper settings:\n  - " + "\n  - ".join(errors))
        return cls(**parsed)


# ---- value parsers (raise ValueError with a human explanation) ------------------------------------
def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        return int(value.strip())
    raise ValueError(f"expected a whole number, got {type(value).__name__} {value!r}")


def _int_in(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        number = _integer(value)
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return parse


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError("expected true or false")


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string ({what}), got {type(value).__name__}")
        if not pattern.fullmatch(value):
            raise ValueError(f"expected {what} (pattern {pattern.pattern})")
        return value

    return parse


def _cluster_name(value: Any) -> str:
    return _matching(_CLUSTER_NAME, "a lowercase name: a letter, then up to 30 letters, digits or '-'")(value)


def _manager_count(value: Any) -> int:
    count = _integer(value)
    if count in MANAGER_COUNTS:
        return count
    if count > 0 and count % 2 == 0:
        raise ValueError(
            f"an even number of managers does not help: Swarm's raft quorum needs a majority "
            f"({count // 2 + 1} of {count}), so {count} managers tolerate {_failures((count - 1) // 2)}, "
            f"no more than {count - 1} managers do. Use one of {', '.join(map(str, MANAGER_COUNTS))}"
        )
    raise ValueError(f"must be one of {', '.join(map(str, MANAGER_COUNTS))} (an odd raft quorum, at most 7)")


def _failures(n: int) -> str:
    return f"{n} failure" if n == 1 else f"{n} failures"


def _subnet_ids(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError("expected a non-empty list of subnet ids (or a comma-separated string)")
    ids = tuple(str(item).strip() if isinstance(item, str) else item for item in items)
    for subnet in ids:
        if not isinstance(subnet, str) or not _SUBNET_ID.fullmatch(subnet):
            raise ValueError(f"{subnet!r} is not a subnet id (subnet-0123abcd...)")
    if len(set(ids)) != len(ids):
        raise ValueError("subnet ids repeat")
    return ids


def _ipv4_cidr(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected an IPv4 CIDR block such as 10.0.0.0/16, got {type(value).__name__}")
    try:
        network = ipaddress.IPv4Network(value.strip(), strict=True)
    except ValueError as err:
        raise ValueError(f"expected an IPv4 CIDR block such as 10.0.0.0/16 ({err})") from None
    return str(network)


def _one_of(*choices: Any) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if isinstance(value, str) and all(isinstance(c, str) for c in choices):
            candidate: Any = value
        else:
            candidate = _integer(value)
        if candidate not in choices:
            raise ValueError(f"must be one of {', '.join(map(str, choices))}")
        return candidate

    return parse


def _log_level(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return value.upper()


# cdk.json key -> (ClusterSettings attribute, parser)
CONTEXT_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "clusterName": ("cluster_name", _cluster_name),
    "managerCount": ("manager_count", _manager_count),
    "workerMinSize": ("worker_min_size", _int_in(0, 500)),
    "workerDesiredCapacity": ("worker_desired_capacity", _int_in(0, 500)),
    "workerMaxSize": ("worker_max_size", _int_in(1, 500)),
    "managerInstanceType": ("manager_instance_type", _matching(_INSTANCE_TYPE, "an EC2 instance type")),
    "workerInstanceType": ("worker_instance_type", _matching(_INSTANCE_TYPE, "an EC2 instance type")),
    "workerSpot": ("worker_spot", _boolean),
    "vpcId": ("vpc_id", _matching(_VPC_ID, "a VPC id (vpc-0123abcd...)")),
    "subnetIds": ("subnet_ids", _subnet_ids),
    "amiId": ("ami_id", _matching(_AMI_ID, "an AMI id (ami-0123abcd...)")),
    "dockerVersion": ("docker_version", _matching(_DOCKER_VERSION, "a Docker version such as 25.0")),
    "tokenRotationDays": ("token_rotation_days", _int_in(1, 365)),
    "reconcileMinutes": ("reconcile_minutes", _int_in(1, 1440)),
    "lambdaArchitecture": ("lambda_architecture", _one_of("arm64", "x86_64")),
    "logRetentionDays": ("log_retention_days", _one_of(*LOG_RETENTION_DAYS)),
    "logLevel": ("log_level", _log_level),
    "agentWaitSeconds": ("agent_wait_seconds", _int_in(30, 3600)),
    "drainTimeoutSeconds": ("drain_timeout_seconds", _int_in(0, 3600)),
    "natGateways": ("nat_gateways", _int_in(1, 3)),
    "rebalanceDrainWorkers": ("rebalance_drain_workers", _boolean),
    "downGraceSeconds": ("down_grace_seconds", _int_in(60, 86400)),
    "stackVersionDays": ("stack_version_days", _int_in(1, 3650)),
    "containerLogs": ("container_logs", _boolean),
    "loadBalancerScheme": ("load_balancer_scheme", _one_of(*LOAD_BALANCER_SCHEMES)),
    "loadBalancerSubnetIds": ("load_balancer_subnet_ids", _subnet_ids),
    "loadBalancerClientCidr": ("load_balancer_client_cidr", _ipv4_cidr),
    "loadBalancerDeregistrationSeconds": ("load_balancer_deregistration_seconds", _int_in(0, 3600)),
}


def _cross_checks(s: Mapping[str, Any]) -> list[str]:
    errors = []
    lo, want, hi = s["worker_min_size"], s["worker_desired_capacity"], s["worker_max_size"]
    if not lo <= want <= hi:
        errors.append(
            f"cdk.json context 'workerMinSize' = {lo}, 'workerDesiredCapacity' = {want}, "
            f"'workerMaxSize' = {hi}: need workerMinSize <= workerDesiredCapacity <= workerMaxSize"
        )
    if (s["vpc_id"] is None) != (not s["subnet_ids"]):
        errors.append(
            f"cdk.json context 'vpcId' = {s['vpc_id']!r}, 'subnetIds' = {list(s['subnet_ids'])!r}: "
            "give both (use an existing VPC and its private subnets) or neither (create a new VPC)"
        )
    errors.extend(_load_balancer_checks(s))
    if s["ami_id"] is not None and _arch(s["manager_instance_type"]) != _arch(s["worker_instance_type"]):
        errors.append(
            f"cdk.json context 'amiId' = {s['ami_id']!r}: one AMI cannot serve both "
            f"'managerInstanceType' = {s['manager_instance_type']!r} and "
            f"'workerInstanceType' = {s['worker_instance_type']!r} (different CPU architectures)"
        )
    return errors


def _load_balancer_checks(s: Mapping[str, Any]) -> list[str]:
    errors = []
    existing, internet_facing = s["vpc_id"] is not None, s["load_balancer_scheme"] == "internet-facing"
    lb_subnets = list(s["load_balancer_subnet_ids"])
    if lb_subnets and not existing:
        errors.append(
            f"cdk.json context 'loadBalancerSubnetIds' = {lb_subnets!r}: only with 'vpcId' (a new VPC "
            "places the load balancer in its own public or private subnets)"
        )
    if existing and internet_facing and not lb_subnets:
        errors.append(
            f"cdk.json context 'vpcId' = {s['vpc_id']!r} with 'loadBalancerScheme' = 'internet-facing': "
            "give 'loadBalancerSubnetIds' (the VPC's public subnets), or use 'internal'"
        )
    if existing and not internet_facing and lb_subnets:
        errors.append(
            f"cdk.json context 'loadBalancerSubnetIds' = {lb_subnets!r}: an internal load balancer sits in "
            "the nodes' subnets ('subnetIds')"
        )
    if existing and not internet_facing and s["load_balancer_client_cidr"] is None:
        errors.append(
            f"cdk.json context 'vpcId' = {s['vpc_id']!r} with 'loadBalancerScheme' = 'internal': give "
            "'loadBalancerClientCidr' (the VPC's CIDR block or the clients' network; unknown offline)"
        )
    return errors


def _arch(instance_type: str) -> ec2.InstanceArchitecture:
    return ec2.InstanceType(instance_type).architecture
