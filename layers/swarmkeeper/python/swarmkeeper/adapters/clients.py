"""boto3 clients with adaptive retries (throttling from SSM, Auto Scaling, EC2 is retried with backoff
and client-side rate limiting; what still fails raises, and Lambda's retries take over)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

MAX_ATTEMPTS = 8


def client_config(max_attempts: int = MAX_ATTEMPTS) -> Config:
    return Config(
        retries={"mode": "adaptive", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=20,
    )


class AwsClients:
    """Lazily built clients, one per service, sharing one session and config."""

    def __init__(self, session: boto3.session.Session | None = None, config: Config | None = None):
        self.session = session or boto3.session.Session()
        self.config = config or client_config()

    def _client(self, name: str) -> Any:
        return self.session.client(name, config=self.config)

    @cached_property
    def ec2(self) -> Any:
        return self._client("ec2")

    @cached_property
    def autoscaling(self) -> Any:
        return self._client("autoscaling")

    @cached_property
    def ssm(self) -> Any:
        return self._client("ssm")

    @cached_property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @cached_property
    def sqs(self) -> Any:
        return self._client("sqs")

    @cached_property
    def events(self) -> Any:
        return self._client("events")

    @cached_property
    def s3(self) -> Any:
        return self._client("s3")

    @cached_property
    def elbv2(self) -> Any:
        return self._client("elbv2")
