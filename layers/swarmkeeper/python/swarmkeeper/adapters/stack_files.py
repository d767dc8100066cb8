"""The stacks bucket, as the control plane may see it: which version of each `stacks/` file is current.
Only ListObjectVersions (metadata): the control plane reads no file; deploy-stack does, on a manager."""

from __future__ import annotations

from typing import Any

from swarmkeeper.domain.stacks import PREFIX


class StackFiles:
    def __init__(self, s3: Any, bucket: str):
        self._s3 = s3
        self.bucket = bucket

    def current(self, key: str) -> str | None:
        """The current version of ``key``; None when it has none or its newest is a delete marker."""
        return self._latest(key).get(key)

    def listing(self) -> dict[str, str]:
        """Every file under `stacks/` that is not deleted -> its current version (one paginated list)."""
        return self._latest(PREFIX)

    def _latest(self, prefix: str) -> dict[str, str]:
        current: dict[str, str] = {}
        deleted: set[str] = set()
        pages = self._s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            for version in page.get("Versions", []):
                if version.get("IsLatest"):
                    current[version["Key"]] = version["VersionId"]
            for marker in page.get("DeleteMarkers", []):
                if marker.get("IsLatest"):
                    deleted.add(marker["Key"])
        return {key: version for key, version in current.items() if key not in deleted}
