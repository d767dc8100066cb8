"""The send step of the join and exit flows: save the op at its command's stage, send the command,
record the command's id.

The stage is saved before SendCommand because the command's status event may arrive before
SendCommand returns: that event then finds its stage with no id yet, and the decision takes it for
that stage's command. The id is recorded on the next version; if the status event was handled first
and moved the op on, there is nothing to record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, Self, TypeVar

from aws_lambda_powertools import Logger

logger = Logger(child=True)


class _CommandOp(Protocol):
    @property
    def version(self) -> int: ...

    def sent(self, command_id: str) -> Self: ...


OpT = TypeVar("OpT", bound=_CommandOp)


def save_send_record(
    sending: OpT,
    save: Callable[[OpT], bool],
    send: Callable[[], str],
    remember: Callable[[OpT | None], None],
) -> bool:
    """Save ``sending`` (the op at the command's stage, with no command id), ``send`` the command and
    record its id. ``save`` is the conditional write on the stored version; ``remember`` keeps the op
    as stored for the rest of the run (None: not known any more). False, and nothing sent, when the
    first save finds the op moved on elsewhere. An error of ``send`` (the SSM agent is not
    registered) leaves the op saved at the command's stage, with no id."""
    if not save(sending):
        return False
    remember(sending)
    command_id = send()
    recorded = sending.sent(command_id)
    if save(recorded):
        remember(recorded)
        return True
    remember(None)
    logger.info("command finished before its id was recorded", extra={"command_id": command_id})
    return True
