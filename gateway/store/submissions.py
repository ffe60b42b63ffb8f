"""Submission records: insert, claim (the outbox), answer, delete, list, purge, dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import TextClause, bindparam, column, delete, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store import submissions_sqlite as direct
from gateway.store.due_sql import CLAIM_ORDER, DUE_CONNECTORS, NEXT_DUE, first_seen
from gateway.store.engine import Database
from gateway.store.models import (
    ERROR,
    LEASED,
    PENDING_STATES,
    QUEUED,
    RESPONSE,
    DeadLetter,
    Submission,
    UTCDateTime,
)


@dataclass(frozen=True, slots=True)
class FinalAnswer:
    """What a poll will return once the back office is done."""

    state: str  # RESPONSE | ERROR
    response_body: bytes | None = None
    errors: list[dict[str, Any]] | None = None
    application: str | None = None


async def insert(db: Database, submission: Submission) -> None:
    """Commit a new submission; only after this returns may it be acknowledged."""
    if db.direct is not None:
        await db.direct.write(partial(direct.insert, obj=submission))
        return

    async def add(session: AsyncSession) -> None:
        session.add(submission)

    await db.batched(add)


async def get(db: Database, correlation_id: str) -> Submission | None:
    """The live (undeleted) submission with this CorrelationID."""
    if db.direct is not None:
        return await db.direct.read(partial(direct.get, correlation_id=correlation_id))
    async with db.read() as session:
        return await session.scalar(
            select(Submission).where(
                Submission.correlation_id == correlation_id, Submission.deleted_at.is_(None)
            )
        )


def _at(sql: str, now: datetime) -> TextClause:
    """One of gateway/store/due_sql.py's texts, its `:at` bound as a UTC column value."""
    return text(sql).bindparams(bindparam("at", now, type_=UTCDateTime()))


async def due_connectors(db: Database, now: datetime) -> list[str]:
    """The connectors with work due now, the one waiting longest first."""
    if db.direct is not None:
        return await db.direct.read(partial(direct.due_connectors, now=now))
    async with db.read() as session:
        rows = await session.execute(_at(DUE_CONNECTORS, now))
        return first_seen([row.connector for row in rows])


async def claim(
    db: Database,
    *,
    owner: str,
    limit: int,
    now: datetime,
    lease: timedelta,
    connector: str | None = None,
) -> Sequence[Submission]:
    """Lease up to limit due submissions (for one connector, if named), including ones whose
    lease a crashed process left."""
    if db.direct is not None:
        return await db.direct.write(
            partial(
                direct.claim,
                owner=owner,
                limit=limit,
                now=now,
                until=now + lease,
                connector=connector,
            )
        )
    claimed: list[Submission] = []
    async with db.transaction() as session:
        for due in CLAIM_ORDER:
            room = limit - len(claimed)
            if room <= 0:
                break
            rows = (
                select(Submission.correlation_id)
                .where(_at(due, now), *([Submission.connector == connector] if connector else []))
                .order_by(Submission.next_attempt_at)
                .limit(room)
                .with_for_update(skip_locked=True)
            )
            stmt = (
                update(Submission)
                .where(Submission.correlation_id.in_(rows.scalar_subquery()))
                .values(
                    state=LEASED,
                    lease_owner=owner,
                    lease_until=now + lease,
                    attempts=Submission.attempts + 1,
                )
                .returning(Submission)
                .execution_options(synchronize_session=False)
            )
            taken = (await session.scalars(stmt)).all()
            claimed += sorted(taken, key=lambda s: s.next_attempt_at)
    return claimed


async def next_due(db: Database) -> datetime | None:
    """When the earliest queued or leased submission next becomes claimable."""
    if db.direct is not None:
        return await db.direct.read(direct.next_due)
    query = text(NEXT_DUE).columns(
        column("queued_first", UTCDateTime()), column("lease_first", UTCDateTime())
    )
    async with db.read() as session:
        row = (await session.execute(query)).one()
    times = [t for t in row if t is not None]
    return min(times) if times else None


async def answer(
    db: Database,
    correlation_id: str,
    *,
    owner: str,
    final: FinalAnswer,
    now: datetime,
    keep_for: timedelta,
    dead_letter: DeadLetter | None = None,
) -> bool:
    """Record the final answer if this owner still holds the lease; False if it lost it.

    A transaction given up on gets its dead letter in the same transaction, so no poll ever sees
    the 2005/3000 answer of a transaction that is missing from the dead letters.
    """
    values: dict[str, Any] = {
        "state": final.state,
        "response_body": final.response_body,
        "errors": final.errors,
        "error_application": final.application,
        "answered_at": now,
        "purge_after": now + keep_for,
    }
    if db.direct is not None:

        def record_directly(conn: Any) -> bool:
            done = direct.update_leased(conn, correlation_id, owner, values)
            if done and dead_letter is not None:
                direct.insert(conn, dead_letter)
            return done

        return await db.direct.write(record_directly)
    stmt = _leased(correlation_id, owner, **values)

    async def record(session: AsyncSession) -> bool:
        done = bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]
        if done and dead_letter is not None:
            session.add(dead_letter)
        return done

    return await db.batched(record)


