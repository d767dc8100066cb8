"""S3's EventBridge notifications, as AWS sends them, for the buckets that have them on.

moto sends its own version only for some changes (none for a delete marker or for a version deleted
while others remain), with one fixed sequencer and a reason that is not S3's. The lab sends these
instead: `Object Created` for every new object (PutObject, PostObject, CopyObject,
CompleteMultipartUpload) and `Object Deleted` for every delete (`Delete Marker Created` when a
versioned bucket gets a delete marker, `Permanently Deleted` when a version, or the object of an
unversioned bucket, is removed), on the default bus, each with a sequencer that rises with every
change, so that the changes of one key are in order.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from lab import patches
from lab.events import EventFactory

DELETE_MARKER_ETAG = "d41d8cd98f00b204e9800998ecf8427e"  # S3's ETag of an empty object
_REASONS = {
    "s3:ObjectCreated:Put": "PutObject",
    "s3:ObjectCreated:Post": "PostObject",
    "s3:ObjectCreated:Copy": "CopyObject",
    "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
}


class Sequencer:
    """S3-shaped sequencers (upper-case hexadecimal, 18 digits), each greater than the one before."""

    def __init__(self, start: int | None = None):
        self._counter = itertools.count(time.time_ns() if start is None else start)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            return f"{next(self._counter):018X}"


class S3Events:
    """The two documented detail types, built for one account and region."""

    def __init__(self, factory: EventFactory, sequencer: Sequencer | None = None):
        self.factory = factory
        self.sequencer = sequencer or Sequencer()

    def _event(self, detail_type: str, bucket: str, obj: dict, reason: str, **more: str) -> dict:
        detail = {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {**obj, "sequencer": self.sequencer.next()},
            "request-id": secrets.token_hex(8).upper(),
            "requester": self.factory.account,
            "source-ip-address": "127.0.0.1",
            "reason": reason,
            **more,
        }
        return self.factory.envelope("aws.s3", detail_type, detail, [f"arn:aws:s3:::{bucket}"])

    def created(
        self, bucket: str, key: str, size: int, etag: str, version_id: str | None, reason: str
    ) -> dict:
        obj: dict[str, Any] = {"key": key, "size": size, "etag": etag.strip('"')}
        if version_id:
            obj["version-id"] = version_id
        return self._event("Object Created", bucket, obj, reason)

    def deleted(self, bucket: str, key: str, version_id: str | None, etag: str, marker: bool) -> dict:
        obj = {"key": key, "etag": etag.strip('"')}
        if version_id:
            obj["version-id"] = version_id
        kind = "Delete Marker Created" if marker else "Permanently Deleted"
        return self._event("Object Deleted", bucket, obj, "DeleteObject", **{"deletion-type": kind})


def _version(key: Any) -> str | None:
    version = getattr(key, "version_id", None)
    return None if version in (None, "null") else str(version)


def install(emit: Callable[[dict], None], events: S3Events) -> None:
    """Patch moto's S3 so that every change of a bucket with EventBridge notifications on ``emit``s
    its event (the lab's router, default bus), after the change."""
    from moto.s3 import notifications
    from moto.s3.models import FakeDeleteMarker, S3Backend

    def notified(bucket: Any) -> bool:
        config = bucket.notification_configuration
        return config is not None and config.event_bridge is not None

    def send_event_bridge_message(_account: str, bucket: Any, event_name: str, key: Any) -> None:
        reason = _REASONS.get(getattr(event_name, "value", event_name))
        if reason:  # deletes are sent by delete_object below, every one of them
            emit(events.created(bucket.name, key.name, key.size, key.etag, _version(key), reason))

    original_delete = S3Backend.delete_object

    def delete_object(
        backend: Any, bucket_name: str, key_name: str, version_id: str | None = None, bypass: bool = False
    ) -> tuple[bool, dict[str, Any]]:
        bucket = backend.get_bucket(bucket_name)
        marker = bucket.is_versioned and version_id is None
        if version_id:
            versions = bucket.keys.getlist(key_name, [])
            removed = next((k for k in versions if str(k.version_id) == version_id), None)
        else:
            removed = None if marker else bucket.keys.get(key_name)
        done, meta = original_delete(backend, bucket_name, key_name, version_id=version_id, bypass=bypass)
        if done and notified(bucket):
            gone = meta.get("version-id") if bucket.is_versioned else None
            etag = DELETE_MARKER_ETAG
            if removed is not None and not isinstance(removed, FakeDeleteMarker):
                etag = removed.etag
            emit(events.deleted(bucket_name, key_name, gone, etag, marker))
        return done, meta

    patches.setattr(notifications, "_send_event_bridge_message", send_event_bridge_message)
    patches.setattr(S3Backend, "delete_object", delete_object)
