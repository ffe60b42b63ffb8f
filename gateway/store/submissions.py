"""Submission records: insert, claim (the outbox), answer, delete, list, purge, dead letters.

The hot path (insert, get, claim, answer, delete) runs off the ORM, as plain SQL on each
backend's lane: gateway/store/submissions_sqlite.py and submissions_pg.py. The rest is ORM.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import load_only

from gateway.audit.append import Event
from gateway.store import submissions_pg as on_pg
from gateway.store import submissions_sqlite as on_sqlite
from gateway.store.engine import Database
from gateway.store.models import (
    ERROR,
    LEASED,
    PENDING_STATES,
    QUEUED,
    RESPONSE,
    DeadLetter,
    Submission,
)
from gateway.store.pg_lane import Connection as PgConnection


@dataclass(frozen=True, slots=True)
class FinalAnswer:
    """What a poll will return once the back office is done."""

    state: str  # RESPONSE | ERROR
    response_body: bytes | None = None
    errors: list[dict[str, Any]] | None = None
    application: str | None = None


async def insert(db: Database, submission: Submission, *, audited: Sequence[Event] = ()) -> None:
    """Commit a new submission, and the audit events that record it in the same transaction;
    only after this returns may it be acknowledged."""
    if db.direct is not None:
        await db.direct.write(partial(on_sqlite.insert, obj=submission), audited=audited)
    else:
        await db.pg_lane.write(partial(on_pg.insert, obj=submission), audited=audited)


async def get(db: Database, correlation_id: str) -> Submission | None:
    """The live (undeleted) submission with this CorrelationID."""
    if db.direct is not None:
        return await db.direct.read(partial(on_sqlite.get, correlation_id=correlation_id))
    return await db.pg_lane.read(partial(on_pg.get, correlation_id=correlation_id))


async def due_connectors(db: Database, now: datetime) -> list[tuple[str, datetime]]:
    """(connector, since when its first due work has waited) for every connector with work
    due now, the one waiting longest first."""
    if db.direct is not None:
        return await db.direct.read(partial(on_sqlite.due_connectors, now=now))
    return await db.pg_lane.read(partial(on_pg.due_connectors, now=now))


async def claim(
    db: Database,
    *,
    owner: str,
    limit: int,
    now: datetime,
    lease: timedelta,
    connector: str | None = None,
    busy: Collection[str] = (),
) -> Sequence[Submission]:
    """Lease up to limit due submissions (for one connector, if named), including ones whose
    lease a crashed process left, but not those of `busy` (the CorrelationIDs the claiming
    dispatcher is still working on)."""
    args: dict[str, Any] = {
        "owner": owner,
        "limit": limit,
        "now": now,
        "until": now + lease,
        "connector": connector,
        "busy": busy,
    }
    if db.direct is not None:
        return await db.direct.write(partial(on_sqlite.claim, **args))
    return await db.pg_lane.write(partial(on_pg.claim, **args))


async def next_due(db: Database) -> datetime | None:
    """When the earliest queued or leased submission next becomes claimable."""
    if db.direct is not None:
        return await db.direct.read(on_sqlite.next_due)
    return await db.pg_lane.read(on_pg.next_due)


async def answer(
    db: Database,
    correlation_id: str,
    *,
    owner: str,
    final: FinalAnswer,
    now: datetime,
    keep_for: timedelta,
    attempt: int | None = None,
    dead_letter: DeadLetter | None = None,
    audited: Sequence[Event] = (),
) -> bool:
    """Record the final answer if this owner still holds the lease (for `attempt`, the number
    the claim gave, if given: an attempt superseded by a later one of the same owner has lost
    it too); False if it lost it.

    A transaction given up on gets its dead letter in the same transaction, so no poll ever sees
    the 2005/3000 answer of a transaction that is missing from the dead letters; `audited` are
    the attempt's audit events, written in that transaction too.
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

        def on_file(conn: sqlite3.Connection) -> bool:
            done = on_sqlite.update_leased(conn, correlation_id, owner, values, attempt)
            if done and dead_letter is not None:
                on_sqlite.insert(conn, dead_letter)
            return done

        return await db.direct.write(on_file, audited=audited)

    async def on_server(conn: PgConnection) -> bool:
        done = await on_pg.update_leased(conn, correlation_id, owner, values, attempt)
        if done and dead_letter is not None:
            await on_pg.insert(conn, dead_letter)
        return done

    return await db.pg_lane.write(on_server, audited=audited)


async def reschedule(
    db: Database,
    correlation_id: str,
    *,
    owner: str,
    at: datetime,
    reason: str,
    attempt: int | None = None,
    audited: Sequence[Event] = (),
) -> bool:
    """Put a leased submission back in the queue for another attempt at `at` (with the
    attempt's audit events, in the same transaction), guarded as `answer` is."""
    args: dict[str, Any] = {
        "correlation_id": correlation_id,
        "owner": owner,
        "values": {"state": QUEUED, "next_attempt_at": at, "last_error": reason},
        "attempt": attempt,
    }
    if db.direct is not None:
        return await db.direct.write(partial(on_sqlite.update_leased, **args), audited=audited)
    return await db.pg_lane.write(partial(on_pg.update_leased, **args), audited=audited)


async def mark_deleted(db: Database, correlation_id: str, now: datetime) -> bool:
    """Delete the hub's copy; a pending one is still delivered to the back office, then purged."""
    if db.direct is not None:
        return await db.direct.write(
            partial(on_sqlite.mark_deleted, correlation_id=correlation_id, now=now)
        )
    return await db.pg_lane.write(
        partial(on_pg.mark_deleted, correlation_id=correlation_id, now=now)
    )


_LISTED = (
    Submission.received_at,
    Submission.correlation_id,
    Submission.transaction_id,
    Submission.state,
    Submission.keys,
)


async def for_sender(
    db: Database,
    *,
    sender_id: str,
    class_: str,
    start: datetime | None,
    end: datetime | None,
    limit: int | None,
) -> Sequence[Submission]:
    """A sender's undeleted submissions of one class, oldest first, within the window (bounds
    inclusive); only what a StatusRecord shows is loaded."""
    stmt = (
        select(Submission)
        .options(load_only(*_LISTED))
        .where(
            Submission.sender_id == sender_id,
            Submission.class_ == class_,
            Submission.deleted_at.is_(None),
        )
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
