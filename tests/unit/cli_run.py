"""Running the ``swarmkeeper`` CLI in a unit test: against the moto region a ``World`` set up (cluster
``demo``), with the world's clock or a real one, its output captured, and the stack's timeline (the
bus's rule writing every swarmkeeper event to ``/aws/events/swarmkeeper-demo``) in place."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError
from join_world import BUS, CLUSTER, REGION
from moto.core import DEFAULT_ACCOUNT_ID

from swarmkeeper_cli.main import run

TIMELINE = f"/aws/events/swarmkeeper-{CLUSTER}"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def cli(
    *args: str,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
    cluster: str | None = CLUSTER,
) -> Result:
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = [*(["--cluster", cluster] if cluster else []), *args]
    kwargs: dict[str, Any] = {"stdout": stdout, "stderr": stderr}
    if clock is not None:
        kwargs["clock"] = clock
    kwargs["sleep"] = sleep or _no_sleep
    code = run(argv, **kwargs)
    return Result(code, stdout.getvalue(), stderr.getvalue())


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"the CLI waited {seconds}s where the test expected no wait")


def add_timeline() -> None:
    """The stack's timeline: a log group and the bus's rule with that group as its target."""
    logs, events = boto3.client("logs", region_name=REGION), boto3.client("events", region_name=REGION)
    logs.create_log_group(logGroupName=TIMELINE)
    events.put_rule(
        Name=f"swarmkeeper-{CLUSTER}-timeline",
        EventBusName=BUS,
        EventPattern=json.dumps({"source": ["swarmkeeper"]}),
    )
    arn = f"arn:aws:logs:{REGION}:{DEFAULT_ACCOUNT_ID}:log-group:{TIMELINE}"
    events.put_targets(
        Rule=f"swarmkeeper-{CLUSTER}-timeline", EventBusName=BUS, Targets=[{"Id": "timeline", "Arn": arn}]
    )


def publish(detail_type: str, **detail: str) -> None:
    """An event on the bus as the control plane puts it."""
    entry = {
        "cluster": CLUSTER,
        "instanceId": "i-0123456789abcdef0",
        "nodeId": "q0a7bxlc3kq0ghnk8k7j1m2zs",
        "role": "worker",
        "reason": "published by a test",
        "correlationId": "0e1c6f4a-1a47-4d8b-9a3d-5c5f1f8e2b7d",
        **detail,
    }  # every field the control plane puts in a detail (schemas/)
    boto3.client("events", region_name=REGION).put_events(
        Entries=[
            {
                "Source": "swarmkeeper",
                "DetailType": detail_type,
                "Detail": json.dumps(entry),
                "EventBusName": BUS,
            }
        ]
    )


class ControlPlaneFunctions:
    """Lambda as the CLI sees it, in a unit test: moto cannot run the functions, so an Invoke of
    ``swarmkeeper-demo-<name>`` runs the real handler in this process (``world.invoke``), with the
    answer Lambda gives (a JSON payload; 202 and no payload for an asynchronous invocation). Every
    other call goes to moto."""

    def __init__(self, world: Any, real: Any):
        self.world = world
        self.real = real
        self.invoked: list[tuple[str, str, Any]] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        handler = FunctionName.removeprefix(f"swarmkeeper-{CLUSTER}-").replace("-", "_")
        if handler not in self.world.handlers:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ResourceNotFoundException",
                        "Message": f"Function not found: {FunctionName}",
                    }
                },
                "Invoke",
            )
        event = json.loads(Payload)
        self.invoked.append((handler, InvocationType, event))
        answer = self.world.invoke(handler, event)
        if InvocationType == "Event":
            return {"StatusCode": 202}
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class GracefulTermination:
    """Auto Scaling as the CLI's drain sees it: TerminateInstanceInAutoScalingGroup holds the
    instance in Terminating:Wait and sends its terminate lifecycle action (moto would terminate it at
    once, with no hook)."""

    def __init__(self, world: Any, real: Any):
        self.world = world
        self.real = real
        self.terminated: list[dict[str, Any]] = []

    def terminate_instance_in_auto_scaling_group(self, **params: Any) -> dict[str, Any]:
        self.terminated.append(params)
        self.world.terminating(params["InstanceId"])
        return {"Activity": {"StatusCode": "InProgress"}}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def fake_control_plane(world: Any, monkeypatch: Any) -> dict[str, Any]:
    """Route the CLI's Lambda and Auto Scaling clients through the stand-ins above."""
    from swarmkeeper_cli import aws

    made: dict[str, Any] = {}
    real_client = aws.client

    def client(session: Any, service: str) -> Any:
        real = real_client(session, service)
        if service == "lambda":
            made[service] = ControlPlaneFunctions(world, real)
        elif service == "autoscaling":
            made[service] = GracefulTermination(world, real)
        else:
            return real
        return made[service]

    monkeypatch.setattr(aws, "client", client)
    return made
