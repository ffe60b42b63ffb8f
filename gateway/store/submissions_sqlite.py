"""The submissions hot path as plain SQL on a SQLite lane: what gateway/store/submissions.py runs
on a SQLite file. Functions of a `sqlite3.Connection`, run on a lane's thread."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from gateway.store.models import LEASED, DeadLetter, Submission
from gateway.store.row_codec import RowCodec

SUBMISSIONS = RowCodec(Submission)
DEAD_LETTERS = RowCodec(DeadLetter)

_GET = (
    f"SELECT {SUBMISSIONS.column_list} FROM submissions "
    "WHERE correlation_id = ? AND deleted_at IS NULL"
)
_MARK_DELETED = (
    "UPDATE submissions SET deleted_at = ? WHERE correlation_id = ? AND deleted_at IS NULL"
)


def insert(conn: sqlite3.Connection, obj: Any) -> None:
    """Insert a new row of a mapped class (a submission, a dead letter)."""
    codec = DEAD_LETTERS if isinstance(obj, DeadLetter) else SUBMISSIONS
    sql, values = codec.insert(obj)
    cursor = conn.execute(sql, values)
    if isinstance(obj, DeadLetter) and obj.id is None:
        obj.id = cursor.lastrowid


def get(conn: sqlite3.Connection, correlation_id: str) -> Submission | None:
    row = conn.execute(_GET, (correlation_id,)).fetchone()
    return None if row is None else SUBMISSIONS.decode(row)


def update_leased(
    conn: sqlite3.Connection, correlation_id: str, owner: str, values: dict[str, Any]
) -> bool:
    """Set `values` (attribute names) and release the lease, where `owner` still holds it."""
    values = {**values, "lease_owner": None, "lease_until": None}
    assignments = ", ".join(f"{SUBMISSIONS.column(key)} = ?" for key in values)
    params = [SUBMISSIONS.encode(key, value) for key, value in values.items()]
    cursor = conn.execute(
        f"UPDATE submissions SET {assignments} "
        "WHERE correlation_id = ? AND state = ? AND lease_owner = ?",
        [*params, correlation_id, LEASED, owner],
    )
    return cursor.rowcount == 1


def mark_deleted(conn: sqlite3.Connection, correlation_id: str, now: datetime) -> bool:
    cursor = conn.execute(_MARK_DELETED, (SUBMISSIONS.encode("deleted_at", now), correlation_id))
    return cursor.rowcount == 1
