"""Appending a batch of events to the chain: the rows, computed once, then written in bulk.

The rows (`links`) are pure; two writers put them in the database: through SQLAlchemy Core in a
session (PostgreSQL, and SQLite in memory), or on the SQLite lane (gateway/store/sqlite_lane.py).
Either way it is one transaction that reads the head under a lock, inserts every record and any
body not yet kept, and moves the head, so the chain stays one line whoever appends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.chain import record_hash
from gateway.store.audit_models import AuditBody, AuditHead, AuditRecord
from gateway.store.row_codec import RowCodec


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime
    event: str
    outcome: str
    actor: str | None
    correlation_id: str | None
    detail: dict[str, Any]
    body_digest: str | None
    body: bytes | None


@dataclass(frozen=True, slots=True)
class Links:
    """The rows one batch adds, and the head it leaves."""

    records: list[dict[str, Any]]
    bodies: list[dict[str, Any]]
    seq: int
    hash: str


def links(batch: Sequence[Event], seq: int, prev: str, kept: Iterable[str]) -> Links:
    """The batch's records chained on from (seq, prev), and the bodies not among `kept`."""
    kept = set(kept)
    records: list[dict[str, Any]] = []
    bodies: list[dict[str, Any]] = []
    for event in batch:
        seq += 1
        fields = {
            "seq": seq,
            "at": event.at,
            "event": event.event,
            "outcome": event.outcome,
            "actor": event.actor,
            "correlation_id": event.correlation_id,
            "detail": event.detail,
            "body_digest": event.body_digest,
        }
        digest = record_hash({**fields, "at": event.at.isoformat()}, prev)
        records.append({**fields, "prev_hash": prev, "hash": digest})
        if event.body is not None and event.body_digest and event.body_digest not in kept:
            kept.add(event.body_digest)
            bodies.append({"digest": event.body_digest, "body": event.body, "stored_at": event.at})
        prev = digest
    return Links(records, bodies, seq, prev)


UNMIGRATED = "audit_head has no row: the database is not migrated (gateway migrate)"


def _digests(batch: Sequence[Event]) -> set[str]:
    return {e.body_digest for e in batch if e.body is not None and e.body_digest}


async def in_session(session: AsyncSession, batch: Sequence[Event]) -> None:
    """Append through SQLAlchemy Core (bulk INSERTs, no unit of work)."""
    # FOR UPDATE on PostgreSQL (SQLite's writer lock already serialises); migration 0011 made the
    # row, so instances starting together never race to insert it.
    head = (
        await session.execute(
            select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
        )
    ).first()
    if head is None:
        raise RuntimeError(UNMIGRATED)
    seq, prev = head
    digests = _digests(batch)
    kept = (
        await session.scalars(select(AuditBody.digest).where(AuditBody.digest.in_(digests)))
        if digests
        else ()
    )
    added = links(batch, seq, prev, kept)
    await session.execute(insert(AuditRecord), added.records)
    if added.bodies:
        await session.execute(insert(AuditBody), added.bodies)
    await session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(seq=added.seq, hash=added.hash)
    )


RECORDS = RowCodec(AuditRecord)
BODIES = RowCodec(AuditBody)


def on_sqlite(conn: sqlite3.Connection, batch: Sequence[Event]) -> None:
    """Append on a SQLite lane, inside its write transaction."""
    row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    if row is None:
        raise RuntimeError(UNMIGRATED)
    seq, prev = row
    digests = sorted(_digests(batch))
    marks = ", ".join("?" * len(digests))
    kept = (
        [
            d
            for (d,) in conn.execute(
                f"SELECT digest FROM audit_bodies WHERE digest IN ({marks})", digests
            )
        ]
        if digests
        else []
    )
    added = links(batch, seq, prev, kept)
    for codec, rows in ((RECORDS, added.records), (BODIES, added.bodies)):
        if rows:
            conn.executemany(*codec.insert_many(rows))
    conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (added.seq, added.hash))
