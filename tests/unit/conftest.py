"""Unit-test fixtures: fake AWS env (no real credentials reachable), moto, wire-level fakes for what
moto lacks, the handlers loaded fresh per test, and a ``world`` that drives them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from botocore.client import BaseClient
from join_world import ENV, FakeClock, Fakes, World, load_event  # noqa: F401 - re-exported

from infra import event_schemas
from infra.names import EVENT_SOURCE

# The detail-types the unit tests published (each matching its schema), for the check that every schema
# met at least one event when the whole tier ran.
PUBLISHED: set[str] = set()
_RAN: dict[str, bool] = {"whole tier": False, "deselected": False}


@pytest.fixture(autouse=True)
def aws_env():
    """Replace the whole environment: fake credentials, the contract's variables, nothing real."""
    env = {**ENV, "PATH": os.environ.get("PATH", "")}
    with mock.patch.dict(os.environ, env, clear=True):
        yield


@pytest.fixture(autouse=True)
def published_events_match_their_schemas():
    """Every event a test puts on the operators' bus (any client: moto, a stubbed one) is validated, as
    EventBridge would deliver it, against the schema of its detail-type; the test fails on a mismatch."""
    entries: list[dict[str, Any]] = []
    make_api_call = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "PutEvents":
            entries.extend(e for e in params.get("Entries", []) if e.get("Source") == EVENT_SOURCE)
        return make_api_call(client, operation, params)

    with mock.patch.object(BaseClient, "_make_api_call", recording):
        yield
    problems = []
    for number, entry in enumerate(entries):
        event = event_schemas.delivered(
            entry, event_id=f"published-{number}", account="123456789012", region="eu-west-1",
            time="2026-12-01T00:00:00Z",
        )  # fmt: skip
        found = event_schemas.violations(event)
        problems.extend(found)
        if not found:
            PUBLISHED.add(entry["DetailType"])
    assert problems == [], "published events that do not match their schema:\n" + "\n".join(problems)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(clock, capsys):
    from moto import mock_aws

    with mock_aws():
        w = World(clock, capsys)
        w.setup()
        try:
            yield w
        finally:
            w.teardown()


@pytest.fixture
def cluster(world):
    """Three joined managers and a worker; a reconcile pass has saved the swarm view."""
    managers = world.managers(3)
    workers = world.workers(1)
    nodes = {i: world.join(i) for i in managers + workers}
    world.settle()
    world.reconcile_pass()
    return managers, workers, nodes


@pytest.fixture
def manager(world):
    """A cluster with one joined manager."""
    (m,) = world.managers(1)
    world.join(m)
    return m


def pytest_configure(config):
    # Handlers whose decision counts no metric flush an empty metric set: Powertools warns, correctly.
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish:UserWarning")


def pytest_collection_finish(session: pytest.Session) -> None:
    here = Path(__file__).parent
    collected = {Path(item.path) for item in session.items}
    _RAN["whole tier"] = set(here.glob("test_*.py")) <= collected and not _RAN["deselected"]


def pytest_deselected(items: list[pytest.Item]) -> None:
    _RAN["deselected"] = True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """When every unit test ran and passed: each schema met at least one event the tests published."""
    if not _RAN["whole tier"] or exitstatus != 0:
        return
    never = sorted(set(event_schemas.load()) - PUBLISHED)
    if never:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"no unit test published an event of: {', '.join(never)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
