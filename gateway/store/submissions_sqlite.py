"""The submissions hot path as plain SQL on a SQLite lane: what gateway/store/submissions.py runs
on a SQLite file. Functions of a `sqlite3.Connection`, run on a lane's thread."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from datetime import datetime
from typing import Any

from gateway.store.due_sql import (
    CLAIM_ORDER,
    DUE_CONNECTORS,
    NEXT_DUE,
    claim_statement,
    claim_values,
    first_seen,
)
from gateway.store.models import LEASED, DeadLetter, Submission
from gateway.store.row_codec import RowCodec
from gateway.store.sqlite_lane import from_db_time, to_db_time

SUBMISSIONS = RowCodec(Submission)
DEAD_LETTERS = RowCodec(DeadLetter)

_GET = (
    f"SELECT {SUBMISSIONS.column_list} FROM submissions "
    "WHERE correlation_id = ? AND deleted_at IS NULL"
)
_MARK_DELETED = (
    "UPDATE submissions SET deleted_at = ? WHERE correlation_id = ? AND deleted_at IS NULL"
)


_CLAIMS = {
    (due, one): claim_statement(
        due,
        one_connector=one,
        skip_locked=False,
        returning=SUBMISSIONS.column_list,
        not_busy="correlation_id NOT IN (SELECT value FROM json_each(:busy))",
    )
    for due in CLAIM_ORDER
    for one in (False, True)
}


def insert(conn: sqlite3.Connection, obj: Any) -> None:
    """Insert a new row of a mapped class (a submission, a dead letter)."""
    # A dead letter's id is left to the database and not copied back: the batch holding this
    # insert may yet roll back and be retried, and must then not insert a stale id.
    codec = DEAD_LETTERS if isinstance(obj, DeadLetter) else SUBMISSIONS
    conn.execute(*codec.insert(obj))


def get(conn: sqlite3.Connection, correlation_id: str) -> Submission | None:
    row = conn.execute(_GET, (correlation_id,)).fetchone()
    return None if row is None else SUBMISSIONS.decode(row)


def update_leased(
    conn: sqlite3.Connection,
    correlation_id: str,
    owner: str,
    values: dict[str, Any],
    attempt: int | None = None,
) -> bool:
    """Set `values` (attribute names) and release the lease, where `owner` still holds it (for
    `attempt`, if given)."""
    values = {**values, "lease_owner": None, "lease_until": None}
    assignments = ", ".join(f"{SUBMISSIONS.column(key)} = ?" for key in values)
    params = [SUBMISSIONS.encode(key, value) for key, value in values.items()]
    where = "correlation_id = ? AND state = ? AND lease_owner = ?"
    params += [correlation_id, LEASED, owner]
    if attempt is not None:
        where += " AND attempts = ?"
        params.append(attempt)
    cursor = conn.execute(f"UPDATE submissions SET {assignments} WHERE {where}", params)
    return cursor.rowcount == 1


def mark_deleted(conn: sqlite3.Connection, correlation_id: str, now: datetime) -> bool:
    cursor = conn.execute(_MARK_DELETED, (SUBMISSIONS.encode("deleted_at", now), correlation_id))
    return cursor.rowcount == 1


def due_connectors(conn: sqlite3.Connection, now: datetime) -> list[tuple[str, datetime]]:
    at = SUBMISSIONS.encode("next_attempt_at", now)
    rows = conn.execute(DUE_CONNECTORS, {"at": at})
    decode = SUBMISSIONS.decode_value
    return first_seen((name, decode("next_attempt_at", first)) for name, first in rows)


def claim(
    conn: sqlite3.Connection,
    *,
    owner: str,
    limit: int,
    now: datetime,
    until: datetime,
    connector: str | None,
    busy: Collection[str] = (),
) -> list[Submission]:
    params = claim_values(to_db_time, owner=owner, now=now, until=until, connector=connector)
    params["busy"] = json.dumps(list(busy))
    claimed: list[Submission] = []
    for due in CLAIM_ORDER:
        room = limit - len(claimed)
        if room <= 0:
            break
        rows = conn.execute(
            _CLAIMS[due, connector is not None], {**params, "room": room}
        ).fetchall()
        claimed += sorted((SUBMISSIONS.decode(row) for row in rows), key=_next_attempt)
    return claimed


def _next_attempt(submission: Submission) -> datetime:
    return submission.next_attempt_at


def next_due(conn: sqlite3.Connection) -> datetime | None:
    """When the earliest queued or leased submission next becomes claimable."""
    row = conn.execute(NEXT_DUE).fetchone()
    times = [from_db_time(value) for value in row if value is not None]
    return min(t for t in times if t is not None) if times else None
