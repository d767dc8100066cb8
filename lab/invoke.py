"""Lambda's Invoke API for the lab's functions, which moto's server cannot run: an HTTP endpoint on
loopback that a client reaches through boto3's service-specific endpoint variable
(``AWS_ENDPOINT_URL_LAMBDA``), answering as the Lambda API reference documents ``Invoke``
(``POST /2015-03-31/functions/{FunctionName}/invocations``):

- ``X-Amz-Invocation-Type: RequestResponse`` (the default): the function runs now, in the lab's
  warm workers (lab.lambdas), and the answer is 200 with the function's response as the payload and
  ``X-Amz-Executed-Version: $LATEST``; a function that raised (or timed out) is still a 200, with
  ``X-Amz-Function-Error: Unhandled`` and the error object (errorMessage, errorType, stackTrace) as
  the payload;
- ``Event``: queued for the function as an EventBridge delivery is (two retries, then its
  dead-letter destination), and the answer is 202 with no payload;
- ``DryRun``: 204, nothing runs;
- a function name (``NAME``, ``NAME:QUALIFIER``), ARN or partial ARN (``123456789012:function:NAME``)
  of no function of the stack, or a qualifier other than ``$LATEST``: 404 ResourceNotFoundException;
  a payload that is not JSON: 400 InvalidRequestContentException; a synchronous payload over 6 MB:
  413 RequestTooLargeException; another invocation type: 400 ValidationException.

Errors carry ``x-amzn-ErrorType`` and a JSON body ``{"Type": "User", "message": ...}``, which botocore
turns into a ClientError with that code. Any other path of the Lambda API is 404 UnknownOperation."""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("lab.invoke")

INVOKE_PATH = re.compile(r"/2015-03-31/functions/(?P<function>[^/]+)/invocations")
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # bytes, the synchronous invocation's request payload quota
LATEST = "$LATEST"
# NAME, NAME:QUALIFIER, ACCOUNT:function:NAME[:QUALIFIER]: the forms Invoke's FunctionName takes
_PARTIAL_ARN = re.compile(
    r"(?:(?:(?P<account>\d{12}):)?function:)?(?P<name>[A-Za-z0-9_-]+)(?::(?P<qualifier>.+))?"
)
_FULL_ARN = re.compile(
    r"arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:(?P<name>[A-Za-z0-9_-]+)"
    r"(?::(?P<qualifier>.+))?"
)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _error(status: int, code: str, message: str) -> Answer:
    body = json.dumps({"Type": "User", "message": message}).encode()
    return Answer(status, {"x-amzn-ErrorType": code, "Content-Type": "application/json"}, body)


class Invoke:
    """What each Invoke request comes to, given the names of the stack's functions and the lab's two
    ways of running one: ``run(name, event)`` now (its worker's reply, as lab.lambdas gives it) and
    ``queue(name, event)`` as an asynchronous delivery (its request id)."""

    def __init__(
        self,
        functions: Collection[str],
        run: Callable[[str, dict[str, Any]], dict[str, Any]],
        queue: Callable[[str, dict[str, Any]], str],
        region: str,
        account: str,
    ):
        self.functions = frozenset(functions)
        self.run = run
        self.queue = queue
        self.region = region
        self.account = account

    def _function(self, named: str, qualifier: str | None) -> str | None:
        """The stack's function ``named`` (a name, an ARN or a partial ARN) at ``qualifier``, or None."""
        full = _FULL_ARN.fullmatch(named)
        partial = None if full else _PARTIAL_ARN.fullmatch(named)
        if full and full["region"] != self.region:
            return None
        found = full or partial
        name = found["name"] if found else named
        if found and found["account"] not in (None, self.account):
            return None
        in_name = found["qualifier"] if found else None
        if any(asked not in (None, LATEST) for asked in (in_name, qualifier)):
            return None  # the lab publishes no versions and no aliases
        return name if name in self.functions else None

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        url = urlsplit(target)
        matched = INVOKE_PATH.fullmatch(url.path)
        if method != "POST" or not matched:
            return _error(404, "UnknownOperationException", f"no such operation: {method} {url.path}")
        named = unquote(matched["function"])
        qualifier = (parse_qs(url.query).get("Qualifier") or [None])[0]
        name = self._function(named, qualifier)
        if name is None:
            shown = named if named.startswith("arn:") else self._arn(named)
            suffix = f":{qualifier}" if qualifier else ""
            return _error(404, "ResourceNotFoundException", f"Function not found: {shown}{suffix}")
        kind = {k.lower(): v for k, v in headers.items()}.get("x-amz-invocation-type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            return _error(
                400,
                "ValidationException",
                f"1 validation error detected: Value '{kind}' at 'invocationType' failed to satisfy "
                "constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
            )
        if kind == "RequestResponse" and len(body) > SYNC_PAYLOAD_LIMIT:
            return _error(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {SYNC_PAYLOAD_LIMIT} bytes for the InvokeFunction operation",
            )
        try:
            event = json.loads(body) if body.strip() else {}
        except ValueError as err:
            return _error(
                400, "InvalidRequestContentException", f"Could not parse request body into json: {err}"
            )
        request_id = str(uuid.uuid4())
        if kind == "DryRun":
            return Answer(204, {"x-amzn-RequestId": request_id})
        if kind == "Event":
            request_id = self.queue(name, event)
            return Answer(202, {"x-amzn-RequestId": request_id})
        reply = self.run(name, event)
        answered = {"x-amzn-RequestId": request_id, "X-Amz-Executed-Version": LATEST}
        answered["Content-Type"] = "application/json"
        if reply.get("ok"):
            return Answer(200, answered, json.dumps(reply.get("result")).encode())
        error = {
            "errorMessage": str(reply.get("errorMessage", "")),
            "errorType": str(reply.get("errorType", "Unhandled")),
            "requestId": request_id,
            "stackTrace": list(reply.get("stackTrace") or []),
        }
        return Answer(200, {**answered, "X-Amz-Function-Error": "Unhandled"}, json.dumps(error).encode())

    def _arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"


class InvokeEndpoint:
    """``Invoke`` served over HTTP on 127.0.0.1 (a free port); ``url`` is what a client is pointed at."""

    def __init__(self, invoke: Invoke):
        self.invoke = invoke
        answer = invoke.answer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    reply = answer(self.command, self.path, dict(self.headers.items()), body)
                except Exception as err:  # the lab's own failure, answered as Lambda's ServiceException
                    log.exception("invoke %s", self.path)
                    reply = _error(500, "ServiceException", f"lab: {type(err).__name__}: {err}")
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_POST = do_GET = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("invoke: " + format, *args)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="lambda-invoke", daemon=True)

    def start(self) -> InvokeEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
