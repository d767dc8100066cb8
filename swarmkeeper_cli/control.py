"""``reconcile`` and ``rotate-tokens``: the control plane's own functions invoked on demand (what
their schedules do), then followed in the state table and on the timeline until the pass or the
rotation ended."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from swarmkeeper.domain.quorum import RaftCounts
from swarmkeeper.domain.rotation import JOIN_TOKENS_ROTATED
from swarmkeeper.domain.view import ClusterView
from swarmkeeper_cli.context import Context
from swarmkeeper_cli.errors import CliError, Exit
from swarmkeeper_cli.output import iso
from swarmkeeper_cli.reading import live
from swarmkeeper_cli.timeline import EventFilter, read_events
from swarmkeeper_cli.waiting import Progress, wait_for

# Polls that find neither the lease nor its result before a pass or rotation counts as ended
# without one (the lease may be released a moment before the result is written).
SETTLE_POLLS = 3
T = TypeVar("T")


def invoke(
    ctx: Context, function: str, payload: dict[str, Any], asynchronous: bool = False
) -> dict[str, Any]:
    """Invoke the cluster's ``function``; its answer (``outcome``, ``reason``), or {} when asynchronous."""
    name = ctx.names.function(function)
    answer = ctx.client("lambda").invoke(
        FunctionName=name,
        InvocationType="Event" if asynchronous else "RequestResponse",
        Payload=json.dumps(payload).encode(),
    )
    body = answer["Payload"].read() if answer.get("Payload") is not None else b""
    if answer.get("FunctionError"):
        message = json.loads(body or b"{}").get("errorMessage", "") if body else ""
        raise CliError(f"{name} failed: {message or answer['FunctionError']}", Exit.FAILED)
    if asynchronous:
        return {}
    data = json.loads(body or b"{}")
    return data if isinstance(data, dict) else {}


def start(ctx: Context, function: str) -> tuple[str, dict[str, Any]]:
    """Invoke a scheduled function with an id of its own, which the functions take as the
    correlation id of what they publish."""
    correlation_id = str(uuid.uuid4())
    answer = invoke(ctx, function, {"id": correlation_id, "source": "swarmkeeper.cli"})
    ctx.out.progress(f"{ctx.names.function(function)}: {answer.get('outcome')}: {answer.get('reason')}")
    return correlation_id, answer


def until_ended(
    ctx: Context, result: Callable[[], T | None], in_flight: Callable[[], str | None]
) -> Callable[[], T | bool | None]:
    """A poll for ``wait_for``: the result once there; None (wait on) while the lease says what is
    in flight; False once neither was seen for SETTLE_POLLS polls in a row."""
    progress = Progress(ctx)
    empty = [0]

    def poll() -> T | bool | None:
        found = result()
        if found is not None:
            return found
        running = in_flight()
        if running:
            progress.say(running)
            empty[0] = 0
            return None
        empty[0] += 1
        return False if empty[0] > SETTLE_POLLS else None

    return poll


def reconcile(ctx: Context, wait: bool, timeout: float) -> Exit:
    before = ctx.state.get_view()
    correlation_id, answer = start(ctx, "reconcile")
    data: dict[str, Any] = {"correlationId": correlation_id, **answer}
    if answer.get("outcome") != "reconcile" and live(ctx.state.get_reconcile(), ctx.clock()) is None:
        ctx.out.result(f"reconcile: not started: {answer.get('reason')}", data)
        return Exit.FAILED
    if not wait:
        ctx.out.result(f"reconcile: {answer.get('outcome')}: {answer.get('reason')}", data)
        return Exit.OK

    def newer_view() -> ClusterView | None:
        view = ctx.state.get_view()
        return view if view and (before is None or view.taken_at > before.taken_at) else None

    def in_flight() -> str | None:
        running = live(ctx.state.get_reconcile(), ctx.clock())
        return f"describe-swarm on {running.target} ({running.why})" if running else None

    view = wait_for(ctx, "reconcile", until_ended(ctx, newer_view, in_flight), timeout)
    if not isinstance(view, ClusterView):
        ctx.out.result(
            "reconcile: the pass ended without a new swarm view (see the reconcile function's log)", data
        )
        return Exit.FAILED
    margin = RaftCounts.of(view.managers).margin
    data["view"] = {"takenAt": iso(view.taken_at), "nodes": view.nodes, "quorumMargin": margin}
    ctx.out.result(
        f"reconcile: pass done at {iso(view.taken_at)}: {view.nodes} nodes, quorum margin {margin}", data
    )
    return Exit.OK


def rotate_tokens(ctx: Context, wait: bool, timeout: float) -> Exit:
    start_ms = int(ctx.clock() * 1000)
    correlation_id, answer = start(ctx, "rotate_tokens")
    data: dict[str, Any] = {"correlationId": correlation_id, **answer}
    if answer.get("outcome") != "rotate" and live(ctx.state.get_rotation(), ctx.clock()) is None:
        ctx.out.result(f"rotate-tokens: not started: {answer.get('reason')}", data)
        return Exit.FAILED
    if not wait:
        ctx.out.result(f"rotate-tokens: {answer.get('outcome')}: {answer.get('reason')}", data)
        return Exit.OK
    # Ours, or the rotation already in flight that made ours wait: any rotation from now on.
    ours = answer.get("outcome") == "rotate"
    wanted = EventFilter(types=(JOIN_TOKENS_ROTATED,), correlation=correlation_id if ours else None)

    def rotated() -> dict[str, Any] | None:
        found = [event for _, _, event in read_events(ctx, wanted, start_ms)]
        return found[-1] if found else None

    def in_flight() -> str | None:
        running = live(ctx.state.get_rotation(), ctx.clock())
        return f"rotate-tokens on {running.target}" if running else None

    event = wait_for(ctx, "rotate-tokens", until_ended(ctx, rotated, in_flight), timeout)
    if not isinstance(event, dict):
        ctx.out.result(
            "rotate-tokens: the rotation ended without Join Tokens Rotated (see swarmkeeper events)", data
        )
        return Exit.FAILED
    data["event"] = event
    detail = event.get("detail", {})
    ctx.out.result(f"rotate-tokens: both join tokens rotated on {detail.get('instanceId')}", data)
    return Exit.OK
