"""The hot path's lanes off SQLAlchemy (SQLite's, PostgreSQL's: whichever backend the pass runs
on) write and read exactly what the ORM does: a row written one way reads back the same the other
way, queries the ORM builds find it, and the audit chain appended on a lane reads back through the
ORM as the chain's rows were computed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gateway.audit import append
from gateway.audit.append import Event
from gateway.audit.chain import GENESIS, verify
from gateway.audit.log import append_events, read_chain, signature_problem
from gateway.store import submissions as store
from gateway.store.audit_models import AuditBody, AuditHead, AuditRecord
from gateway.store.engine import Database
from gateway.store.models import LEASED, QUEUED, RESPONSE, DeadLetter, Submission
from gateway.store.pg_lane import numbered
from gateway.store.row_codec import make

NOW = datetime(2026, 11, 29, 12, 30, 45, 123456, tzinfo=UTC)


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Database]:
    database = Database.open(migrated_url)
    assert (database.direct is None) != (database.pg is None)  # one lane, the backend's own
    yield database
    await database.aclose()


def full_row(correlation_id: str, **changes: Any) -> Submission:
    """A submission with every column holding a value of its kind."""
    values: dict[str, Any] = {
        "correlation_id": correlation_id,
        "class_": "LA-CTAX-VIEW-TIL",
        "base_class": "LA-CTAX-VIEW",
        "organisation": "E08000024",
        "connector": "council-E08000024",
        "sender_id": "DEMO0SUN0001",
        "auth_method": "certificate",
        "auth_level": 2.0,
        "transaction_id": "T-1",
        "keys": {"AccountRef": "SUN00000001", "Postcode": "SR1 1RE"},
        "gateway_test": True,
        "test_in_live": True,
        "request_body": b"<Body>\xc2\xa3 10</Body>",
        "envelope_body": b"<Body xmlns='x'/>",
        "received_at": NOW,
        "backdated_to": NOW - timedelta(days=300),
        "state": RESPONSE,
        "attempts": 3,
        "next_attempt_at": NOW + timedelta(seconds=1),
        "lease_owner": None,
        "lease_until": None,
        "last_error": "council-E08000024 did not answer",
        "response_body": b"<Reply/>",
        "errors": [{"number": 3001, "text": "Account not found", "type": "business"}],
        "error_application": "Council Tax",
        "answered_at": NOW + timedelta(seconds=2),
        "purge_after": NOW + timedelta(days=30),
        "deleted_at": None,
    }
    values.update(changes)
    return Submission(**values)


COLUMNS = [c.key for c in Submission.__mapper__.column_attrs]


def as_dict(row: Submission) -> dict[str, Any]:
    return {key: getattr(row, key) for key in COLUMNS}


async def orm_read(db: Database, correlation_id: str) -> Submission | None:
    async with db.read() as session:
        return await session.scalar(
            select(Submission).where(Submission.correlation_id == correlation_id)
        )


async def test_a_row_reads_back_the_same_whichever_path_wrote_it(db: Database) -> None:
    by_lane, by_orm = full_row("A" * 32), full_row("B" * 32)
    expected = {"A" * 32: as_dict(by_lane), "B" * 32: as_dict(by_orm)}
    await store.insert(db, by_lane)  # the lane
    async with db.transaction() as session:
        session.add(by_orm)

    for correlation_id, wanted in expected.items():
        through_orm = await orm_read(db, correlation_id)
        through_lane = await store.get(db, correlation_id)
        assert through_orm is not None and through_lane is not None
        assert as_dict(through_orm) == wanted
        assert as_dict(through_lane) == wanted
        assert type(through_lane.auth_level) is float and type(through_lane.gateway_test) is bool


async def test_an_instance_made_without_attribute_events_is_a_whole_row(db: Database) -> None:
    # The hot path makes its rows with row_codec.make (and decodes them the same way); the
    # joined-up transactions add such rows to ORM sessions: both must store every value.
    constructed = full_row("M" * 32)
    values = as_dict(constructed)
    made, orm_added = (
        make(Submission, values),
        make(Submission, {**values, "correlation_id": "N" * 32}),
    )
    assert as_dict(made) == values
    made.state = LEASED  # attributes still set as usual
    await store.insert(db, made)
    async with db.transaction() as session:
        session.add(orm_added)
    stored = await orm_read(db, "M" * 32)
    assert stored is not None and as_dict(stored) == {**values, "state": LEASED}
    stored = await orm_read(db, "N" * 32)
    assert stored is not None and as_dict(stored) == {**values, "correlation_id": "N" * 32}
    with pytest.raises(TypeError, match="colour"):
        make(Submission, {**values, "colour": "red"})


async def test_defaults_apply_and_empty_columns_stay_empty(db: Database) -> None:
    row = Submission(
        correlation_id="C" * 32,
        class_="LA-CTAX-VIEW",
        base_class="LA-CTAX-VIEW",
        organisation="E08000024",
        connector="council-E08000024",
        auth_method="none",
        request_body=b"<Body/>",
        received_at=NOW,
        next_attempt_at=NOW,
    )
    await store.insert(db, row)
    stored = await orm_read(db, "C" * 32)
    assert stored is not None
    assert (stored.state, stored.attempts, stored.auth_level, stored.keys) == (QUEUED, 0, 0.0, {})
    assert stored.gateway_test is False and stored.errors is None and stored.deleted_at is None


async def test_what_the_orm_queries_by_time_finds_rows_the_lane_wrote(db: Database) -> None:
    # Times are compared as the stored text: the lane must write the ORM's format exactly.
    await store.insert(db, full_row("D" * 32, state=QUEUED, next_attempt_at=NOW))
    await store.insert(
        db, full_row("E" * 32, state=QUEUED, next_attempt_at=NOW + timedelta(microseconds=1))
    )
    claimed = await store.claim(db, owner="me", limit=10, now=NOW, lease=timedelta(seconds=30))
    assert [s.correlation_id for s in claimed] == ["D" * 32]
    listed = await store.for_sender(
        db, sender_id="DEMO0SUN0001", class_="LA-CTAX-VIEW-TIL", start=NOW, end=NOW, limit=10
    )
    assert {s.correlation_id for s in listed} == {"D" * 32, "E" * 32}


async def test_an_answer_on_the_lane_needs_the_lease_and_brings_its_dead_letter(
    db: Database,
) -> None:
    await store.insert(
        db, full_row("F" * 32, state=LEASED, lease_owner="me", lease_until=NOW, errors=None)
    )
    letter = DeadLetter(
        correlation_id="F" * 32,
        connector="council-E08000024",
        class_="LA-CTAX-VIEW",
        organisation="E08000024",
        error_number=2005,
        reason="no answer",
        attempts=3,
        created_at=NOW,
    )
    final = store.FinalAnswer("error", errors=[{"number": 2005, "text": "no answer"}])

    async def answer_as(owner: str) -> bool:
        return await store.answer(
            db,
            "F" * 32,
            owner=owner,
            final=final,
            now=NOW,
            keep_for=timedelta(days=1),
            dead_letter=letter,
        )

    assert await answer_as("someone else") is False
    assert await store.dead_letters(db) == []
    assert await answer_as("me") is True
    stored = await orm_read(db, "F" * 32)
    assert stored is not None
    assert (stored.state, stored.lease_owner, stored.lease_until) == ("error", None, None)
    assert stored.errors == [{"number": 2005, "text": "no answer"}]
    assert stored.purge_after == NOW + timedelta(days=1)
    assert [d.correlation_id for d in await store.dead_letters(db)] == ["F" * 32]
    assert await store.mark_deleted(db, "F" * 32, NOW) is True
    assert await store.mark_deleted(db, "F" * 32, NOW) is False
    assert await store.get(db, "F" * 32) is None


def events() -> list[Event]:
    body = b"<GovTalkMessage>\xc2\xa3</GovTalkMessage>"
    import hashlib

    digest = hashlib.sha256(body).hexdigest()
    return [
        Event(
            NOW + timedelta(microseconds=n),
            "dsp.received",
            "ok",
            "DEMO0SUN0001",
            f"{n:032d}",
            {"class_": "LA-CTAX-VIEW", "n": n, "note": "é"},
            digest,
            body,
        )
        for n in range(3)
    ] + [Event(NOW, "dsp.refused", "refused", None, None, {"number": 1046}, None, None)]


async def test_the_audit_chain_appended_on_the_lane_reads_back_as_computed(db: Database) -> None:
    expected = append.links(events(), 0, GENESIS, ())
    for _ in range(2):  # the second batch chains on from the first; its body is kept once
        await append_events(db, events())
    kept = [body["digest"] for body in expected.bodies]
    expected_second = append.links(events(), expected.seq, expected.hash, kept)
    assert expected_second.bodies == []
    async with db.read() as session:
        records = (await session.scalars(select(AuditRecord).order_by(AuditRecord.seq))).all()
        bodies = (await session.scalars(select(AuditBody))).all()
        head = await session.get(AuditHead, 1)
    stored = [{key: getattr(r, key) for key in expected.records[0]} for r in records]
    assert stored == expected.records + expected_second.records
    assert [(b.digest, b.body, b.stored_at) for b in bodies] == [
        (d["digest"], d["body"], d["stored_at"]) for d in expected.bodies
    ]
    assert head is not None and (head.seq, head.hash) == (8, expected_second.hash)
    chain, checkpoints = await read_chain(db)
    assert verify(chain, checkpoints, signature_problem).ok


async def test_a_cancelled_caller_leaves_the_lane_usable(db: Database) -> None:
    writes = [asyncio.ensure_future(store.insert(db, full_row(f"{n:032d}"))) for n in range(20)]
    await asyncio.sleep(0)
    for write in writes[::2]:
        write.cancel()
    await asyncio.gather(*writes, return_exceptions=True)
    # Whatever the cancelled callers' rows became, the lane is not stuck in a transaction.
    await store.insert(db, full_row("Z" * 32))
    assert await store.get(db, "Z" * 32) is not None
    for write in writes[1::2]:
        assert write.result() is None


@pytest.mark.no_database
def test_named_parameters_become_asyncpg_numbers_once_each() -> None:
    sql, names = numbered("a = :at AND b = :owner OR c < :at AND d = e::text LIMIT :room")
    assert sql == "a = $1 AND b = $2 OR c < $1 AND d = e::text LIMIT $3"
    assert names == ["at", "owner", "room"]
