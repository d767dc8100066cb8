"""The whole app: `python app.py` offline, cdk-nag clean, cfn-lint clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from cfnlint.api import lint
from infra_synth import REPO


def test_app_py_synthesizes_offline_without_credentials_within_a_minute(tmp_path):
    # Given a scrubbed environment: no AWS_* variables, no CDK CLI context
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env["CDK_OUTDIR"] = str(tmp_path / "out")
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    # When app.py runs as a plain script, from another working directory
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(REPO / "app.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    # Then it succeeds quickly and writes the cluster's template
    assert result.returncode == 0, result.stderr[-3000:]
    assert elapsed < 60
    template = json.loads((tmp_path / "out" / "swarmkeeper-demo.template.json").read_text())
    assert "AWS::AutoScaling::AutoScalingGroup" in {r["Type"] for r in template["Resources"].values()}


def test_bad_context_stops_the_app_with_a_clear_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env["CDK_OUTDIR"] = str(tmp_path / "out")
    env["CDK_CONTEXT_JSON"] = json.dumps({"managerCount": 4})  # as the CDK CLI passes `-c managerCount=4`
    result = subprocess.run(
        [sys.executable, str(REPO / "app.py")], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "'managerCount' = 4" in result.stderr and "quorum" in result.stderr
    assert "Traceback" not in result.stderr


def test_cdk_nag_leaves_no_unacknowledged_finding(demo, variant):
    # Given both synths passed (ValidationFailed would have raised in the fixture)
    for synth in (demo, variant):
        report_file = synth.outdir / "validation-report.json"
        if report_file.exists():
            report = json.loads(report_file.read_text())
            # Then no plugin reports a violation
            assert [v for p in report["pluginReports"] for v in p.get("violations", [])] == []


def test_every_acknowledgment_has_a_specific_reason(demo):
    metadata = json.loads((demo.outdir / f"{demo.stack_name}.metadata.json").read_text())
    acks = [
        (path, entry["data"])
        for path, entries in metadata.items()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
    ]
    nag = [
        (path, rule, reason)
        for path, data in acks
        for rule, reason in data.items()
        if "AwsSolutions-" in rule
    ]
    assert nag
    for path, rule, reason in nag:
        # one rule (or one finding of it) per acknowledgment, on a specific construct, with a real reason
        assert path.count("/") >= 2, (path, rule)
        assert len(str(reason)) > 60, (path, rule, reason)


def test_cfn_lint_finds_no_errors(demo, variant):
    for synth in (demo, variant):
        template = (synth.outdir / f"{synth.stack_name}.template.json").read_text()
        # errors and warnings (informational I-rules are off by default in the CLI too); W3005 is CDK's
        # redundant DependsOn and harmless
        # (as the CLI by default: region us-east-1; instance types are checked per region)
        findings = [
            m for m in lint(template, regions=["us-east-1"]) if m.rule.id[0] in "EW" and m.rule.id != "W3005"
        ]
        assert findings == [], "\n".join(f"{m.rule.id} {m.message[:200]} ({m.path})" for m in findings)
