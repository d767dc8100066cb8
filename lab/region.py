"""The embedded AWS region: moto's ThreadedMotoServer inside the lab process.

Two listeners share the same in-process backends: one on loopback for the Lambda workers and the
lab itself, one on the lab bridge's own address for the instances (never 0.0.0.0). Because the
servers run in this process, the lab reaches moto's backends directly to fill in what moto lacks.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from typing import Any

import boto3
from botocore.config import Config

ACCOUNT = "123456789012"  # moto's DEFAULT_ACCOUNT_ID
REGION = "eu-west-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIALABFAKEFAKEFAKE0",
    "AWS_SECRET_ACCESS_KEY": "lab/fake/secret/not/a/real/key/000000000",
}

# Everything AWS-related in the lab's own environment is replaced: the lab never talks to real AWS.
_AWS_ENV_PREFIXES = ("AWS_",)


def scrub_aws_environment(region: str = REGION) -> None:
    """Replace any AWS configuration of this process with fake credentials (no real endpoint, ever)."""
    for key in list(os.environ):
        if key.startswith(_AWS_ENV_PREFIXES):
            del os.environ[key]
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def get_backend(service: str, region: str = REGION, account: str = ACCOUNT) -> Any:
    from moto.backends import get_backend as _get

    return _get(service)[account][region]


class Region:
    """``with Region(bridge_ip) as region:`` starts the listeners; ``region.client("ssm")`` talks to them."""

    def __init__(
        self, instance_address: str | None, region: str = REGION, account: str = ACCOUNT, scrub: bool = True
    ):
        self.scrub = scrub
        self.name = region
        self.account = account
        self.instance_address = instance_address
        self._servers: list[Any] = []
        self.local_url = ""
        self.instance_url = ""

    def start(self) -> Region:
        from moto.server import ThreadedMotoServer

        if self.scrub:
            scrub_aws_environment(self.name)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        local = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        local.start()
        self._servers.append(local)
        host, port = local.get_host_and_port()
        self.local_url = f"http://{host}:{port}"
        # moto's backends live as long as the process: every lab starts from an empty region.
        urllib.request.urlopen(
            urllib.request.Request(f"{self.local_url}/moto-api/reset", method="POST"), timeout=30
        )
        if self.instance_address:
            remote = ThreadedMotoServer(ip_address=self.instance_address, port=0, verbose=False)
            remote.start()
            self._servers.append(remote)
            host, port = remote.get_host_and_port()
            self.instance_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        while self._servers:
            server = self._servers.pop()
            try:
                server.stop()
            except Exception:
                logging.getLogger(__name__).exception("stopping moto server")

    def __enter__(self) -> Region:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def backend(self, service: str) -> Any:
        return get_backend(service, self.name, self.account)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=self.name,
            endpoint_url=self.local_url,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(
                retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30
            ),
        )

    def environment(self, url: str) -> dict[str, str]:
        """What a process needs to reach this region (an instance role's or a Lambda's stand-in)."""
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": url,
            "AWS_DEFAULT_REGION": self.name,
            "AWS_REGION": self.name,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
