"""Lambda, as far as the control plane can tell: warm workers, async retries, DLQ, SQS polling.

Each function runs in its own warm worker process started with ``python -I -S``: ``sys.path`` holds
only the function's code directory, its layer(s) and the venv's site-packages (standing in for the
runtime's boto3 and the Powertools layer); the environment holds only the function's environment
from the template plus what the Lambda runtime sets. A handler that leans on the repo layout, on the
lab's environment or on another function's globals fails here as it would in AWS.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("lab.lambdas")

# The worker: import the handler once (cold start), then serve invocations read from stdin, one
# JSON object a line; answer on a separate pipe (fd in argv[3]) so the handler's own stdout
# stays its log stream.
_BOOT = r"""
import json, os, sys, time, traceback
sys.path[:0] = json.loads(sys.argv[1])
handler_spec = sys.argv[2]
out = os.fdopen(int(sys.argv[3]), "w", buffering=1)
module_name, _, func_name = handler_spec.rpartition(".")
init_error = None
try:
    import importlib
    handler = getattr(importlib.import_module(module_name), func_name)
except BaseException as e:
    kind = "Runtime.ImportModuleError" if isinstance(e, ImportError) else type(e).__name__
    init_error = {"errorType": kind,
                  "errorMessage": f"Unable to import module '{module_name}': {e}",
                  "stackTrace": traceback.format_exc().splitlines()}
    traceback.print_exc()


class Context:
    def __init__(self, req):
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = req["arn"]
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = req["requestId"]
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + float(req["timeout"])

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


out.write(json.dumps({"ready": True, "initError": init_error}) + "\n")
for line in sys.stdin:
    req = json.loads(line)
    print(f"START RequestId: {req['requestId']} Version: $LATEST", flush=True)
    started = time.monotonic()
    if init_error:
        reply = {"ok": False, **init_error}
    else:
        try:
            result = handler(req["event"], Context(req))
            reply = {"ok": True, "result": json.loads(json.dumps(result, default=str))}
        except BaseException as e:
            traceback.print_exc()
            reply = {"ok": False, "errorType": type(e).__name__, "errorMessage": str(e),
                     "stackTrace": traceback.format_exc().splitlines()}
    sys.stdout.flush()
    sys.stderr.flush()
    ms = (time.monotonic() - started) * 1000
    rid = req["requestId"]
    print(f"END RequestId: {rid}\nREPORT RequestId: {rid}\tDuration: {ms:.2f} ms", flush=True)
    out.write(json.dumps(reply) + "\n")
