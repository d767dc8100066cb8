"""Synthesize the app once per session (a few seconds each) and share the templates.

`demo` is the app exactly as `python app.py` builds it from cdk.json; `variant` overrides the context
the way `cdk -c key=value` would (strings), to cover existing-VPC, Spot, x86_64 and a fixed AMI.
"""

from __future__ import annotations

import pytest
from infra_synth import VARIANT_CONTEXT, Synth, synthesize


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(tmp_path_factory.mktemp("cdk-demo"))


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(tmp_path_factory.mktemp("cdk-variant"), VARIANT_CONTEXT)
