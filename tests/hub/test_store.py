"""The store's guarantees: retention purge, lease ownership, reclaiming abandoned leases."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.clock import utcnow
from gateway.store import submissions as store
from gateway.store.engine import Database
from gateway.store.migrate import upgrade_async
from gateway.store.models import ERROR, RESPONSE
from tests.hub.rows import submission


@pytest.fixture
async def db(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    await upgrade_async(url)
    database = Database.open(url)
    yield database
    await database.aclose()


row = submission


async def test_answered_records_are_purged_after_retention(db: Database) -> None:
    await store.insert(db, row("A" * 32))
    await store.insert(db, row("B" * 32))
    now = utcnow()
    [a, b] = sorted(
        await store.claim(db, owner="me", limit=5, now=now, lease=timedelta(seconds=30)),
        key=lambda s: s.correlation_id,
    )
    assert await store.answer(
        db,
        a.correlation_id,
        owner="me",
        final=store.FinalAnswer(RESPONSE, b"<r/>"),
        now=now,
        keep_for=timedelta(days=60),
    )
    assert await store.answer(
        db,
        b.correlation_id,
        owner="me",
        final=store.FinalAnswer(ERROR, errors=[]),
        now=now,
        keep_for=timedelta(days=30),
    )
    assert await store.purge(db, now + timedelta(days=29)) == 0
    assert await store.purge(db, now + timedelta(days=31)) == 1
    assert await store.get(db, "B" * 32) is None
    assert await store.get(db, "A" * 32) is not None
    assert await store.purge(db, now + timedelta(days=61)) == 1
    assert await store.get(db, "A" * 32) is None


async def test_pending_records_are_never_purged_even_when_deleted(db: Database) -> None:
    await store.insert(db, row("C" * 32))
    assert await store.mark_deleted(db, "C" * 32, utcnow())
    assert await store.purge(db, utcnow() + timedelta(days=365)) == 0
    # Still claimable: the back office receives what the client deleted early.
    claimed = await store.claim(db, owner="me", limit=1, now=utcnow(), lease=timedelta(seconds=30))
    assert [s.correlation_id for s in claimed] == ["C" * 32]


async def test_only_the_lease_holder_may_answer(db: Database) -> None:
    await store.insert(db, row("D" * 32))
    now = utcnow()
    await store.claim(db, owner="first", limit=1, now=now, lease=timedelta(seconds=1))
    # The first owner stalls past its lease; another process takes the work over.
    later = now + timedelta(seconds=2)
    [taken] = await store.claim(db, owner="second", limit=1, now=later, lease=timedelta(seconds=30))
    assert taken.attempts == 2
    stale = await store.answer(
        db,
        "D" * 32,
        owner="first",
        final=store.FinalAnswer(RESPONSE, b"<old/>"),
        now=later,
        keep_for=timedelta(days=1),
    )
    assert not stale
    assert await store.answer(
        db,
        "D" * 32,
        owner="second",
        final=store.FinalAnswer(RESPONSE, b"<new/>"),
        now=later,
        keep_for=timedelta(days=1),
    )
    record = await store.get(db, "D" * 32)
    assert record is not None and record.response_body == b"<new/>"


async def test_live_lease_is_not_claimed_twice(db: Database) -> None:
    await store.insert(db, row("E" * 32))
    now = utcnow()
    assert len(await store.claim(db, owner="a", limit=5, now=now, lease=timedelta(seconds=30))) == 1
    assert (
        await store.claim(
            db, owner="b", limit=5, now=now + timedelta(seconds=5), lease=timedelta(seconds=30)
        )
        == []
    )
