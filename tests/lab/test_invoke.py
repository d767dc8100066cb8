"""The lab's Lambda Invoke (lab/invoke.py) answers boto3 as the Invoke API does: RequestResponse runs the
function in its warm worker and returns its response (or its error with FunctionError), Event queues
it as an asynchronous delivery (202), DryRun runs nothing (204), and an unknown function, a bad
payload or a bad invocation type are the documented errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from lab.invoke import Invoke, InvokeEndpoint
from lab.lambdas import FunctionSpec, LambdaService

REGION, ACCOUNT = "eu-west-1", "123456789012"
NAME = "swarmkeeper-t-reconcile"
ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{NAME}"
HANDLER = """
def lambda_handler(event, context):
    if event.get("fail"):
        raise RuntimeError("boom")
    return {"outcome": "reconcile", "id": event.get("id"), "request": context.aws_request_id}
"""


@pytest.fixture
def service(tmp_path: Path):
    code = tmp_path / "fn"
    code.mkdir()
    (code / "handler.py").write_text(HANDLER)
    spec = FunctionSpec(NAME, "Reconcile", ARN, code, [], "handler.lambda_handler", {}, timeout=10)
    lambdas = LambdaService({NAME: spec}, {}, tmp_path / "logs", lambda *args: None)
    yield lambdas
    lambdas.close()


@pytest.fixture
def endpoint(service):
    invoke = Invoke(
        service.specs,
        lambda name, event: service.invoke(name, event, kind="sync"),
        service.invoke_async,
        REGION,
        ACCOUNT,
    )
    served = InvokeEndpoint(invoke).start()
    yield served
    served.stop()


@pytest.fixture
def client(endpoint, monkeypatch):
    # Reached as the CLI reaches it: boto3's service-specific endpoint variable, no endpoint_url
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", endpoint.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIALABFAKEFAKEFAKE0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake")
    return boto3.client("lambda", region_name=REGION, config=Config(retries={"max_attempts": 1}))


def _until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)
    return predicate()


def test_request_response_runs_the_function_and_returns_its_response(client, service):
    # Given the stack's function / When it is invoked synchronously by name
    answer = client.invoke(FunctionName=NAME, Payload=json.dumps({"id": "c-1"}).encode())

    # Then the function ran in its worker and its response is the payload
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    assert answer["ExecutedVersion"] == "$LATEST"
    body = json.loads(answer["Payload"].read())
    assert body["outcome"] == "reconcile" and body["id"] == "c-1"
    assert [(r.function, r.kind, r.ok) for r in service.records] == [(NAME, "sync", True)]


def test_a_function_that_raises_answers_200_with_the_error_and_function_error(client):
    # Given a payload the function fails on / When it is invoked synchronously
    answer = client.invoke(FunctionName=NAME, InvocationType="RequestResponse", Payload=b'{"fail": true}')

    # Then the call succeeds, FunctionError says so and the payload is the error object
    assert answer["StatusCode"] == 200 and answer["FunctionError"] == "Unhandled"
    error = json.loads(answer["Payload"].read())
    assert error["errorType"] == "RuntimeError" and error["errorMessage"] == "boom"
    assert error["stackTrace"] and error["requestId"]


def test_event_queues_the_function_and_answers_202_at_once(client, service):
    # When the function is invoked asynchronously, by its ARN
    answer = client.invoke(FunctionName=ARN, InvocationType="Event", Payload=b'{"id": "c-2"}')

    # Then the answer is 202 with no payload, and the function runs as an asynchronous delivery
    assert answer["StatusCode"] == 202 and answer["Payload"].read() == b""
    assert _until(lambda: [(r.kind, r.ok) for r in service.records] == [("async", True)])


def test_dry_run_answers_204_and_runs_nothing(client, service):
    answer = client.invoke(FunctionName=NAME, InvocationType="DryRun")
    assert answer["StatusCode"] == 204
    assert service.records == []


@pytest.mark.parametrize(
    "named",
    [
        "swarmkeeper-t-nothing",
        f"arn:aws:lambda:{REGION}:210987654321:function:{NAME}",  # another account's
        f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{NAME}",  # another region's
        f"{NAME}:7",  # a version the lab has not published
        f"{ACCOUNT}:function:{NAME}:live",  # nor an alias
    ],
)
def test_an_unknown_function_is_resource_not_found(client, service, named):
    # Given no such function (or version) / When it is invoked / Then Lambda's 404 error, nothing ran
    with pytest.raises(ClientError) as raised:
        client.invoke(FunctionName=named, Payload=b"{}")
    error = raised.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "Function not found" in error["Error"]["Message"]
    assert service.records == []


@pytest.mark.parametrize(
    ("named", "qualifier"),
    [(f"{ACCOUNT}:function:{NAME}", "$LATEST"), (f"{NAME}:$LATEST", None), (ARN, None)],
)
def test_the_function_is_found_by_name_arn_or_partial_arn_at_latest(client, named, qualifier):
    extra = {"Qualifier": qualifier} if qualifier else {}
    answer = client.invoke(FunctionName=named, Payload=b"{}", **extra)
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer


def test_a_qualifier_other_than_latest_is_resource_not_found(client):
    with pytest.raises(ClientError) as raised:
        client.invoke(FunctionName=NAME, Qualifier="3", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_payload_that_is_not_json_is_refused(client, service):
    with pytest.raises(ClientError) as raised:
        client.invoke(FunctionName=NAME, Payload=b"{not json")
    assert raised.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert service.records == []


def test_an_unknown_invocation_type_is_refused(client, service):
    with pytest.raises(ClientError) as raised:
        client.invoke(FunctionName=NAME, InvocationType="Later", Payload=b"{}")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert service.records == []


def test_a_synchronous_payload_over_6_mb_is_refused(client, service):
    payload = json.dumps({"pad": "x" * (6 * 1024 * 1024)}).encode()
    with pytest.raises(ClientError) as raised:
        client.invoke(FunctionName=NAME, Payload=payload)
    assert raised.value.response["Error"]["Code"] == "RequestTooLargeException"
    assert service.records == []
