"""Errors the domain raises; handlers map them."""


class SwarmkeeperError(Exception):
    """Base of swarmkeeper's own errors."""


class MalformedEvent(SwarmkeeperError):
    """An incoming event lacks a field the control plane needs. Not retried into success: the
    handler logs it and re-raises, so Lambda's async retries end in the dead-letter queue."""
