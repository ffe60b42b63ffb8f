"""The citizen cache: a change committed by this process applies at once; one made elsewhere
(the CLI, another worker) within CACHE_SECONDS; and a burst of lookups reads the store once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.clock import utcnow
from gateway.identity import citizens
from gateway.identity.passwords import verify_secret
from gateway.store.engine import Database
from gateway.store.models import EnrolmentRow

KEYS = {"AccountRef": "CT-1"}


@pytest.fixture
def url(migrated_url: str) -> str:
    return migrated_url


@pytest.fixture
async def db(url: str) -> AsyncIterator[Database]:
    database = Database.open(url)
    await citizens.register(database, "CITIZEN00001", "first-password")
    yield database
    await database.aclose()


class Ticks:
    """Stands in for the cache's monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> Ticks:
    clock = Ticks()
    monkeypatch.setattr(citizens, "_monotonic", clock)
    return clock


async def test_an_enrolment_added_here_authorises_at_once(db: Database, ticks: Ticks) -> None:
    assert await citizens.enrolments(db, "CITIZEN00001") == ()
    async with db.transaction() as session:
        session.add(
            EnrolmentRow(
                user_id="CITIZEN00001", class_="LA-CTAX-VIEW", organisation="LA-A",
                keys=KEYS, created_at=utcnow(),
            )
        )  # fmt: skip
    [enrolment] = await citizens.enrolments(db, "CITIZEN00001")
    assert (enrolment.class_, enrolment.keys) == ("LA-CTAX-VIEW", KEYS)


async def test_an_enrolment_revoked_by_statement_stops_at_once(db: Database, ticks: Ticks) -> None:
    async with db.transaction() as session:
        session.add(
            EnrolmentRow(
                user_id="CITIZEN00001", class_="LA-CTAX-VIEW", organisation="LA-A",
                keys=KEYS, created_at=utcnow(),
            )
        )  # fmt: skip
    assert len(await citizens.enrolments(db, "CITIZEN00001")) == 1
    async with db.transaction() as session:
        await session.execute(
            update(EnrolmentRow)
            .where(EnrolmentRow.user_id == "CITIZEN00001")
            .values(state="revoked")
        )
    assert await citizens.enrolments(db, "CITIZEN00001") == ()


async def test_a_change_made_elsewhere_applies_within_the_cache_time(
    db: Database, url: str, ticks: Ticks
) -> None:
    before = await citizens.lookup(db, "CITIZEN00001")
    assert before is not None and before.password_hash is not None
    assert verify_secret("first-password", before.password_hash)
    new = await citizens.lookup(db, "NOBODY000001")
    assert new is None
    # Another process: a plain connection, none of this process's sessions.
    await citizens.register(other := Database.open(url), "NOBODY000001", "x-password")
    await other.aclose()
    elsewhere = create_async_engine(url)
    try:
        async with elsewhere.begin() as conn:
            await conn.execute(text("DELETE FROM citizens WHERE user_id = 'CITIZEN00001'"))
    finally:
        await elsewhere.dispose()
    ticks.now += citizens.CACHE_SECONDS + 0.01
    assert await citizens.lookup(db, "CITIZEN00001") is None
    assert await citizens.lookup(db, "NOBODY000001") is not None


async def test_a_burst_of_lookups_reads_the_store_once(
    db: Database, ticks: Ticks, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    original = citizens._load

    async def counted(database: Database, user_id: str) -> citizens.Known | None:
        loads.append(user_id)
        return await original(database, user_id)

    monkeypatch.setattr(citizens, "_load", counted)
    found = await asyncio.gather(*(citizens.lookup(db, "CITIZEN00001") for _ in range(32)))
    assert len({id(k) for k in found}) == 1 and found[0] is not None
    assert loads == ["CITIZEN00001"]
