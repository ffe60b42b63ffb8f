"""The same hub on the local PostgreSQL server: migrations, a full cycle, and exclusive claims."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from gateway.clock import utcnow
from gateway.store import submissions as store
from gateway.store.engine import Database
from gateway.store.migrate import upgrade_async
from tests.conftest import SERVER
from tests.hub import wire
from tests.hub.rows import submission
from tests.hub.test_dsp import VIEW, acknowledged, poll_until_final

pytestmark = pytest.mark.postgres


async def test_full_cycle_on_postgresql(pg_url: str, hub_factory) -> None:
    hub = await hub_factory({"database": {"url": pg_url}})
    cid = await acknowledged(hub)
    final = await poll_until_final(hub, VIEW, cid)
    assert final.qualifier == "response"
    assert wire.read(await hub.post(wire.delete(VIEW, cid))).function == "delete"
    assert wire.read(await hub.post(wire.poll(VIEW, cid), path="/poll")).error_number == 2000


async def test_concurrent_claims_never_take_the_same_row(pg_url: str) -> None:
    await upgrade_async(pg_url)
    db = Database.open(pg_url)
    try:
        now = utcnow()
        for i in range(60):
            await store.insert(db, submission(f"{i:032X}", at=now))

        async def worker(owner: str) -> list[str]:
            got: list[str] = []
            while batch := await store.claim(
                db, owner=owner, limit=3, now=utcnow(), lease=timedelta(minutes=1)
            ):
                got.extend(s.correlation_id for s in batch)
            return got

        results = await asyncio.gather(*(worker(f"w{i}") for i in range(6)))
        claimed = [cid for r in results for cid in r]
        assert len(claimed) == 60
        assert len(set(claimed)) == 60
    finally:
        await db.aclose()


async def test_the_hub_keeps_serving_after_the_server_drops_its_connections(
    pg_url: str, hub_factory
) -> None:
    # A PostgreSQL restart or an administrator's pg_terminate_backend closes every connection
    # the hub holds; the next poll and submission must not fail for it.
    hub = await hub_factory({"database": {"url": pg_url}})
    cid = await acknowledged(hub)
    assert (await poll_until_final(hub, VIEW, cid)).qualifier == "response"
    name = pg_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(SERVER)
    try:
        dropped = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
            name,
        )
    finally:
        await admin.close()
    assert dropped >= 1
    await asyncio.sleep(0.2)
    assert (await poll_until_final(hub, VIEW, cid)).qualifier == "response"
    again = await acknowledged(hub)
    assert (await poll_until_final(hub, VIEW, again)).qualifier == "response"
