"""Hub instances starting together on one new database agree on its singleton rows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from gateway.audit.append import Event
from gateway.audit.chain import GENESIS
from gateway.audit.log import append_events
from gateway.sso.keyring import Keyring
from gateway.store.audit_models import AuditHead, AuditRecord
from gateway.store.engine import Database
from gateway.store.sso_models import SsoKey

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


async def connected(url: str, n: int) -> list[Database]:
    """n hub databases with a connection each already made, so their first writes meet."""
    instances = [Database.open(url) for _ in range(n)]
    for db in instances:
        async with db.transaction() as session:
            await session.execute(select(1))
    return instances


async def test_migration_makes_the_audit_head_and_the_pairwise_salt(migrated_url: str) -> None:
    db = Database.open(migrated_url)
    try:
        async with db.read() as session:
            head = await session.get(AuditHead, 1)
        assert head is not None and (head.seq, head.hash) == (0, GENESIS)
    finally:
        await db.aclose()


async def test_instances_starting_together_make_one_first_key_and_share_the_salt(
    migrated_url: str,
) -> None:
    instances = await connected(migrated_url, 4)
    try:
        keyrings = [Keyring(db, clock, timedelta(days=1)) for db in instances]
        await asyncio.gather(*(k.load() for k in keyrings))
        async with instances[0].read() as session:
            keys = await session.scalar(select(func.count()).select_from(SsoKey))
        assert keys == 1
        assert len({k.signing_key().kid for k in keyrings}) == 1
        assert len({k.pairwise_subject("council", "citizen") for k in keyrings}) == 1
    finally:
        await asyncio.gather(*(db.aclose() for db in instances))


async def test_instances_auditing_at_once_on_a_new_database_keep_one_chain(
    migrated_url: str,
) -> None:
    instances = await connected(migrated_url, 4)

    async def first_event(n: int, db: Database) -> None:
        batch = [Event(NOW, "hub.started", "ok", None, None, {"instance": n}, None, None)]
        await append_events(db, batch)

    try:
        await asyncio.gather(*(first_event(n, db) for n, db in enumerate(instances)))
        async with instances[0].read() as session:
            records = (await session.scalars(select(AuditRecord).order_by(AuditRecord.seq))).all()
        assert [r.seq for r in records] == [1, 2, 3, 4]
        assert records[0].prev_hash == GENESIS
        assert all(records[i].prev_hash == records[i - 1].hash for i in range(1, len(records)))
        assert sorted(r.detail["instance"] for r in records) == [0, 1, 2, 3]
    finally:
        await asyncio.gather(*(db.aclose() for db in instances))