async def reschedule(
    db: Database, correlation_id: str, *, owner: str, at: datetime, reason: str
) -> bool:
    """Put a leased submission back in the queue for another attempt at `at`."""
    return await _update_leased(
        db, correlation_id, owner, state=QUEUED, next_attempt_at=at, last_error=reason
    )


def _leased(correlation_id: str, owner: str, **values: Any) -> Any:
    """Set `values` and release the lease — only where `owner` still holds it."""
    return (
        update(Submission)
        .where(
            Submission.correlation_id == correlation_id,
            Submission.state == LEASED,
            Submission.lease_owner == owner,
        )
        .values(**values, lease_owner=None, lease_until=None)
        # No object in the session to keep in step: the ORM's evaluation of the WHERE clause
        # against loaded objects is pure cost here.
        .execution_options(synchronize_session=False)
    )


async def _update_leased(db: Database, correlation_id: str, owner: str, **values: Any) -> bool:
    """Set `values` and release the lease, if `owner` still holds it; False if it lost it."""
    if db.direct is not None:
        return await db.direct.write(
            partial(direct.update_leased, correlation_id=correlation_id, owner=owner, values=values)
        )
    return await _changed(db, _leased(correlation_id, owner, **values))


async def _changed(db: Database, stmt: Any) -> bool:
    """Run one UPDATE in a shared (group-committed) transaction; whether it changed a row."""

    async def execute(session: AsyncSession) -> bool:
        return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    return await db.batched(execute)


async def mark_deleted(db: Database, correlation_id: str, now: datetime) -> bool:
    """Delete the hub's copy; a pending one is still delivered to the back office, then purged."""
    if db.direct is not None:
        return await db.direct.write(
            partial(direct.mark_deleted, correlation_id=correlation_id, now=now)
        )
    return await _changed(
        db,
        update(Submission)
        .where(Submission.correlation_id == correlation_id, Submission.deleted_at.is_(None))
        .values(deleted_at=now)
        .execution_options(synchronize_session=False),
    )


async def for_sender(
    db: Database,
    *,
    sender_id: str,
    class_: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> Sequence[Submission]:
    """A sender's undeleted submissions of one class, oldest first, within the window."""
    stmt = select(Submission).where(
        Submission.sender_id == sender_id,
        Submission.class_ == class_,
        Submission.deleted_at.is_(None),
    )
    if start is not None:
        stmt = stmt.where(Submission.received_at >= start)
    if end is not None:
        stmt = stmt.where(Submission.received_at <= end)
    stmt = stmt.order_by(Submission.received_at).limit(limit)
    async with db.read() as session:
        return list((await session.scalars(stmt)).all())


async def purge(db: Database, now: datetime) -> int:
    """Remove answered records past retention, and deleted ones once the back office is done."""
    stmt = delete(Submission).where(
        Submission.state.not_in(PENDING_STATES),
        or_(Submission.purge_after < now, Submission.deleted_at.is_not(None)),
    )
    async with db.transaction() as session:
        result = await session.execute(stmt)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def dead_letters(db: Database, *, include_replayed: bool = False) -> Sequence[DeadLetter]:
    stmt = select(DeadLetter).order_by(DeadLetter.id)
    if not include_replayed:
        stmt = stmt.where(DeadLetter.replayed_at.is_(None))
    async with db.read() as session:
        return list((await session.scalars(stmt)).all())


async def replay(db: Database, letter_id: int, now: datetime) -> str | None:
    """Queue a dead letter's transaction again; its CorrelationID, or None if nothing to replay."""
    async with db.transaction() as session:
        letter = await session.get(DeadLetter, letter_id)
        if letter is None or letter.replayed_at is not None:
            return None
        result = await session.execute(
            update(Submission)
            .where(Submission.correlation_id == letter.correlation_id, Submission.state == ERROR)
            .values(
                state=QUEUED,
                attempts=0,
                next_attempt_at=now,
                response_body=None,
                errors=None,
                error_application=None,
                answered_at=None,
                purge_after=None,
            )
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return None
        letter.replayed_at = now
        return letter.correlation_id


__all__ = [
    "ERROR",
    "LEASED",
    "QUEUED",
    "RESPONSE",
    "FinalAnswer",
    "answer",
    "claim",
    "dead_letters",
    "for_sender",
    "get",
    "insert",
    "mark_deleted",
    "next_due",
    "purge",
    "replay",
    "reschedule",
]
