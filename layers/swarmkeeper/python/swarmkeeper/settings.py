"""Every function's environment, parsed and validated once at cold start.

The variables are the README contract's list. A missing or malformed one fails the import (Lambda
init error) with a message that names the variable, instead of failing later in the middle of a join.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from swarmkeeper.domain.frozen import frozen


class SettingsError(ValueError):
    """An environment variable of the contract is missing or malformed."""


_CLUSTER = r"[a-z][a-z0-9-]{0,30}"
_BUCKET = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
_ECR_REGISTRY = r"[0-9]{12}\.dkr\.ecr\.[a-z]{2}(-[a-z]+)+-[0-9]\.amazonaws\.com(\.cn)?"
_LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})


@frozen
class LoadBalancerSettings:
    """The cluster's load balancer (LOAD_BALANCER_ARN and the variables that go with it)."""

    load_balancer_arn: str
    security_group: str  # the load balancer's own group: clients in, on the listener ports
    target_security_group: str  # on every worker: the load balancer in, on the published ports
    client_cidr: str
    target_group_prefix: str
    vpc_id: str
    deregistration_delay_seconds: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LoadBalancerSettings | None:
        if not env.get("LOAD_BALANCER_ARN", "").strip():
            return None
        delay = _required(env, "DEREGISTRATION_DELAY_SECONDS").strip()
        if not delay.isdigit() or int(delay) > 3600:
            raise SettingsError(
                f"environment variable DEREGISTRATION_DELAY_SECONDS={delay!r} must be 0-3600 seconds"
            )
        return cls(
            load_balancer_arn=_match(env, "LOAD_BALANCER_ARN", r"arn:aws[a-z-]*:elasticloadbalancing:\S+"),
            security_group=_match(env, "LOAD_BALANCER_SECURITY_GROUP", r"sg-[0-9a-f]{8,17}"),
            target_security_group=_match(env, "TARGET_SECURITY_GROUP", r"sg-[0-9a-f]{8,17}"),
            client_cidr=_match(env, "LOAD_BALANCER_CLIENT_CIDR", r"[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}"),
            target_group_prefix=_match(env, "TARGET_GROUP_PREFIX", r"sk-[0-9a-f]{8}-"),
            vpc_id=_match(env, "VPC_ID", r"vpc-[0-9a-f]{8,17}"),
            deregistration_delay_seconds=int(delay),
        )


