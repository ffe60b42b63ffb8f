"""What the dispatcher finds due: which connectors, which rows it claims, when to look again.

Run on the pass's backend (SQLite lanes or PostgreSQL through SQLAlchemy): the two run the same
SQL text (gateway/store/due_sql.py) and must agree.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.store import submissions as store
from gateway.store.due_sql import DUE_CONNECTORS, NEXT_DUE, QUEUED_DUE
from gateway.store.engine import Database
from gateway.store.models import ERROR, LEASED, QUEUED, RESPONSE, DeadLetter, Submission
from tests.hub.rows import submission

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def row(
    cid: str, connector: str, state: str, next_in: float, lease_until: datetime | None = None
) -> Submission:
    return submission(
        cid.ljust(32, "0"),
        at=at(-60),
        connector=connector,
        state=state,
        next_attempt_at=at(next_in),
        lease_owner="gone" if state == LEASED else None,
        lease_until=lease_until,
    )


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Database]:
    database = Database.open(migrated_url)
    yield database
    await database.aclose()


async def fill(db: Database, *rows: Submission) -> None:
    for each in rows:
        await store.insert(db, each)


async def test_due_connectors_longest_waiting_first_each_once(db: Database) -> None:
    await fill(
        db,
        row("A1", "a", QUEUED, -3),
        row("A2", "a", QUEUED, +5),
        row("B1", "b", QUEUED, -5),
        row("B2", "b", LEASED, -4, lease_until=at(-1)),  # its process died
        row("C1", "c", QUEUED, +10),  # backing off: not yet
        row("D1", "d", LEASED, -1, lease_until=at(-0.5)),
        row("E1", "e", LEASED, -9, lease_until=at(+20)),  # being worked on
    )
    # With since when each one's first due work has waited (what PollInterval is paced by).
    assert await store.due_connectors(db, NOW) == [("b", at(-5)), ("a", at(-3)), ("d", at(-1))]
    assert [name for name, _ in await store.due_connectors(db, at(11))] == ["b", "a", "d", "c"]
    assert await store.due_connectors(db, at(-10)) == []


async def test_next_due_is_the_earliest_queue_head_or_lease_end(db: Database) -> None:
    assert await store.next_due(db) is None
    await fill(db, row("C1", "c", QUEUED, +10), row("C2", "c", QUEUED, +30))
    assert await store.next_due(db) == at(10)
    await fill(db, row("E1", "e", LEASED, -9, lease_until=at(4)))
    assert await store.next_due(db) == at(4)


async def test_claim_takes_expired_leases_then_the_queue_in_order_for_one_connector(
    db: Database,
) -> None:
    await fill(
        db,
        row("A3", "a", QUEUED, -1),
        row("A1", "a", QUEUED, -3),
        row("A2", "a", QUEUED, -2),
        row("A4", "a", QUEUED, +5),
        row("A0", "a", LEASED, -1, lease_until=at(-1)),
        row("AL", "a", LEASED, -9, lease_until=at(+20)),
        row("B1", "b", QUEUED, -9),
    )
    first = await store.claim(db, owner="me", limit=3, now=NOW, lease=LEASE, connector="a")
    assert [s.correlation_id[:2] for s in first] == ["A0", "A1", "A2"]
    assert all(s.lease_owner == "me" and s.lease_until == NOW + LEASE for s in first)
    rest = await store.claim(db, owner="me", limit=10, now=NOW, lease=LEASE, connector="a")
    assert [s.correlation_id[:2] for s in rest] == ["A3"]
    assert await store.claim(db, owner="me", limit=10, now=NOW, lease=LEASE, connector="a") == []
    assert await store.due_connectors(db, NOW) == [("b", at(-9))]


async def test_claim_leaves_out_the_claiming_dispatchers_own_work_in_progress(
    db: Database,
) -> None:
    # Its leases look expired once the hub's movable clock is moved on (or an attempt overruns),
    # but the dispatcher is still delivering them: taking them again would deliver twice at once.
    await fill(
        db,
        row("A0", "a", LEASED, -9, lease_until=at(-1)),
        row("A1", "a", LEASED, -8, lease_until=at(-1)),
        row("A2", "a", QUEUED, -7),
    )
    mine = {"A0".ljust(32, "0")}
    taken = await store.claim(db, owner="me", limit=5, now=NOW, lease=LEASE, busy=mine)
    assert [s.correlation_id[:2] for s in taken] == ["A1", "A2"]
    # Another dispatcher (or this one, once the attempt has ended) takes it as before.
    [later] = await store.claim(db, owner="other", limit=5, now=NOW, lease=LEASE)
    assert later.correlation_id[:2] == "A0" and later.attempts == 1


async def test_only_the_attempt_that_claimed_a_row_may_end_it(db: Database) -> None:
    # The same dispatcher may hold a row again for a later attempt (its lease had run out):
    # the owner alone cannot tell the superseded attempt's answer from the later one's.
    await fill(db, row("S1", "a", QUEUED, -1))
    cid = "S1".ljust(32, "0")
    [first] = await store.claim(db, owner="me", limit=1, now=NOW, lease=LEASE)
    [second] = await store.claim(db, owner="me", limit=1, now=at(60), lease=LEASE)
    assert (first.attempts, second.attempts) == (1, 2)
    letter = DeadLetter(
        correlation_id=cid,
        connector="a",
        class_="T",
        organisation="O",
        error_number=2005,
        reason="attempt 1 timed out",
        attempts=1,
        created_at=NOW,
    )
    stale = await store.answer(
        db,
        cid,
        owner="me",
        attempt=first.attempts,
        final=store.FinalAnswer(ERROR, errors=[{"number": 2005, "text": "late"}]),
        now=at(61),
        keep_for=LEASE,
        dead_letter=letter,
    )
    assert stale is False
    assert not await store.reschedule(
        db, cid, owner="me", attempt=first.attempts, at=at(62), reason="late"
    )
    assert await store.answer(
        db,
        cid,
        owner="me",
        attempt=second.attempts,
        final=store.FinalAnswer(RESPONSE, b"<applied/>"),
        now=at(62),
        keep_for=LEASE,
    )
    record = await store.get(db, cid)
    assert record is not None and (record.state, record.response_body) == (RESPONSE, b"<applied/>")
    assert await store.dead_letters(db) == []


@pytest.mark.sqlite
async def test_due_work_is_found_by_index_probes_not_by_reading_the_backlog(
    migrated_url: str,
) -> None:
    # However many submissions wait, a dispatcher pass must not read them all: each connector's
    # queue head is one probe of ix_submissions_due (a scan made draining a backlog quadratic).
    path = migrated_url.split(":///", 1)[1]
    conn = sqlite3.connect(path)
    try:
        claim = (
            f"SELECT correlation_id FROM submissions WHERE {QUEUED_DUE} AND connector = :c "
            "ORDER BY next_attempt_at LIMIT 1"
        )
        for sql in (DUE_CONNECTORS, NEXT_DUE, claim):
            plan = [r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", {"at": "", "c": ""})]
            assert not [step for step in plan if step.startswith("SCAN submissions")], plan
            assert any("ix_submissions_due" in step for step in plan), plan
        plan = [r[-1] for r in conn.execute(f"EXPLAIN QUERY PLAN {claim}", {"at": "", "c": ""})]
        assert plan == [
            "SEARCH submissions USING INDEX ix_submissions_due "
            "(state=? AND connector=? AND next_attempt_at<?)"
        ]
    finally:
        conn.close()
