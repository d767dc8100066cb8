"""Unit-test fixtures: fake AWS env (no real credentials reachable), moto, wire-level fakes for what
moto lacks, the handlers loaded fresh per test, and a ``world`` that drives them."""

from __future__ import annotations

import os
from unittest import mock

import pytest
from join_world import ENV, FakeClock, Fakes, World, load_event  # noqa: F401 - re-exported


@pytest.fixture(autouse=True)
def aws_env():
    """Replace the whole environment: fake credentials, the contract's variables, nothing real."""
    env = {**ENV, "PATH": os.environ.get("PATH", "")}
    with mock.patch.dict(os.environ, env, clear=True):
        yield


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
