"""Function workers: only the function's own code, layer and environment; async retries then the DLQ."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lab.lambdas import FunctionSpec, LambdaKnobs, LambdaService

HANDLER = """
import json, os, sys
COUNT = 0
def lambda_handler(event, context):
    global COUNT
    COUNT += 1
    if event.get("fail"):
        raise RuntimeError("boom")
    if event.get("import"):
        __import__(event["import"])
    return {"path": sys.path, "env": dict(os.environ), "cwd": os.getcwd(), "count": COUNT,
            "remaining": context.get_remaining_time_in_millis(), "name": context.function_name}
"""


@pytest.fixture
def service(tmp_path: Path):
    code = tmp_path / "fn"
    code.mkdir()
    (code / "handler.py").write_text(HANDLER)
    layer = tmp_path / "layer" / "python"
    layer.mkdir(parents=True)
    spec = FunctionSpec(
        name="swarmkeeper-t-fn",
        logical_id="Fn",
        arn="arn:aws:lambda:eu-west-1:1:function:fn",
        code_dir=code,
        layer_dirs=[layer],
        handler="handler.lambda_handler",
        environment={"CLUSTER_NAME": "t"},
        timeout=10,
    )
    dead: list[tuple[str, dict, str]] = []
    svc = LambdaService(
        {spec.name: spec},
        {"AWS_DEFAULT_REGION": "eu-west-1"},
        tmp_path / "logs",
        lambda rid, s, event, reply, error: dead.append((rid, event, error)),
        LambdaKnobs(retry_delays=(0.1, 0.1), concurrency=1),
    )
    yield svc, spec, dead
    svc.close()


def test_worker_sees_only_its_code_layer_and_environment(service, monkeypatch):
    svc, spec, _ = service
    monkeypatch.setenv("LAB_PARENT_ONLY", "must-not-leak")
    reply = svc.invoke(spec.name, {})
    assert reply["ok"], reply
    result = reply["result"]
    assert result["path"][:2] == [str(spec.code_dir), str(spec.layer_dirs[0])]
    assert str(Path(__file__).resolve().parents[2]) not in result["path"]  # not the repo
    assert "LAB_PARENT_ONLY" not in result["env"]
    assert result["env"]["CLUSTER_NAME"] == "t"
    assert result["env"]["AWS_LAMBDA_FUNCTION_NAME"] == spec.name
    assert result["cwd"] == str(spec.code_dir)
    assert 0 < result["remaining"] <= 10_000
    # Warm: the second invocation reuses the module's globals
    assert svc.invoke(spec.name, {})["result"]["count"] == 2


def test_the_repo_layout_is_not_importable(service):
    svc, spec, _ = service
    reply = svc.invoke(spec.name, {"import": "lab"})
    assert not reply["ok"] and reply["errorType"] == "ModuleNotFoundError"


def test_async_failure_retries_twice_then_dead_letters(service):
    svc, spec, dead = service
    svc.invoke_async(spec.arn, {"fail": True, "n": 1})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not dead:
        time.sleep(0.05)
    assert [r.attempt for r in svc.records] == [1, 2, 3]
    assert len(dead) == 1 and dead[0][1] == {"fail": True, "n": 1} and "boom" in dead[0][2]
    assert svc.idle()


def test_emf_lines_reach_the_log_callback(tmp_path: Path):
    code = tmp_path / "fn"
    code.mkdir()
    (code / "handler.py").write_text("import json\ndef h(e, c):\n    print(json.dumps({'_aws': 1}))\n")
    lines: list[str] = []
    spec = FunctionSpec("f", "F", "arn:f", code, [], "handler.h", {}, timeout=5)
    svc = LambdaService(
        {"f": spec}, {}, tmp_path / "logs", lambda *a: None, on_line=lambda s, line: lines.append(line)
    )
    try:
        assert svc.invoke("f", {})["ok"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("_aws" in x for x in lines):
            time.sleep(0.05)
        assert any(json.loads(x) == {"_aws": 1} for x in lines if x.startswith("{"))
    finally:
        svc.close()
