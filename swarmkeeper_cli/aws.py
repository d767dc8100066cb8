"""The AWS side of every verb: a session on the standard credential chain and region (the
``AWS_*`` variables, ``AWS_ENDPOINT_URL`` included, a profile, instance metadata), its clients, and
what an AWS error means to an operator, as one line and an exit code."""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from swarmkeeper_cli.errors import CliError, Exit

# Codes AWS answers when it does not take the caller's credentials, or does not allow the call.
_NOT_ACCEPTED = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "AuthFailure",
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
    }
)
# Codes that say a resource the cluster should have is not there.
_NOT_FOUND = frozenset(
    {
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NoSuchBucket",
        "ValidationError",  # DescribeStacks: "Stack with id ... does not exist"
    }
)
_CLIENT_CONFIG = Config(retries={"max_attempts": 4, "mode": "standard"}, connect_timeout=5, read_timeout=60)


def open_session(profile: str | None, region: str | None) -> boto3.session.Session:
    """A session with a region and credentials, or a CliError saying which is missing. The region:
    ``region``, else AWS_REGION (which the AWS SDKs read and botocore does not), else botocore's
    (AWS_DEFAULT_REGION, the profile's)."""
    try:
        session = boto3.session.Session(
            profile_name=profile, region_name=region or os.environ.get("AWS_REGION")
        )
    except ProfileNotFound as err:
        raise CliError(str(err), Exit.AWS) from err
    if not session.region_name:
        raise CliError(
            "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), give the profile a region, "
            "or pass --region",
            Exit.AWS,
        )
    try:
        credentials = session.get_credentials()
    except BotoCoreError as err:
        raise CliError(f"cannot read AWS credentials: {err}", Exit.AWS) from err
    if credentials is None:
        raise CliError(
            "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or log in "
            "(aws sso login / aws configure)",
            Exit.AWS,
        )
    return session


def client(session: boto3.session.Session, service: str) -> Any:
    return session.client(service, config=_CLIENT_CONFIG)


def explain(err: Exception, cluster: str, region: str) -> CliError:
    """The one line an AWS error comes to, with its exit code."""
    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return CliError(f"no usable AWS credentials: {err}", Exit.AWS)
    if isinstance(err, NoRegionError):
        return CliError("no AWS region: set AWS_REGION or pass --region", Exit.AWS)
    if isinstance(err, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return CliError(f"cannot reach AWS: {err}", Exit.AWS)
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        operation = err.operation_name
        if code in _NOT_ACCEPTED:
            return CliError(f"AWS refused {operation} ({code}): {message}", Exit.AWS)
        if code in _NOT_FOUND:
            return CliError(
                f"cluster {cluster} not found in {region}: {operation}: {message or code}", Exit.NO_CLUSTER
            )
        return CliError(f"{operation} failed ({code}): {message}", Exit.FAILED)
    return CliError(f"AWS: {err}", Exit.AWS)
