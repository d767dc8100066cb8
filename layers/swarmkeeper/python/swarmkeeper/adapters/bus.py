"""EventBridge: publish what swarmkeeper did on the operators' bus."""

from __future__ import annotations

import json
from typing import Any

from swarmkeeper.domain.errors import SwarmkeeperError
from swarmkeeper.domain.kernel import BusEvent
from swarmkeeper.domain.outputs import redact

SOURCE = "swarmkeeper"


class PublishFailed(SwarmkeeperError):
    pass


class EventBus:
    def __init__(self, events: Any, bus_name: str):
        self._events = events
        self._bus = bus_name

    def publish(self, event: BusEvent) -> None:
        detail = {
            **dict(event.details),  # never over the fields every event has (a reason is redacted)
            "cluster": event.cluster,
            "instanceId": event.instance_id,
            "nodeId": event.node_id,
            "role": event.role,
            "reason": redact(event.reason),
            "correlationId": event.correlation_id,
        }
        response = self._events.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": event.detail_type,
                    "Detail": json.dumps(detail),
                    "EventBusName": self._bus,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise PublishFailed(f"{event.detail_type}: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}")
