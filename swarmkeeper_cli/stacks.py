"""``deploy FILE --name N``, ``stacks`` and ``rm-stack N``: through the stacks bucket, as the stacks
flow takes them (``stacks/<name>.yml``: a new version deploys it, a delete marker removes it), then
waiting for the outcome of that very object version on the timeline (Stack Deployed / Stack Deploy
Failed, Stack Removed / Stack Remove Failed). ``stacks`` lists the ``stack#<name>`` records.

The bucket: ``--stacks-bucket``, else SWARMKEEPER_STACKS_BUCKET, else the stack's output
``StacksBucketName`` (CloudFormation DescribeStacks)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from swarmkeeper.adapters.stack_records import StackRecords
from swarmkeeper.domain.stacks import (
    STACK_DEPLOY_FAILED,
    STACK_DEPLOYED,
    STACK_NAME_PATTERN,
    STACK_REMOVE_FAILED,
    STACK_REMOVED,
    StackRecord,
    stack_key,
    stack_name,
)
from swarmkeeper_cli.context import Context
from swarmkeeper_cli.errors import CliError, Exit
from swarmkeeper_cli.output import table
from swarmkeeper_cli.timeline import EventFilter, detail_of, read_events
from swarmkeeper_cli.waiting import Progress, wait_for

BUCKET_VARIABLE = "SWARMKEEPER_STACKS_BUCKET"
BUCKET_OUTPUT = "StacksBucketName"
MAX_FILE_BYTES = 1_000_000


def bucket(ctx: Context, given: str | None) -> str:
    found = given or os.environ.get(BUCKET_VARIABLE)
    if found:
        return found
    stacks = ctx.client("cloudformation").describe_stacks(StackName=ctx.names.stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])} if stacks else {}
    if BUCKET_OUTPUT not in outputs:
        raise CliError(
            f"stack {ctx.names.stack} has no output {BUCKET_OUTPUT}: pass --stacks-bucket", Exit.NO_CLUSTER
        )
    return str(outputs[BUCKET_OUTPUT])


def _key(name: str) -> str:
    key = stack_key(name)
    if stack_name(key) != name:
        raise CliError(f"{name!r} is not a stack name ({STACK_NAME_PATTERN})", Exit.REFUSED)
    return key


def deploy(ctx: Context, path: str, name: str, bucket_name: str | None, wait: bool, timeout: float) -> Exit:
    key = _key(name)
    file = Path(path)
    try:
        content = file.read_bytes()
    except OSError as err:
        raise CliError(f"cannot read {path}: {err.strerror or err}", Exit.REFUSED) from err
    if not content.strip() or len(content) > MAX_FILE_BYTES:
        raise CliError(
            f"{path} is empty or over {MAX_FILE_BYTES} bytes: not a Compose file to deploy", Exit.REFUSED
        )
    where = bucket(ctx, bucket_name)
    start_ms = int(ctx.clock() * 1000)
    put = ctx.client("s3").put_object(Bucket=where, Key=key, Body=content, ContentType="application/yaml")
    version = str(put.get("VersionId") or "")
    ctx.out.progress(f"put s3://{where}/{key} version {version}")
    return _outcome(
        ctx, "deploy", name, version, (STACK_DEPLOYED, STACK_DEPLOY_FAILED), start_ms, wait, timeout
    )


def remove(ctx: Context, name: str, bucket_name: str | None, wait: bool, timeout: float) -> Exit:
    key = _key(name)
    where = bucket(ctx, bucket_name)
    s3 = ctx.client("s3")
    listed = s3.list_objects_v2(Bucket=where, Prefix=key).get("Contents", [])
    if not any(item.get("Key") == key for item in listed):
        raise CliError(f"no stack {name}: s3://{where}/{key} does not exist", Exit.REFUSED)
    start_ms = int(ctx.clock() * 1000)
    deleted = s3.delete_object(Bucket=where, Key=key)
    marker = str(deleted.get("VersionId") or "")
    ctx.out.progress(f"deleted s3://{where}/{key} (delete marker {marker})")
    return _outcome(
        ctx, "rm-stack", name, marker, (STACK_REMOVED, STACK_REMOVE_FAILED), start_ms, wait, timeout
    )


def _outcome(
    ctx: Context,
    verb: str,
    name: str,
    version: str,
    outcomes: tuple[str, str],
    start_ms: int,
    wait: bool,
    timeout: float,
) -> Exit:
    data: dict[str, Any] = {"stack": name, "versionId": version}
    if not wait:
        ctx.out.result(f"{verb}: {name} version {version} in the bucket", data)
        return Exit.OK
    progress = Progress(ctx)
    records = StackRecords(ctx.state)
    wanted = EventFilter(types=outcomes)

    def outcome() -> dict[str, Any] | None:
        for _, _, event in read_events(ctx, wanted, start_ms):
            detail = detail_of(event)
            if detail.get("stack") == name and (not version or detail.get("versionId") == version):
                return event
        record = records.get(name)
        if record and record.command:
            progress.say(f"{record.command} on {record.target or 'a manager'}")
        else:
            progress.say("waiting for the stacks flow")
        return None

    event = wait_for(ctx, f"{verb} {name}", outcome, timeout)
    detail = detail_of(event)
    data.update(
        outcome=event.get("detail-type"), reason=detail.get("reason"), instanceId=detail.get("instanceId")
    )
    ctx.out.result(f"{verb}: {event.get('detail-type')}: {name} ({detail.get('reason')})", data)
    return Exit.OK if event.get("detail-type") == outcomes[0] else Exit.FAILED


def stacks(ctx: Context) -> Exit:
    rows = [_row(record) for record in sorted(StackRecords(ctx.state).all(), key=lambda r: r.name)]
    header = ["STACK", "STATE", "DEPLOYED", "WANTED", "IN FLIGHT", "REASON"]
    cells = [
        [
            r["stack"],
            r["state"],
            r["deployed"] or "-",
            r["wanted"] or "-",
            r["inFlight"] or "-",
            r["reason"] or "-",
        ]
        for r in rows
    ]
    ctx.out.result(table([header, *cells]) if rows else "no stacks", {"stacks": rows})
    return Exit.OK


def _row(record: StackRecord) -> dict[str, Any]:
    if record.removed:
        state = "removed" if record.gone else "removing"
    elif record.wanted and record.wanted == record.deployed:
        state = "deployed"
    elif record.wanted and record.wanted == record.refused:
        state = "refused"
    else:
        state = "deploying"
    return {
        "stack": record.name,
        "state": state,
        "deployed": record.deployed,
        "wanted": record.wanted,
        "inFlight": f"{record.command} on {record.target}" if record.command else "",
        "reason": record.reason,
    }
