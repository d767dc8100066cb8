"""The causes of ``Listener Rejected`` already published, in the state table: one item,
``listeners#rejected`` (``domain.listeners.RejectionsPublished``), written on its version (a
conditional put: a concurrent pass that wrote first makes it fail)."""

from __future__ import annotations

from typing import Any

from swarmkeeper.adapters.state import StateTable
from swarmkeeper.domain.listeners import Rejection, RejectionsPublished

REJECTIONS_PK = "listeners#rejected"


class PublishedRejections:
    def __init__(self, state: StateTable):
        self._state = state

    def get(self) -> RejectionsPublished:
        """As stored; nothing published (version 0) when there is no item."""
        item = self._state.get_item(REJECTIONS_PK)
        if item is None:
            return RejectionsPublished()
        causes = frozenset(_rejection(cause) for cause in item.get("rejections") or ())
        return RejectionsPublished(causes, int(item["version"]))

    def save(self, published: RejectionsPublished) -> bool:
        """False when the stored version is not the one before ``published`` (another pass wrote)."""
        causes = sorted(published.rejections, key=lambda r: (r.port, r.reason, r.services))
        item = {
            "pk": REJECTIONS_PK,
            "version": published.version,
            "rejections": [
                {"port": cause.port, "services": list(cause.services), "reason": cause.reason}
                for cause in causes
            ],
        }
        if published.version == 1:
            return self._state.put_item(item, "attribute_not_exists(pk)")
        return self._state.put_item(item, "version = :previous", {":previous": published.version - 1})


def _rejection(cause: Any) -> Rejection:
    return Rejection(
        int(cause["port"]),
        tuple(str(service) for service in cause.get("services") or ()),
        str(cause["reason"]),
    )
