"""``swarmkeeper [--cluster C] [--region R] [--profile P] [--json] [--quiet] VERB ...``: the verbs, the
cluster they act on (``--cluster`` or ``SWARMKEEPER_CLUSTER``), and their exit codes (``errors.Exit``).
Every failure ends in one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from swarmkeeper.domain.names import ClusterNames
from swarmkeeper_cli import aws, control, drain, redrive, stacks, status, timeline
from swarmkeeper_cli.context import Context
from swarmkeeper_cli.errors import CliError, Exit
from swarmkeeper_cli.names import cluster_names
from swarmkeeper_cli.output import Output

CLUSTER_VARIABLE = "SWARMKEEPER_CLUSTER"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see swarmkeeper --help)", Exit.USAGE)


def _global_options(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: given before or after the verb, neither place's default overwrites the other's value.
    parser.add_argument(
        "--cluster", default=argparse.SUPPRESS, help=f"cluster name (default: ${CLUSTER_VARIABLE})"
    )
    parser.add_argument("--region", default=argparse.SUPPRESS, help="AWS region (default: the AWS chain's)")
    parser.add_argument("--profile", default=argparse.SUPPRESS, help="AWS profile (default: the AWS chain's)")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON on stdout")
    parser.add_argument(
        "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress on stderr"
    )


def parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    _global_options(common)
    top = _Parser(
        prog="swarmkeeper",
        description="Operate a swarmkeeper cluster: read what its control plane keeps, act through its "
        "own paths.",
        epilog="exit codes: " + ", ".join(f"{code.value} {code.name.lower()}" for code in Exit),
    )
    _global_options(top)
    verbs = top.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    verbs.required = True

    verbs.add_parser(
        "status", parents=[common], help="managers, workers, leader, quorum, operations, reconcile"
    )
    verbs.add_parser("nodes", parents=[common], help="one line per instance of the cluster's groups")
    events = verbs.add_parser("events", parents=[common], help="the operators' timeline")
    events.add_argument("--instance", help="only events about this instance id")
    events.add_argument("--node", help="only events about this node id (or its first characters)")
    events.add_argument(
        "--type", action="append", default=[], dest="types", help="only this detail-type (repeatable)"
    )
    events.add_argument("--correlation", help="only events with this correlation id")
    events.add_argument(
        "--since", default="1h", help="how far back: 30s, 10m, 2h, 7d or an ISO time (default 1h)"
    )
    events.add_argument("--limit", type=int, help="only the last N events")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")

    def acting(name: str, help_text: str, timeout: int) -> argparse.ArgumentParser:
        verb = verbs.add_parser(name, parents=[common], help=help_text)
        verb.add_argument("--no-wait", dest="wait", action="store_false", help="return once started")
        verb.add_argument(
            "--timeout", type=float, default=timeout, help=f"seconds to wait (default {timeout})"
        )
        return verb

    deploy = acting("deploy", "deploy a Compose file as stack NAME (stacks bucket)", 600)
    deploy.add_argument("file", metavar="FILE")
    deploy.add_argument("--name", required=True, help="the stack's name")
    deploy.add_argument(
        "--stacks-bucket", help=f"the stacks bucket (default: ${stacks.BUCKET_VARIABLE} or the stack output)"
    )
    verbs.add_parser("stacks", parents=[common], help="the stacks and their state")
    rm_stack = acting("rm-stack", "remove stack NAME (stacks bucket)", 600)
    rm_stack.add_argument("name", metavar="NAME")
    rm_stack.add_argument(
        "--stacks-bucket", help=f"the stacks bucket (default: ${stacks.BUCKET_VARIABLE} or the stack output)"
    )
    drain_verb = acting("drain", "drain INSTANCE and let it leave the swarm (graceful termination)", 1800)
    drain_verb.add_argument("instance", metavar="INSTANCE")
    drain_verb.add_argument(
        "--decrement", action="store_true", help="shrink the group instead of replacing it"
    )
    drain_verb.add_argument("--force", action="store_true", help="skip the CLI's quorum check of a manager")
    acting("reconcile", "run a reconcile pass now", 300)
    acting("rotate-tokens", "rotate both join tokens now", 300)
    redrive_verb = verbs.add_parser(
        "redrive", parents=[common], help="the dead-letter queue back to its functions"
    )
    redrive_verb.add_argument("--dry-run", action="store_true", help="count, move nothing")
    redrive_verb.add_argument(
        "--max", type=int, default=1000, help="at most this many messages (default 1000)"
    )
    return top


def _dispatch(ctx: Context, args: argparse.Namespace) -> Exit:
    match args.verb:
        case "status":
            return status.status(ctx)
        case "nodes":
            return status.nodes(ctx)
        case "events":
            wanted = timeline.EventFilter(args.instance, args.node, tuple(args.types), args.correlation)
            return timeline.events(ctx, wanted, args.since, args.follow, args.limit)
        case "deploy":
            return stacks.deploy(ctx, args.file, args.name, args.stacks_bucket, args.wait, args.timeout)
        case "stacks":
            return stacks.stacks(ctx)
        case "rm-stack":
            return stacks.remove(ctx, args.name, args.stacks_bucket, args.wait, args.timeout)
        case "drain":
            return drain.drain(ctx, args.instance, args.decrement, args.force, args.wait, args.timeout)
        case "reconcile":
            return control.reconcile(ctx, args.wait, args.timeout)
        case "rotate-tokens":
            return control.rotate_tokens(ctx, args.wait, args.timeout)
        case "redrive":
            return redrive.redrive(ctx, args.dry_run, args.max)
    raise CliError(f"unknown verb {args.verb}", Exit.USAGE)


def run(
    argv: Sequence[str] | None = None,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    out = Output(stdout=stdout, stderr=stderr)
    names: ClusterNames | None = None
    region = "?"
    try:
        args = parser().parse_args(argv)
        out.as_json, out.quiet = getattr(args, "json", False), getattr(args, "quiet", False)
        names = cluster_names(getattr(args, "cluster", None) or os.environ.get(CLUSTER_VARIABLE))
        session = aws.open_session(getattr(args, "profile", None), getattr(args, "region", None))
        region = str(session.region_name)
        ctx = Context(names, session, out, clock, sleep)
        return int(_dispatch(ctx, args))
    except CliError as err:
        out.error(str(err))
        return int(err.code)
    except (BotoCoreError, ClientError) as err:
        explained = aws.explain(err, names.cluster if names else "?", region)
        out.error(str(explained))
        return int(explained.code)
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130


def main() -> int:
    return run(sys.argv[1:])