"""


@dataclass
class FunctionSpec:
    name: str
    logical_id: str
    arn: str
    code_dir: Path
    layer_dirs: list[Path]
    handler: str
    environment: dict[str, str]
    timeout: float = 3.0
    memory: int = 128
    dead_letter_arn: str | None = None
    on_failure_arn: str | None = None
    max_retries: int = 2


@dataclass
class Invocation:
    function: str
    request_id: str
    detail_type: str
    attempt: int
    ok: bool
    error: str | None
    started: float
    duration: float
    kind: str = "async"


@dataclass
class LambdaKnobs:
    retry_delays: tuple[float, ...] = (1.0, 2.0)  # AWS: about 1 and 2 minutes
    concurrency: int = 2  # warm workers per function, started on demand
    timeout_scale: float = 1.0


class Worker:
    """One warm execution environment of one function."""

    def __init__(self, spec: FunctionSpec, base_env: dict[str, str], log_dir: Path, on_line: Callable):
        self.spec = spec
        self.environment = dict(spec.environment)  # as it was at this worker's cold start
        self.busy = False
        self.invocations = 0
        read_fd, write_fd = os.pipe()
        site = sysconfig.get_paths()["purelib"]
        paths = [str(spec.code_dir), *(str(p) for p in spec.layer_dirs), site]
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"lab/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon in the lab
            **base_env,
            **self.environment,
        }
        self._log = open(log_dir / f"{spec.name}.log", "a", buffering=1)  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-B",
                "-u",
                "-c",
                _BOOT,
                json.dumps(paths),
                spec.handler,
                str(write_fd),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=spec.code_dir,
            pass_fds=(write_fd,),
            text=True,
            start_new_session=True,
        )
        os.close(write_fd)
        self._replies = os.fdopen(read_fd, "r")
        self._pump = threading.Thread(target=self._read_output, args=(on_line,), daemon=True)
        self._pump.start()
        ready = self._read_reply(timeout=60)
        if ready is None:
            self.kill()
            raise RuntimeError(f"{spec.name}: worker did not start")
        self.init_error = ready.get("initError")
        if self.init_error:
            log.error("%s: init failed: %s", spec.name, self.init_error.get("errorMessage"))

    def _read_output(self, on_line: Callable) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            with contextlib.suppress(Exception):
                on_line(self.spec, line)

    def _read_reply(self, timeout: float) -> dict | None:
        result: list[str] = []
        t = threading.Thread(target=lambda: result.append(self._replies.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not result or not result[0]:
            return None
        return json.loads(result[0])

    def call(self, event: dict, request_id: str, timeout: float) -> dict:
        assert self.proc.stdin is not None
        req = {"event": event, "requestId": request_id, "arn": self.spec.arn, "timeout": timeout}
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return {
                "ok": False,
                "errorType": "Runtime.ExitError",
                "errorMessage": "worker exited",
                "dead": True,
            }
        self.invocations += 1
        reply = self._read_reply(timeout)
        if reply is None:
            alive = self.proc.poll() is None
            self.kill()
            msg = f"Task timed out after {timeout:.2f} seconds" if alive else "Runtime exited"
            return {
                "ok": False,
                "errorType": "Sandbox.Timedout" if alive else "Runtime.ExitError",
                "errorMessage": msg,
                "dead": True,
            }
        return reply

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        with contextlib.suppress(Exception):
            self._replies.close()
        self._pump.join(timeout=2)
        with contextlib.suppress(Exception):
            self._log.close()


class LambdaService:
    """All functions of the stack: invoke (sync) and invoke_async (event) as the Lambda service does."""

    def __init__(
        self,
        specs: dict[str, FunctionSpec],
        base_env: dict[str, str],
        log_dir: Path,
        dead_letter: Callable[[str, FunctionSpec, dict, dict, str], None],
        knobs: LambdaKnobs | None = None,
        on_line: Callable[[FunctionSpec, str], None] | None = None,
    ):
        self.specs = specs
        self.base_env = base_env
        self.log_dir = log_dir
        self.dead_letter = dead_letter
        self.knobs = knobs or LambdaKnobs()
        self.on_line = on_line or (lambda spec, line: None)
        self.records: list[Invocation] = []
        self.dead_lettered: list[tuple[str, dict, str]] = []
        self._idle: dict[str, list[Worker]] = {n: [] for n in specs}
        self._all: list[Worker] = []
        self._count: dict[str, int] = dict.fromkeys(specs, 0)
        self._cv = threading.Condition()
        self._pools = {
            n: ThreadPoolExecutor(max_workers=self.knobs.concurrency, thread_name_prefix=f"lambda-{n}")
            for n in specs
        }
        self._timers: list[threading.Timer] = []
        self._pending = 0
        self._closed = False
        log_dir.mkdir(parents=True, exist_ok=True)

    def update_environment(self, name_or_arn: str, changes: dict[str, str]) -> None:
        """UpdateFunctionConfiguration of the environment: the next invocations run in fresh workers
        (warm ones with the old environment are retired once idle)."""
        spec = self.by_arn(name_or_arn)
        with self._cv:
            spec.environment = {**spec.environment, **changes}
            stale = [w for w in self._idle[spec.name] if w.environment != spec.environment]
            self._idle[spec.name] = [w for w in self._idle[spec.name] if w not in stale]
            self._count[spec.name] -= len(stale)
            self._cv.notify_all()
        for w in stale:
            w.kill()

    def by_arn(self, arn_or_name: str) -> FunctionSpec:
        for spec in self.specs.values():
            if arn_or_name in (spec.arn, spec.name, spec.logical_id):
                return spec
        raise KeyError(arn_or_name)

    def warm_up(self) -> None:
        """Start one worker per function now (cold starts before the first event, as a warm pool)."""
        with ThreadPoolExecutor(max_workers=4) as ex:
            workers = list(
                ex.map(lambda n: Worker(self.specs[n], self.base_env, self.log_dir, self.on_line), self.specs)
            )
        with self._cv:
            for w in workers:
                self._idle[w.spec.name].append(w)
                self._all.append(w)
                self._count[w.spec.name] += 1

    def _acquire(self, name: str) -> Worker:
        with self._cv:
            while True:
                if self._closed:
                    raise RuntimeError("lambda service closed")
                idle = self._idle[name]
                while idle:
                    w = idle.pop()
                    if w.alive():
                        return w
                    self._count[name] -= 1
                if self._count[name] < self.knobs.concurrency:
                    self._count[name] += 1
                    break
                self._cv.wait(timeout=1)
        try:
            w = Worker(self.specs[name], self.base_env, self.log_dir, self.on_line)
        except Exception:
            with self._cv:
                self._count[name] -= 1
            raise
        with self._cv:
            self._all.append(w)
        return w

    def _release(self, w: Worker, dead: bool) -> None:
        with self._cv:
            if dead or not w.alive() or w.environment != w.spec.environment:
                self._count[w.spec.name] -= 1
                w.kill()
            else:
                self._idle[w.spec.name].append(w)
            self._cv.notify_all()

    def invoke(
        self, name: str, event: dict, *, request_id: str | None = None, attempt: int = 1, kind: str = "sync"
    ) -> dict:
        spec = self.specs[name]
        request_id = request_id or str(uuid.uuid4())
        started = time.time()
        w = self._acquire(name)
        reply: dict[str, Any] = {}
        try:
            reply = w.call(event, request_id, spec.timeout * self.knobs.timeout_scale)
        finally:
            self._release(w, bool(reply.get("dead")) if reply else True)
        err = None if reply.get("ok") else f"{reply.get('errorType')}: {reply.get('errorMessage')}"
        self.records.append(
            Invocation(
                name,
                request_id,
                str(event.get("detail-type", "Records" if "Records" in event else "?")),
                attempt,
                bool(reply.get("ok")),
                err,
                started,
                time.time() - started,
                kind,
            )
        )
        if err:
            log.warning("%s %s attempt %d failed: %s", name, request_id, attempt, err)
        return reply

    def invoke_async(self, name_or_arn: str, event: dict) -> str:
        spec = self.by_arn(name_or_arn)
        request_id = str(uuid.uuid4())
        with self._cv:
            self._pending += 1
        self._submit(spec, event, request_id, 1)
        return request_id

    def _submit(self, spec: FunctionSpec, event: dict, request_id: str, attempt: int) -> None:
        if self._closed:
            with self._cv:
                self._pending -= 1
            return
        self._pools[spec.name].submit(self._attempt, spec, event, request_id, attempt)

    def _attempt(self, spec: FunctionSpec, event: dict, request_id: str, attempt: int) -> None:
        try:
            reply = self.invoke(spec.name, event, request_id=request_id, attempt=attempt, kind="async")
        except Exception as e:
            reply = {"ok": False, "errorType": type(e).__name__, "errorMessage": str(e)}
        if reply.get("ok"):
            with self._cv:
                self._pending -= 1
            return
        if attempt <= min(spec.max_retries, len(self.knobs.retry_delays)) and not self._closed:
            delay = self.knobs.retry_delays[attempt - 1]
            t = threading.Timer(delay, self._submit, args=(spec, event, request_id, attempt + 1))
            t.daemon = True
            self._timers.append(t)
            t.start()
            return
        error = f"{reply.get('errorType')}: {reply.get('errorMessage')}"
        self.dead_lettered.append((spec.name, event, error))
        try:
            self.dead_letter(request_id, spec, event, reply, error)
        except Exception:
            log.exception("sending %s to the dead-letter queue", request_id)
        finally:
            with self._cv:
                self._pending -= 1

    def idle(self) -> bool:
        with self._cv:
            return self._pending == 0

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for t in self._timers:
            t.cancel()
        for w in list(self._all):
            w.kill()
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._all if w.alive()]


@dataclass
class QueueSource:
    """An SQS event source mapping (the step queue)."""

    function: str
    queue_url: str
    queue_arn: str
    batch_size: int = 10
    report_failures: bool = False
    enabled: bool = True
    _stop: threading.Event = field(default_factory=threading.Event)


class QueuePoller:
    def __init__(self, service: LambdaService, sqs: Any, source: QueueSource, region: str):
        self.service = service
        self.sqs = sqs
        self.source = source
        self.region = region
        self.busy = False
        self.thread = threading.Thread(target=self._run, name=f"sqs-{source.function}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.source._stop.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        src = self.source
        while not src._stop.is_set():
            try:
                got = self.sqs.receive_message(
                    QueueUrl=src.queue_url,
                    MaxNumberOfMessages=min(10, src.batch_size),
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception as e:
                if src._stop.is_set():
                    return
                log.debug("poll %s: %s", src.queue_url, e)
                src._stop.wait(1)
                continue
            if not got:
                continue
            self.busy = True
            try:
                self._deliver(got)
            finally:
                self.busy = False

    def _deliver(self, messages: list[dict]) -> None:
        src = self.source
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    k: {
                        "stringValue": v.get("StringValue"),
                        "binaryValue": v.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": v.get("DataType"),
                    }
                    for k, v in (m.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": m.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": src.queue_arn,
                "awsRegion": self.region,
            }
            for m in messages
        ]
        try:
            reply = self.service.invoke(src.function, {"Records": records}, kind="sqs")
        except Exception:
            log.exception("sqs delivery to %s", src.function)
            return
        if not reply.get("ok"):
            return  # the batch becomes visible again after the visibility timeout, as in AWS
        failed: set[str] = set()
        result = reply.get("result")
        if src.report_failures and isinstance(result, dict):
            failed = {f.get("itemIdentifier") for f in result.get("batchItemFailures") or []}
        done = [
            {"Id": str(i), "ReceiptHandle": r["receiptHandle"]}
            for i, r in enumerate(records)
            if r["messageId"] not in failed
        ]
        if done:
            with contextlib.suppress(Exception):
                self.sqs.delete_message_batch(QueueUrl=src.queue_url, Entries=done)
