"""``redrive``: the dead-letter queue ``swarmkeeper-C-dlq`` back to where each message failed.

What lands there, and where it goes back to:
- an event a function failed on after Lambda's two retries (the event as the body, with the
  RequestID / ErrorCode / ErrorMessage attributes), or that a rule could not deliver (with
  RULE_ARN / TARGET_ARN): to the function whose rule matches it (``ROUTES``, held to the stack's
  rules by a test), invoked asynchronously as EventBridge does; the function's idempotency record of
  a failed event is gone, so it runs again;
- a step the step queue gave up on (its body ``{"kind", "instanceId", "version", ...}``): back to
  the step queue.
A message neither can be told of stays in the queue. ``--dry-run`` only counts.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from swarmkeeper_cli import control
from swarmkeeper_cli.context import Context
from swarmkeeper_cli.errors import CliError, Exit

STEP_QUEUE = "step queue"
# (source, detail-type) -> the function the stack's rule sends it to.
ROUTES: dict[tuple[str, str], str] = {
    ("aws.autoscaling", "EC2 Instance-launch Lifecycle Action"): "lifecycle_action",
    ("aws.autoscaling", "EC2 Instance-terminate Lifecycle Action"): "lifecycle_action",
    ("aws.ec2", "EC2 Instance State-change Notification"): "instance_state",
    ("aws.ssm", "EC2 State Manager Instance Association State Change"): "instance_state",
    ("aws.ec2", "EC2 Spot Instance Interruption Warning"): "interruption",
    ("aws.ec2", "EC2 Instance Rebalance Recommendation"): "interruption",
    ("aws.ssm", "EC2 Command Invocation Status-change Notification"): "command_status",
    ("aws.cloudwatch", "CloudWatch Alarm State Change"): "alarm",
    ("aws.s3", "Object Created"): "stack_object",
    ("aws.s3", "Object Deleted"): "stack_object",
}
# A Scheduled Event names its rule in ``resources``: the rule's suffix -> its function.
SCHEDULES = {"reconcile": "reconcile", "rotate-tokens": "rotate_tokens"}
RECEIVE_BATCH = 10
HOLD_SECONDS = 300  # a received message stays invisible to others while it is being redriven


@dataclass(frozen=True)
class Dead:
    receipt: str
    body: str
    destination: str | None  # a function name, STEP_QUEUE, or None: cannot tell


def destination(ctx: Context, body: str, attributes: dict[str, Any]) -> str | None:
    target = attributes.get("TARGET_ARN", {}).get("StringValue", "")
    if target:
        name = target.split(":function:")[-1].split(":")[0] if ":function:" in target else ""
        functions = {ctx.names.function(f): f for f in {*ROUTES.values(), *SCHEDULES.values()}}
        return functions.get(name)
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    if message.get("kind") in ("join", "leave") and "instanceId" in message and "version" in message:
        return STEP_QUEUE
    source, detail_type = message.get("source"), message.get("detail-type")
    if (source, detail_type) == ("aws.events", "Scheduled Event"):
        for rule in message.get("resources") or []:
            for suffix, function in SCHEDULES.items():
                if str(rule).endswith(f"rule/{ctx.names.prefix}-{suffix}"):
                    return function
        return None
    return ROUTES.get((str(source), str(detail_type)))


def receive(ctx: Context, queue_url: str, most: int) -> list[Dead]:
    sqs = ctx.client("sqs")
    found: list[Dead] = []
    while len(found) < most:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(RECEIVE_BATCH, most - len(found)),
            VisibilityTimeout=HOLD_SECONDS,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            break
        for m in messages:
            body = str(m.get("Body", ""))
            found.append(
                Dead(m["ReceiptHandle"], body, destination(ctx, body, m.get("MessageAttributes", {})))
            )
    return found


def redrive(ctx: Context, dry_run: bool, most: int) -> Exit:
    sqs = ctx.client("sqs")
    dlq = sqs.get_queue_url(QueueName=ctx.names.dead_letter_queue)["QueueUrl"]
    dead = receive(ctx, dlq, most)
    plan = Counter(d.destination or "kept" for d in dead)
    moved: Counter[str] = Counter()
    failed: list[str] = []
    for message in dead:
        if dry_run or message.destination is None:
            sqs.change_message_visibility(QueueUrl=dlq, ReceiptHandle=message.receipt, VisibilityTimeout=0)
            continue
        try:
            deliver(ctx, message)
        except (BotoCoreError, ClientError, CliError) as err:  # leaves this one in the queue, not the others
            failed.append(f"{message.destination}: {err}")
            sqs.change_message_visibility(QueueUrl=dlq, ReceiptHandle=message.receipt, VisibilityTimeout=0)
            continue
        sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message.receipt)
        moved[str(message.destination)] += 1
    kept = plan.get("kept", 0)
    data = {
        "queue": ctx.names.dead_letter_queue,
        "messages": len(dead),
        "dryRun": dry_run,
        "plan": dict(plan),
        "redriven": dict(moved),
        "kept": kept + len(failed),
        "failures": failed,
    }
    ctx.out.result(render(data), data)
    return Exit.FAILED if failed or kept else Exit.OK


def deliver(ctx: Context, message: Dead) -> None:
    if message.destination == STEP_QUEUE:
        url = ctx.client("sqs").get_queue_url(QueueName=ctx.names.step_queue)["QueueUrl"]
        ctx.client("sqs").send_message(QueueUrl=url, MessageBody=message.body)
    elif message.destination is not None:
        control.invoke(ctx, message.destination, json.loads(message.body), asynchronous=True)


def render(data: dict[str, Any]) -> str:
    if not data["messages"]:
        return f"{data['queue']}: empty, nothing to redrive"
    where = ", ".join(f"{count} to {name}" for name, count in sorted(data["plan"].items()) if name != "kept")
    if data["dryRun"]:
        lines = [f"{data['queue']}: {data['messages']} messages would go back: {where or 'none'}"]
    else:
        done = ", ".join(f"{count} to {name}" for name, count in sorted(data["redriven"].items()))
        lines = [f"{data['queue']}: {data['messages']} messages, redriven: {done or 'none'}"]
    if data["kept"]:
        lines.append(f"kept in the queue: {data['kept']} (nowhere to send them back to, or delivery failed)")
    lines.extend(f"  failed: {failure}" for failure in data["failures"])
    return "\n".join(lines)
