"""The embedded AWS a documents-tier test gives its lab nodes: a moto server on the lab bridge's own
address (delivered locally, never forwarded), the environment the SSM agent would give a script, and
a bounded wait."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from lab.nodes import LabNetwork

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
T = TypeVar("T")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_on_bridge(net: LabNetwork) -> Iterator[str]:
    """A moto server on the bridge address of ``net`` (already up) while the block runs: its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=net.gateway_ip, port=free_port(net.gateway_ip), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def clients(endpoint: str, region: str, *services: str) -> list[Any]:
    import boto3

    return [boto3.client(s, endpoint_url=endpoint, region_name=region, **CREDENTIALS) for s in services]


def agent_environment(endpoint: str, region: str, **extra: str) -> dict[str, str]:
    """What the SSM agent gives a script here: the venv's AWS CLI first, the instance role's stand-in."""
    return {
        "PATH": f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


def wait_for(read: Callable[[], T], expected: T, timeout: float = 60) -> T:
    """``read()`` until it returns ``expected``; AssertionError with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (value := read()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout}s: {value!r}, not {expected!r}")
        time.sleep(0.5)
    return value
