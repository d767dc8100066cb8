#!/usr/bin/env python3
"""swarmkeeper CDK app: one stack per cluster, configured from cdk.json context (or `-c key=value`).

`python app.py` writes `cdk.out/swarmkeeper-<clusterName>.template.json` offline, without credentials:
the stack is environment-agnostic and makes no lookups; cdk-nag (AwsSolutions) runs on every synth.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# The stack's names come from the layer's domain (swarmkeeper.domain.names): this checkout's layer,
# ahead of any installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent / "layers" / "swarmkeeper" / "python"))

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.settings import ClusterSettings, SettingsError
from infra.stack import SwarmkeeperStack


def build(app: App) -> SwarmkeeperStack:
    settings = ClusterSettings.from_context(app.node)
    stack = SwarmkeeperStack(app, settings=settings)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


def cdk_json_context() -> dict:
    """cdk.json's context, for `python app.py` run without the CDK CLI (the CLI passes it itself)."""
    if "CDK_CONTEXT_JSON" in os.environ:
        return {}
    return json.loads((Path(__file__).resolve().parent / "cdk.json").read_text()).get("context", {})


def main() -> None:
    app = App(outdir=os.environ.get("CDK_OUTDIR", "cdk.out"), context=cdk_json_context())
    try:
        build(app)
    except SettingsError as error:
        raise SystemExit(f"swarmkeeper: {error}") from None
    app.synth()


if __name__ == "__main__":
    main()
