"""SQS step queue: delayed re-deliveries instead of sleeping in a Lambda."""

from __future__ import annotations

from typing import Any

from swarmkeeper.domain.join_types import JoinStepDue
from swarmkeeper.domain.leave_types import LeaveStepDue
from swarmkeeper.inputs import step_message

MAX_DELAY_SECONDS = 900  # SQS DelaySeconds limit


class StepQueue:
    def __init__(self, sqs: Any, queue_url: str):
        self._sqs = sqs
        self._url = queue_url

    def schedule(self, step: JoinStepDue | LeaveStepDue, delay_seconds: int) -> None:
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=step_message(step),
            DelaySeconds=max(0, min(MAX_DELAY_SECONDS, int(delay_seconds))),
        )
