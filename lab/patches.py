"""In-process patches of moto (the lab only; production code never sees them). All undone at teardown."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

_MISSING = object()
_saved: list[tuple[Any, str, Any]] = []
_lock = threading.Lock()


def setattr(owner: Any, name: str, value: Any) -> None:
    with _lock:
        _saved.append(
            (owner, name, owner.__dict__.get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING)
        )
        type.__setattr__(owner, name, value) if isinstance(owner, type) else object.__setattr__(
            owner, name, value
        )


def undo_all() -> None:
    with _lock:
        while _saved:
            owner, name, old = _saved.pop()
            if old is _MISSING:
                with contextlib.suppress(AttributeError):
                    delattr(owner, name)
            else:
                type.__setattr__(owner, name, old) if isinstance(owner, type) else object.__setattr__(
                    owner, name, old
                )


def active() -> int:
    return len(_saved)
