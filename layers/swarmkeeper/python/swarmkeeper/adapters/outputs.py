"""The command output bucket: the full stdout of a describe-swarm (Run Command keeps 24,000 characters).

The control plane may only GetObject there (no ListBucket), so the key is taken from the invocation's
StandardOutputUrl, or else built the way Run Command lays it out:
``<prefix>/<command-id>/<instance-id>/awsrunShellScript/0.awsrunShellScript/stdout``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlparse

from botocore.exceptions import ClientError

INLINE_LIMIT = 24_000  # GetCommandInvocation's StandardOutputContent limit
PLUGIN_PATH = "awsrunShellScript/0.awsrunShellScript/stdout"


def stdout_key(prefix: str, command_id: str, instance_id: str) -> str:
    return "/".join(p for p in (prefix.strip("/"), command_id, instance_id, PLUGIN_PATH) if p)


def key_from_url(url: str, bucket: str) -> str | None:
    """The object key of an S3 URL (path-style or virtual-hosted) in ``bucket``; None otherwise."""
    if not url:
        return None
    parsed = urlparse(url)
    path = unquote(parsed.path).lstrip("/")
    if parsed.netloc.startswith(f"{bucket}."):
        return path or None
    if path.startswith(f"{bucket}/"):
        return path[len(bucket) + 1 :] or None
    return None


class CommandOutputs:
    def __init__(self, s3: Any, bucket: str):
        self._s3 = s3
        self.bucket = bucket

    def read(self, key: str) -> str | None:
        """The object's text; None when it is not there (yet)."""
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as err:
            if err.response["Error"]["Code"] in ("NoSuchKey", "404", "AccessDenied"):
                return None
            raise
        with body:
            return str(body.read().decode("utf-8", errors="replace"))
