"""Group commit: concurrent writes share a transaction, yet each caller hears only of its own
write, and only once it is committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.exc import IntegrityError

from gateway.store import submissions as store
from gateway.store.engine import Database
from tests.hub.rows import submission


@pytest.fixture
def url(migrated_url: str) -> str:
    return migrated_url


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    database = Database.open(url)
    yield database
    await database.aclose()


row = submission


def cid(n: int) -> str:
    return f"{n:032X}"


async def test_every_concurrent_insert_is_committed_when_it_returns(db: Database, url: str) -> None:
    other = Database.open(url)  # another connection: sees only what is committed
    try:

        async def insert_then_look(n: int) -> bool:
            await store.insert(db, row(cid(n)))
            return await store.get(other, cid(n)) is not None

        seen = await asyncio.gather(*(insert_then_look(n) for n in range(64)))
    finally:
        await other.aclose()
    assert seen == [True] * 64


async def test_a_failing_write_fails_only_its_own_caller(db: Database) -> None:
    await store.insert(db, row(cid(7)))
    results = await asyncio.gather(
        *(store.insert(db, row(cid(n))) for n in range(1, 13)), return_exceptions=True
    )
    failed = [n for n, r in zip(range(1, 13), results, strict=True) if isinstance(r, Exception)]
    assert failed == [7]
    assert isinstance(results[6], IntegrityError)
    for n in range(1, 13):
        assert await store.get(db, cid(n)) is not None


async def test_a_cancelled_caller_does_not_undo_its_neighbours(db: Database) -> None:
    tasks = [asyncio.create_task(store.insert(db, row(cid(n)))) for n in range(20)]
    await asyncio.sleep(0)
    tasks[3].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [n for n, r in enumerate(results) if r is not None] == [3]
    for n in range(20):
        if n != 3:
            assert await store.get(db, cid(n)) is not None


async def test_closing_the_database_waits_for_queued_writes(url: str) -> None:
    db = Database.open(url)
    tasks = [asyncio.create_task(store.insert(db, row(cid(n)))) for n in range(30)]
    await asyncio.sleep(0)
    await db.aclose()
    assert all(t.done() and t.exception() is None for t in tasks)
    reopened = Database.open(url)
    try:
        assert all([await store.get(reopened, cid(n)) is not None for n in range(30)])
    finally:
        await reopened.aclose()
