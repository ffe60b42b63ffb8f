"""The submissions hot path as plain SQL on asyncpg: what gateway/store/submissions.py runs on
PostgreSQL. Coroutine functions of an asyncpg connection (gateway/store/pg_lane.py)."""

from __future__ import annotations

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
from gateway.store.pg_lane import Connection as PgConnection
from gateway.store.pg_lane import numbered
from gateway.store.row_codec import POSTGRESQL, RowCodec

SUBMISSIONS = RowCodec(Submission, POSTGRESQL)
DEAD_LETTERS = RowCodec(DeadLetter, POSTGRESQL)

_GET = (
    f"SELECT {SUBMISSIONS.column_list} FROM submissions "
    "WHERE correlation_id = $1 AND deleted_at IS NULL"
)
_MARK_DELETED = (
    "UPDATE submissions SET deleted_at = $1 WHERE correlation_id = $2 AND deleted_at IS NULL"
)
_DUE_CONNECTORS, _ = numbered(DUE_CONNECTORS)


_CLAIMS = {
    (due, one): numbered(
        claim_statement(
            due,
            one_connector=one,
            skip_locked=True,
            returning=SUBMISSIONS.column_list,
            not_busy="correlation_id <> ALL(:busy)",
        )
    )
    for due in CLAIM_ORDER
    for one in (False, True)
}


async def insert(conn: PgConnection, obj: Any) -> None:
    """Insert a new row of a mapped class (a submission, a dead letter)."""
    # A dead letter's id is left to the database, as on SQLite (submissions_sqlite.insert).
    codec = DEAD_LETTERS if isinstance(obj, DeadLetter) else SUBMISSIONS
    sql, params = codec.insert(obj)
    await conn.execute(sql, *params)


async def get(conn: PgConnection, correlation_id: str) -> Submission | None:
    row = await conn.fetchrow(_GET, correlation_id)
    return None if row is None else SUBMISSIONS.decode(row)


async def update_leased(
    conn: PgConnection,
    correlation_id: str,
    owner: str,
    values: dict[str, Any],
    attempt: int | None = None,
) -> bool:
    """Set `values` (attribute names) and release the lease, where `owner` still holds it (for
    `attempt`, if given)."""
    values = {**values, "lease_owner": None, "lease_until": None}
    assignments = ", ".join(
        f"{SUBMISSIONS.column(key)} = ${n}" for n, key in enumerate(values, start=1)
    )
    params = [SUBMISSIONS.encode(key, value) for key, value in values.items()]
    n = len(params)
    where = f"correlation_id = ${n + 1} AND state = ${n + 2} AND lease_owner = ${n + 3}"
    params += [correlation_id, LEASED, owner]
    if attempt is not None:
        where += f" AND attempts = ${n + 4}"
        params.append(attempt)
    status = await conn.execute(f"UPDATE submissions SET {assignments} WHERE {where}", *params)
    return _count(status) == 1


async def mark_deleted(conn: PgConnection, correlation_id: str, now: datetime) -> bool:
    status = await conn.execute(
        _MARK_DELETED, SUBMISSIONS.encode("deleted_at", now), correlation_id
    )
    return _count(status) == 1


async def due_connectors(conn: PgConnection, now: datetime) -> list[tuple[str, datetime]]:
    rows = await conn.fetch(_DUE_CONNECTORS, SUBMISSIONS.encode("next_attempt_at", now))
    decode = SUBMISSIONS.decode_value
    return first_seen((name, decode("next_attempt_at", first)) for name, first in rows)


async def claim(
    conn: PgConnection,
    *,
    owner: str,
    limit: int,
    now: datetime,
    until: datetime,
    connector: str | None,
    busy: Collection[str] = (),
) -> list[Submission]:
    params = claim_values(_time, owner=owner, now=now, until=until, connector=connector)
    params["busy"] = list(busy)
    claimed: list[Submission] = []
    for due in CLAIM_ORDER:
        room = limit - len(claimed)
        if room <= 0:
            break
        sql, names = _CLAIMS[due, connector is not None]
        values = {**params, "room": room}
        rows = await conn.fetch(sql, *(values[name] for name in names))
        claimed += sorted((SUBMISSIONS.decode(row) for row in rows), key=_next_attempt)
    return claimed


def _time(value: datetime) -> Any:
    return SUBMISSIONS.encode("next_attempt_at", value)


def _next_attempt(submission: Submission) -> datetime:
    return submission.next_attempt_at


async def next_due(conn: PgConnection) -> datetime | None:
    """When the earliest queued or leased submission next becomes claimable."""
    row = await conn.fetchrow(NEXT_DUE)
    values = [v for v in row if v is not None] if row else []
    times = [SUBMISSIONS.decode_value("next_attempt_at", v) for v in values]
    return min(times) if times else None


def _count(status: str) -> int:
    """The row count of an asyncpg command status ("UPDATE 1")."""
    return int(status.rsplit(" ", 1)[-1])
