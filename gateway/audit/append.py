"""Appending a batch of events to the chain: the rows, computed once, then written in bulk.

The rows (`links`) are pure; two writers put them in the database, on the backend's lane off the
ORM (gateway/store/sqlite_lane.py, pg_lane.py).
Either way it is one transaction that reads the head under a lock, inserts every record and any
body not yet kept, and moves the head, so the chain stays one line whoever appends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.audit.chain import record_hash
from gateway.store.audit_models import AuditBody, AuditRecord
from gateway.store.row_codec import POSTGRESQL, RowCodec

if TYPE_CHECKING:  # the lanes run these appends: they import this module
    from gateway.store.pg_lane import Connection as PgConnection


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


RECORDS = RowCodec(AuditRecord)
BODIES = RowCodec(AuditBody)
RECORDS_PG = RowCodec(AuditRecord, POSTGRESQL)
BODIES_PG = RowCodec(AuditBody, POSTGRESQL)


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


async def on_pg(conn: PgConnection, batch: Sequence[Event]) -> None:
    """Append on PostgreSQL, inside a transaction of the lane's."""
    # FOR UPDATE: hubs sharing the database append one at a time. Migration 0011 made the row,
    # so instances starting together never race to insert it.
    row = await conn.fetchrow("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
    if row is None:
        raise RuntimeError(UNMIGRATED)
    seq, prev = row
    digests = sorted(_digests(batch))
    kept = [r[0] for r in await conn.fetch(_KEPT_PG, digests)] if digests else []
    added = links(batch, seq, prev, kept)
    for codec, rows in ((RECORDS_PG, added.records), (BODIES_PG, added.bodies)):
        if rows:
            await conn.executemany(*codec.insert_many(rows))
    await conn.execute(
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", added.seq, added.hash
    )


_KEPT_PG = "SELECT digest FROM audit_bodies WHERE digest = ANY($1::text[])"
