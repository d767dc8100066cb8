"""State-table locks and leases expire as read and as taken, whatever TTL did (moto never deletes an
expired item)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from join_world import TABLE, new_session
from moto import mock_aws

from swarmkeeper.adapters.clients import AwsClients
from swarmkeeper.adapters.state import LOCK_PK, MANAGER_LOCK_PK, RECONCILE_PK, ROTATION_PK, StateTable
from swarmkeeper.domain.models import ReconcilePass, RotationOp

NOW = 1_800_000_000.0
TTL = 60


@pytest.fixture
def table():
    with mock_aws():
        aws = AwsClients(new_session())
        aws.dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield StateTable(aws.dynamodb, TABLE), aws.dynamodb


@dataclass(frozen=True)
class Lease:
    pk: str
    take: Callable[[StateTable, str, float], bool]  # (table, holder, now) -> taken, until now + TTL
    held_by: Callable[[StateTable, float], str | None] | None = None  # the holder as read, if readable


def _init_holder(t: StateTable, now: float) -> str | None:
    lock = t.get_lock()
    return lock.holder if lock is not None and lock.held_by(lock.holder, now) else None


LEASES = {
    "init lock": Lease(LOCK_PK, lambda t, who, now: t.acquire_lock(who, now, now + TTL), _init_holder),
    "manager-change lock": Lease(
        MANAGER_LOCK_PK,
        lambda t, who, now: t.acquire_manager_lock(who, now, now + TTL),
        lambda t, now: t.manager_lock_holder(now),
    ),
    "reconcile pass": Lease(
        RECONCILE_PK,
        lambda t, who, now: t.start_reconcile(ReconcilePass("", who, "c", "test", (), now, now + TTL), now),
    ),
    "token rotation": Lease(
        ROTATION_PK,
        lambda t, who, now: t.start_rotation(RotationOp("", who, "", "c", now + TTL), now),
    ),
}


@pytest.mark.parametrize("name", LEASES)
def test_a_crashed_holder_blocks_the_next_one_only_until_its_lease_expires(table, name):
    t, _ = table
    lease = LEASES[name]
    # Given holder A took it, and died without releasing it (TTL never deletes the item here)
    assert lease.take(t, "i-0aaaaaaaaaaaaaaa1", NOW)

    # When B tries a second before it expires, then it is A's (as read, too)
    assert not lease.take(t, "i-0bbbbbbbbbbbbbbb2", NOW + TTL - 1)
    if lease.held_by:
        assert lease.held_by(t, NOW + TTL - 1) == "i-0aaaaaaaaaaaaaaa1"

    # When it expires, then it reads free and B takes it
    if lease.held_by:
        assert lease.held_by(t, NOW + TTL) is None
    assert lease.take(t, "i-0bbbbbbbbbbbbbbb2", NOW + TTL)
    if lease.held_by:
        assert lease.held_by(t, NOW + TTL) == "i-0bbbbbbbbbbbbbbb2"


@pytest.mark.parametrize("name", LEASES)
def test_a_lease_without_an_expiry_never_blocks(table, name):
    # Given an item left without expires_at (written by hand, or by an older writer)
    t, ddb = table
    ddb.put_item(TableName=TABLE, Item={"pk": {"S": LEASES[name].pk}, "holder": {"S": "i-0dead"}})
    # Then it reads free and can be taken
    lease = LEASES[name]
    if lease.held_by:
        assert lease.held_by(t, NOW) is None
    assert lease.take(t, "i-0bbbbbbbbbbbbbbb2", NOW)
