"""``events``: the operators' timeline, as the stack's rule writes it to the log group
``/aws/events/swarmkeeper-C`` (each log event one EventBridge event, as JSON), filtered by instance,
node, detail-type and correlation id, and followed with ``--follow``."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from swarmkeeper_cli.context import Context
from swarmkeeper_cli.errors import CliError, Exit

FOLLOW_SECONDS = 2.0
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


@dataclass(frozen=True)
class EventFilter:
    instance: str | None = None
    node: str | None = None  # a node id or the start of one, as docker takes it
    types: tuple[str, ...] = ()  # detail-types, any case
    correlation: str | None = None

    def matches(self, event: dict[str, Any]) -> bool:
        detail = detail_of(event)
        if self.instance and detail.get("instanceId") != self.instance:
            return False
        if self.node and not str(detail.get("nodeId") or "").startswith(self.node):
            return False
        if self.types and str(event.get("detail-type", "")).lower() not in {t.lower() for t in self.types}:
            return False
        return not (self.correlation and detail.get("correlationId") != self.correlation)

    def pattern(self) -> str | None:
        """A CloudWatch Logs term that every matching event contains, so the service filters first
        (one term: the most selective given; terms match case-sensitively, so not a detail-type); the
        exact match is ``matches``."""
        term = self.correlation or self.instance or self.node
        return f'"{term}"' if term and '"' not in term else None


def since_epoch(text: str, now: float) -> float:
    """``30s`` / ``10m`` / ``2h`` / ``7d`` before now, or an ISO 8601 time."""
    m = _DURATION.fullmatch(text.strip())
    if m:
        return now - int(m.group(1)) * _UNIT[m.group(2)]
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise CliError(
            f"--since {text!r}: give a duration (30s, 10m, 2h, 7d) or an ISO 8601 time", Exit.USAGE
        ) from None


def read_events(
    ctx: Context, wanted: EventFilter, start_ms: int
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(timestamp ms, key, event) of each matching event from ``start_ms`` on, in order; the key is the
    EventBridge event's id (a log event id is unique only within its stream)."""
    request: dict[str, Any] = {"logGroupName": ctx.names.timeline_log_group, "startTime": start_ms}
    pattern = wanted.pattern()
    if pattern:
        request["filterPattern"] = pattern
    found = []
    for page in ctx.client("logs").get_paginator("filter_log_events").paginate(**request):
        for log_event in page.get("events", []):
            try:
                event = json.loads(log_event["message"])
            except (TypeError, ValueError):
                continue
            if isinstance(event, dict) and wanted.matches(event):
                key = str(event.get("id") or f"{log_event.get('logStreamName')}/{log_event.get('eventId')}")
                found.append((int(log_event["timestamp"]), key, event))
    yield from sorted(found, key=lambda item: (item[0], item[1]))


def events(ctx: Context, wanted: EventFilter, since: str, follow: bool, limit: int | None) -> Exit:
    start_ms = int(since_epoch(since, ctx.clock()) * 1000)
    batch = list(read_events(ctx, wanted, start_ms))
    if limit is not None:
        batch = batch[-limit:] if limit > 0 else []
    for _, _, event in batch:
        show(ctx, event)
    if not batch and not follow:
        ctx.out.progress("no events matched")
    if follow:
        seen = {key for _, key, _ in batch}
        last_ms = max((ts for ts, _, _ in batch), default=start_ms)
        ctx.out.progress("following the timeline (Ctrl-C stops)")
        with contextlib.suppress(KeyboardInterrupt):  # how a follow ends
            tail(ctx, wanted, last_ms, seen, lambda event: show(ctx, event))
    return Exit.OK


def tail(
    ctx: Context,
    wanted: EventFilter,
    last_ms: int,
    seen: set[str],
    each: Callable[[dict[str, Any]], None],
    until: Callable[[], bool] = lambda: False,
) -> None:
    """Poll for new events every FOLLOW_SECONDS and hand each to ``each`` once, until ``until()``."""
    while not until():
        ctx.sleep(FOLLOW_SECONDS)
        for ts, key, event in read_events(ctx, wanted, last_ms):
            if key in seen:
                continue
            seen.add(key)
            last_ms = max(last_ms, ts)
            each(event)


def show(ctx: Context, event: dict[str, Any]) -> None:
    ctx.out.result(event_line(event), event)


def detail_of(event: dict[str, Any]) -> dict[str, Any]:
    detail = event.get("detail")
    return detail if isinstance(detail, dict) else {}


def event_line(event: dict[str, Any]) -> str:
    detail = detail_of(event)
    who = " ".join(
        part
        for part in (
            detail.get("instanceId"),
            f"({detail['role']})" if detail.get("role") else None,
            f"node={str(detail['nodeId'])[:12]}" if detail.get("nodeId") else None,
            f"stack={detail['stack']}" if detail.get("stack") else None,
        )
        if part
    )
    reason = f" - {detail['reason']}" if detail.get("reason") else ""
    correlation = f"  [{str(detail['correlationId'])[:8]}]" if detail.get("correlationId") else ""
    return f"{event.get('time', '?')}  {event.get('detail-type', '?'):<22} {who}{reason}{correlation}"
