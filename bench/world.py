"""The world part (no root): the moto-backed unit world of tests/unit, in a child process (it clears
the environment): AWS API calls per join and per removal, counted with a botocore hook; one reconcile
pass over 1,000 instances/nodes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.figures import Figure, Results, median
from bench.paths import REPO


def _world_imports() -> Any:
    for p in (str(REPO), str(REPO / "layers" / "swarmkeeper" / "python"), str(REPO / "tests" / "unit")):
        if p not in sys.path:
            sys.path.insert(0, p)
    import join_world

    os.environ.clear()
    os.environ.update({**join_world.ENV, "PATH": "/usr/bin:/bin"})
    return join_world


class _Capsys:
    def readouterr(self) -> Any:
        import types

        return types.SimpleNamespace(out="", err="")


@contextlib.contextmanager
def _world(jw: Any) -> Any:
    from moto import mock_aws

    with mock_aws():
        w = jw.World(jw.FakeClock(), _Capsys())
        w.setup()
        try:
            yield w
        finally:
            w.teardown()


def _status(jw: Any, w: Any, sent: Any, status: str) -> None:
    """A non-terminal invocation status event (Run Command sends Pending and InProgress too; the
    stack's rule matches every status of its documents)."""
    event = jw.load_event(
        "ec2-command-invocation-status-change-notification",
        **{
            "command-id": sent.command_id,
            "document-name": f"swarmkeeper-{jw.CLUSTER}-{sent.action}",
            "instance-id": sent.instance_id,
            "status": status,
        },
    )
    w.invoke("command_status", event)


class _Marks:
    def __init__(self, w: Any):
        self.w, self.rows, self.at = w, [], len(w.fakes.calls)
        self.start = self.at

    def __call__(self, what: str) -> None:
        calls = [op for _, op, _ in self.w.fakes.calls[self.at :] if op != "TerminateInstances"]
        self.rows.append({"event": what, "calls": len(calls), "ops": _counts(calls)})
        self.at = len(self.w.fakes.calls)

    def total(self) -> list[str]:
        return [op for _, op, _ in self.w.fakes.calls[self.start :] if op != "TerminateInstances"]


def _counts(ops: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for op in ops:
        out[op] = out.get(op, 0) + 1
    return out


def count_join_and_removal(jw: Any) -> dict:
    with _world(jw) as w:
        (m,) = w.managers(1)
        w.join(m)
        w.settle()
        (x,) = w.workers(1)
        # As on AWS: the launch lifecycle event comes before the agent registers.
        w.fakes.unregistered_agents.add(x)
        mk = _Marks(w)
        w.lifecycle(x)
        mk("launch lifecycle action (agent not registered yet: wait step)")
        w.running(x)
        mk("EC2 running state change (join fallback: join in flight)")
        w.fakes.unregistered_agents.discard(x)
        w.agent_ready(x)
        mk("agent-ready association Success (the agent registered) -> bootstrap-node sent")
        w.deliver_steps()
        mk("the launch event's agent poll step, due later: stale, ignored")
        boot = [s for s in w.sent("bootstrap-node") if s.instance_id == x][-1]
        _status(jw, w, boot, "Pending")
        _status(jw, w, boot, "InProgress")
        mk("bootstrap-node Pending + InProgress status events")
        node_x = w.bootstrap_succeeds(boot)
        mk("bootstrap-node Success -> verify-node sent")
        w.settle()
        verify = [s for s in w.sent("verify-node") if s.parameters["NodeId"] == node_x][-1]
        _status(jw, w, verify, "Pending")
        _status(jw, w, verify, "InProgress")
        mk("verify-node Pending + InProgress status events")
        w.verify_succeeds(verify)
        w.settle()
        mk("verify-node Success -> tag, CONTINUE, Node Joined")
        assert w.fakes.lifecycle_results.get(x) == ["CONTINUE"], w.fakes.lifecycle_results
        join_ops, join_rows = mk.total(), mk.rows

        (y,) = w.workers(1)
        node_y = w.join(y)
        w.settle()
        w.reconcile_pass()  # the view a scheduled reconcile keeps (every 5 minutes in the stack)
        w.settle()
        mk = _Marks(w)
        w.ec2.terminate_instances(InstanceIds=[y])
        w.fakes.pending_lifecycle.discard(y)
        w.state_change(y, "shutting-down")
        mk("EC2 shutting-down state change -> remove-node sent from a manager")
        w.state_change(y, "terminated")
        mk("EC2 terminated state change (removal in flight)")
        remove = w.commands_for("remove-node", node_y)[-1]
        _status(jw, w, remove, "Pending")
        _status(jw, w, remove, "InProgress")
        mk("remove-node Pending + InProgress status events")
        w.finish(remove, stdout=f"node-id={node_y} removed=true\n")
        w.settle()
        mk("remove-node Success -> Dead Node Removed")
        assert w.published("Dead Node Removed"), "no Dead Node Removed"
        return {
            "join": {"total": len(join_ops), "ops": _counts(join_ops), "rows": join_rows},
            "removal": {"total": len(mk.total()), "ops": _counts(mk.total()), "rows": mk.rows},
        }


class _AwsTime:
    """Seconds inside API calls (request built to response parsed), and of those the seconds moto's
    backend spent answering (its botocore stubber): the emulated AWS side, which is not handler time.
    The rest — serializing requests, parsing responses (1,000 instances) — is the handler's, as on Lambda."""

    def __init__(self, clients: Any):
        from moto.core.botocore_stubber import BotocoreStubber

        self.seconds = 0.0
        self.moto_seconds = 0.0
        self._t: float | None = None
        for name in ("ec2", "ssm", "dynamodb", "s3", "events", "autoscaling", "sqs"):
            ev = getattr(clients, name).meta.events
            ev.register_first("before-call", self._before)
            ev.register_last("after-call", self._after)
        self._cls = BotocoreStubber
        self._original = BotocoreStubber.__call__
        timer = self

        def timed(stub: Any, *args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return timer._original(stub, *args, **kwargs)
            finally:
                timer.moto_seconds += time.perf_counter() - t

        BotocoreStubber.__call__ = timed

    def close(self) -> None:
        self._cls.__call__ = self._original

    def _before(self, **_: Any) -> None:
        self._t = time.perf_counter()

    def _after(self, **_: Any) -> None:
        if self._t is not None:
            self.seconds += time.perf_counter() - self._t
            self._t = None


def reconcile_1000(jw: Any, profile: Path | None = None) -> dict:
    """tests/unit/test_handlers_reconcile.py's 1,000-node pass: 3 managers + 997 tagged workers (5 of
    them gone), describe-swarm's output through S3; the pass is timed from the command's Success event."""
    import secrets

    tags = [
        {"Key": "swarmkeeper:cluster", "Value": jw.CLUSTER},
        {"Key": "swarmkeeper:role", "Value": "worker"},
        {"Key": "aws:autoscaling:groupName", "Value": f"swarmkeeper-{jw.CLUSTER}-workers"},
    ]
    with _world(jw) as w:
        managers = w.managers(3)
        nodes = {m: w.join(m) for m in managers}
        workers = []
        for count in [100] * 9 + [97]:
            r = w.ec2.run_instances(
                ImageId="ami-12c6146b",
                MinCount=count,
                MaxCount=count,
                InstanceType="t3.small",
                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
            )
            workers.extend(r["Instances"])
        gone = {x["InstanceId"] for x in workers[:5]}
        w.ec2.terminate_instances(InstanceIds=list(gone))
        lines = [
            f"{nodes[m]} manager ready active {'leader' if m == managers[0] else 'reachable'} "
            f"{w.private_ip(m)} host-{m}"
            for m in managers
        ]
        for x in workers:
            state = "down" if x["InstanceId"] in gone else "ready"
            lines.append(
                f"{secrets.token_hex(13)[:25]} worker {state} active - {x['PrivateIpAddress']} "
                f"h-{x['InstanceId']}"
            )
        stdout = "\n".join([*lines, f"nodes={len(lines)}"]) + "\n"
        before = len(w.fakes.calls)
        w.invoke("reconcile", jw.load_event("scheduled-event"))
        start_calls = len(w.fakes.calls) - before
        describe = w.sent("describe-swarm")[-1]
        plugin = "awsrunShellScript/0.awsrunShellScript/stdout"
        key = f"describe-swarm/{describe.command_id}/{describe.instance_id}/{plugin}"
        w.s3.put_object(Bucket=jw.ENV["COMMAND_OUTPUT_BUCKET"], Key=key, Body=stdout.encode())
        url = f"https://s3.{jw.REGION}.amazonaws.com/{jw.ENV['COMMAND_OUTPUT_BUCKET']}/{key}"
        from swarmkeeper import runtime

        aws = _AwsTime(runtime._runtime.clients)
        calls = len(w.fakes.calls)
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        began = time.perf_counter()
        result = w.finish(describe, stdout=stdout[:24_000], stdout_url=url)
        elapsed = time.perf_counter() - began
        aws.close()
        if prof:
            prof.disable()
            prof.dump_stats(str(profile))
        ops = [op for _, op, _ in w.fakes.calls[calls:]]
        assert result["outcome"] == "reconciled", result
        return {
            "handler_s": elapsed - aws.moto_seconds,
            "handler_without_sdk_s": elapsed - aws.seconds,
            "total_s": elapsed,
            "aws_s": aws.seconds,
            "moto_s": aws.moto_seconds,
            "calls": len(ops),
            "start_calls": start_calls,
            "ops": _counts(ops),
            "reason": result["reason"],
        }


def world_child(runs: int, out: Path, profile: Path | None) -> int:
    """In the child: the counts and ``runs`` reconcile passes, as JSON into ``out``."""
    logging.disable(logging.CRITICAL)
    jw = _world_imports()
    data: dict[str, Any] = {"counts": count_join_and_removal(jw), "reconcile": []}
    for i in range(runs):
        data["reconcile"].append(reconcile_1000(jw, profile if i == 0 else None))
    out.write_text(json.dumps(data))
    return 0


def world_part(res: Results, runs: int, profile: Path | None = None) -> None:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "world.json"
        argv = [sys.executable, "-m", "bench.world", str(runs), str(out)]
        if profile:
            argv.append(str(profile))
        proc = subprocess.run(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"world part failed: {proc.stderr[-2000:]}")
        data = json.loads(out.read_text())
    res.extra["world"] = data
    c = data["counts"]
    res.add(
        Figure(
            "api_calls_per_join",
            c["join"]["total"],
            "minimum",
            "one worker joined through the moto-backed unit world (tests/unit/join_world.py), every AWS API "
            "call of the handlers counted with a botocore `before-parameter-build` hook; the events AWS "
            "sends for one join are all delivered (launch lifecycle action before the agent registers, the "
            "running state change, Pending/InProgress/Success of each command)",
            ", ".join(f"{k} {v}" for k, v in sorted(c["join"]["ops"].items())),
        )
    )
    res.add(
        Figure(
            "api_calls_per_removal",
            c["removal"]["total"],
            "minimum",
            "one crashed worker (EC2 shutting-down and terminated state changes, remove-node's three "
            "status events) through the same world and hook",
            ", ".join(f"{k} {v}" for k, v in sorted(c["removal"]["ops"].items())),
        )
    )
    rec = data["reconcile"]
    res.add(
        Figure(
            "reconcile_1000_s",
            median([r["handler_s"] for r in rec]),
            "< 3",
            f"median of {len(rec)} passes: the describe-swarm Success event of a 1,000-node cluster (3 "
            "managers, "
            "997 workers, 5 instances gone; output read from S3) through command_status, in-process: wall "
            "time minus the time moto's backend spent answering (botocore serializing and parsing stays in)",
            f"wall {median([r['total_s'] for r in rec]):.2f} s, of which moto answering "
            f"{median([r['moto_s'] for r in rec]):.2f} s; without any time inside API calls (as "
            f"tests/unit measures it) {median([r['handler_without_sdk_s'] for r in rec]):.3f} s; "
            f"{rec[0]['reason'][:80]}...",
        )
    )
    res.add(
        Figure(
            "reconcile_1000_api_calls",
            median([r["calls"] + r["start_calls"] for r in rec]),
            "< 25",
            "API calls of the whole pass: the scheduled invocation that starts it (idempotency pair, the "
            "saved view, SendCommand describe-swarm to a manager, the op record) plus the describe-swarm "
            "Success event that reads the output from S3, lists the instances, plans and acts (here: "
            "remove-node for the 5 dead nodes); the command's Pending/InProgress events cost none",
            f"start {rec[0]['start_calls']}; Success: "
            + ", ".join(f"{k} {v}" for k, v in sorted(rec[0]["ops"].items())),
        )
    )


if __name__ == "__main__":  # the child world_part starts: RUNS OUT [PROFILE]
    sys.exit(world_child(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]) if sys.argv[3:] else None))
