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
