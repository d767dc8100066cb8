"""RECONCILE_DOWN_GRACE_SECONDS: the grace a Down node on a running instance gets before reconcile marks
the instance Unhealthy, read by every function (the reconcile plan runs in command_status)."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
from join_world import ENV

from swarmkeeper.settings import RuntimeSettings, SettingsError


def test_down_grace_defaults_to_ten_minutes_when_unset():
    # Given the stack's environment without the variable, When parsed, Then the grace is 600 s
    assert "RECONCILE_DOWN_GRACE_SECONDS" not in ENV
    assert RuntimeSettings.from_env(ENV).reconcile_down_grace_seconds == 600
    blank = RuntimeSettings.from_env({**ENV, "RECONCILE_DOWN_GRACE_SECONDS": ""})
    assert blank.reconcile_down_grace_seconds == 600


def test_down_grace_is_read_from_the_environment():
    s = RuntimeSettings.from_env({**ENV, "RECONCILE_DOWN_GRACE_SECONDS": "5"})
    assert s.reconcile_down_grace_seconds == 5


@pytest.mark.parametrize("value", ["0", "soon", "-3", "90000"])
def test_a_malformed_down_grace_is_named(value):
    with pytest.raises(SettingsError, match="RECONCILE_DOWN_GRACE_SECONDS"):
        RuntimeSettings.from_env({**ENV, "RECONCILE_DOWN_GRACE_SECONDS": value})


def test_the_reconcile_plan_uses_the_configured_grace():
    # Given a function whose environment sets the grace, When the runtime is wired, Then reconcile plans
    # with it (not with the 10-minute default)
    from swarmkeeper.runtime import Runtime  # imported late, like the handlers (fresh per test)

    settings = RuntimeSettings.from_env({**ENV, "RECONCILE_DOWN_GRACE_SECONDS": "7"})
    session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    rt = Runtime.build(settings, session)
    assert rt.reconcile.plan_settings.down_grace == timedelta(seconds=7)
    default = Runtime.build(RuntimeSettings.from_env(ENV), session)
    assert default.reconcile.plan_settings.down_grace == timedelta(minutes=10)
