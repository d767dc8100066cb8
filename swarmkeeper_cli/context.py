"""What every verb works with: the cluster's names, one AWS session and its clients, the state
table (through the layer's adapter and its typed items), the output, and a clock and a sleep that
tests replace."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3

from swarmkeeper.adapters.state import StateTable
from swarmkeeper.domain.names import ClusterNames
from swarmkeeper_cli import aws
from swarmkeeper_cli.output import Output


@dataclass
class Context:
    names: ClusterNames
    session: boto3.session.Session
    out: Output
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def region(self) -> str:
        return str(self.session.region_name)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = aws.client(self.session, service)
        return self._clients[service]

    @cached_property
    def state(self) -> StateTable:
        return StateTable(self.client("dynamodb"), self.names.state_table)