@dataclass(frozen=True)
class RuntimeSettings:
    cluster_name: str
    manager_group_name: str
    worker_group_name: str
    launch_hook_name: str
    terminate_hook_name: str
    state_table_name: str
    event_bus_name: str
    parameter_prefix: str
    kms_key_id: str
    document_prefix: str
    step_queue_url: str
    command_output_bucket: str
    stacks_bucket: str
    docker_version: str
    agent_wait_seconds: int
    drain_timeout_seconds: int
    service_name: str
    metrics_namespace: str
    log_level: str
    region: str
    rebalance_drain_workers: bool = True  # REBALANCE_DRAIN_WORKERS, optional (default true)
    # RECONCILE_DOWN_GRACE_SECONDS, optional: how long a node stays Down on a running instance before
    # reconcile marks the instance Unhealthy (default 600; the lab sets a few seconds).
    reconcile_down_grace_seconds: int = 600
    # LOAD_BALANCER_ARN and the rest (README contract); None without it: no listeners follow the swarm.
    load_balancer: LoadBalancerSettings | None = None
    # CONTAINER_LOG_GROUP, ECR_REGISTRY, optional: bootstrap-node's log group for containers (empty:
    # they log on the node) and the account's ECR registry (empty: no credential helper).
    container_log_group: str = ""
    ecr_registry: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RuntimeSettings:
        env = os.environ if environ is None else environ
        cluster = _match(env, "CLUSTER_NAME", _CLUSTER)
        return cls(
            cluster_name=cluster,
            manager_group_name=_required(env, "MANAGER_GROUP_NAME"),
            worker_group_name=_required(env, "WORKER_GROUP_NAME"),
            launch_hook_name=_required(env, "LAUNCH_HOOK_NAME"),
            terminate_hook_name=_required(env, "TERMINATE_HOOK_NAME"),
            state_table_name=_required(env, "STATE_TABLE_NAME"),
            event_bus_name=_required(env, "EVENT_BUS_NAME"),
            parameter_prefix=_match(env, "PARAMETER_PREFIX", rf"/swarmkeeper/{_CLUSTER}"),
            kms_key_id=_match(env, "KMS_KEY_ID", r"[A-Za-z0-9:/_-]{1,2048}"),
            document_prefix=_match(env, "DOCUMENT_PREFIX", r"[A-Za-z0-9_.-]{1,100}-"),
            step_queue_url=_match(env, "STEP_QUEUE_URL", r"https?://\S+"),
            command_output_bucket=_required(env, "COMMAND_OUTPUT_BUCKET"),
            stacks_bucket=_match(env, "STACKS_BUCKET", _BUCKET),
            docker_version=_optional_match(env, "DOCKER_VERSION", r"[0-9][0-9.]{0,15}"),
            agent_wait_seconds=_seconds(env, "AGENT_WAIT_SECONDS"),
            drain_timeout_seconds=_seconds(env, "DRAIN_TIMEOUT_SECONDS"),
            service_name=_required(env, "POWERTOOLS_SERVICE_NAME"),
            metrics_namespace=_required(env, "POWERTOOLS_METRICS_NAMESPACE"),
            log_level=_choice(env, "LOG_LEVEL", _LOG_LEVELS),
            region=_region(env),
            rebalance_drain_workers=_flag(env, "REBALANCE_DRAIN_WORKERS", default=True),
            reconcile_down_grace_seconds=_seconds(env, "RECONCILE_DOWN_GRACE_SECONDS", default=600),
            load_balancer=LoadBalancerSettings.from_env(env),
            container_log_group=_optional(env, "CONTAINER_LOG_GROUP", rf"/swarmkeeper/{_CLUSTER}/containers"),
            ecr_registry=_optional(env, "ECR_REGISTRY", _ECR_REGISTRY),
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is required and is missing or empty")
    return value


def _match(env: Mapping[str, str], name: str, pattern: str) -> str:
    value = _required(env, name)
    if not re.fullmatch(pattern, value):
        raise SettingsError(f"environment variable {name}={value!r} does not match {pattern}")
    return value


def _optional_match(env: Mapping[str, str], name: str, pattern: str) -> str:
    """Set but possibly empty (empty: the script's default)."""
    if name not in env:
        raise SettingsError(f"environment variable {name} is required and is missing")
    return _optional(env, name, pattern)


def _optional(env: Mapping[str, str], name: str, pattern: str) -> str:
    """Missing or empty: "" (off)."""
    value = env.get(name, "").strip()
    if value and not re.fullmatch(pattern, value):
        raise SettingsError(f"environment variable {name}={value!r} does not match {pattern}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    if default is not None and not env.get(name, "").strip():
        return default
    value = _required(env, name).strip()
    if not value.isdigit() or not 0 < int(value) <= 86_400:
        raise SettingsError(
            f"environment variable {name}={value!r} must be a whole number of seconds, 1-86400"
        )
    return int(value)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value not in ("true", "false"):
        raise SettingsError(f"environment variable {name}={value!r} must be true or false")
    return value == "true"


def _choice(env: Mapping[str, str], name: str, allowed: frozenset[str]) -> str:
    value = _required(env, name).upper()
    if value not in allowed:
        raise SettingsError(f"environment variable {name}={value!r} must be one of {sorted(allowed)}")
    return value


def _region(env: Mapping[str, str]) -> str:
    # Set by the Lambda runtime (AWS_REGION), not by the stack.
    value = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]", value):
        raise SettingsError(f"environment variable AWS_REGION={value!r} is missing or not a region name")
    return value
