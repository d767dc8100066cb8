"""Synthesis helpers for the infrastructure tests (a uniquely named module: tests/unit has a conftest too)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App
from aws_cdk.assertions import Template

import app as cdk_app

REPO = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO / "tests" / "events"

VARIANT_CONTEXT = {
    "clusterName": "blue",
    "managerCount": "5",
    "workerSpot": "true",
    "vpcId": "vpc-0a1b2c3d4e5f60718",
    "subnetIds": "subnet-0aaaaaaaaaaaaaaa1,subnet-0bbbbbbbbbbbbbbb2,subnet-0ccccccccccccccc3",
    "amiId": "ami-0123456789abcdef0",
    "managerInstanceType": "m7i.large",
    "workerInstanceType": "c7i.large",
    "lambdaArchitecture": "x86_64",
    "rebalanceDrainWorkers": "false",
    "containerLogs": "false",
    "loadBalancerScheme": "internal",
    "loadBalancerClientCidr": "10.20.0.0/16",
}


@dataclass(frozen=True)
class Synth:
    outdir: Path
    stack_name: str
    raw: dict[str, Any]
    template: Template

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.raw["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.resources.items() if r["Type"] == cfn_type}

    def logical_id(self, cfn_type: str, prefix: str) -> str:
        """The one resource of ``cfn_type`` whose logical id starts with ``prefix`` (its construct path)."""
        (found,) = [k for k in self.of_type(cfn_type) if k.startswith(prefix)]
        return found

    @property
    def output_bucket_id(self) -> str:
        return self.logical_id("AWS::S3::Bucket", "StateCommandOutput")

    @property
    def stacks_bucket_id(self) -> str:
        return self.logical_id("AWS::S3::Bucket", "StacksBucket")

    def rule(self, name: str) -> dict[str, Any]:
        (rule,) = [
            r for r in self.of_type("AWS::Events::Rule").values() if r["Properties"].get("Name") == name
        ]
        return rule


def synthesize(outdir: Path, overrides: dict[str, Any] | None = None) -> Synth:
    context = {**cdk_app.cdk_json_context(), **(overrides or {})}
    application = App(outdir=str(outdir), context=context)
    stack = cdk_app.build(application)
    application.synth()  # runs cdk-nag: raises ValidationFailed on any unacknowledged finding
    raw = json.loads((outdir / f"{stack.stack_name}.template.json").read_text())
    return Synth(outdir, stack.stack_name, raw, Template.from_json(raw))


def load_event(kind: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{kind}.json").read_text())
