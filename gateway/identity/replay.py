"""Replay store for signed envelopes: a digest seen within the window is a replay."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.exc import IntegrityError

from gateway.clock import utcnow
from gateway.store.engine import Database
from gateway.store.models import SeenSignature
from gateway.store.pg_lane import Connection as PgConnection
from gateway.store.row_codec import POSTGRESQL, RowCodec
from gateway.store.sqlite_lane import to_db_time

SEEN = RowCodec(SeenSignature)
SEEN_PG = RowCodec(SeenSignature, POSTGRESQL)


def _record_on_sqlite(
    conn: sqlite3.Connection, *, now: datetime, rows: list[dict[str, Any]]
) -> None:
    # Expired rows no longer count; purging them here keeps the table at one window's worth of
    # traffic and lets an old digest be recorded afresh.
    conn.execute("DELETE FROM seen_signatures WHERE expires_at <= ?", (to_db_time(now),))
    # The primary key makes this atomic: of two concurrent submissions of the same envelope
    # exactly one INSERT succeeds, with no read-then-write race.
    conn.executemany(*SEEN.insert_many(rows))


async def _record_on_pg(conn: PgConnection, *, now: datetime, rows: list[dict[str, Any]]) -> None:
    """`_record_on_sqlite` on PostgreSQL."""
    await conn.execute(
        "DELETE FROM seen_signatures WHERE expires_at <= $1", SEEN_PG.encode("expires_at", now)
    )
    await conn.executemany(*SEEN_PG.insert_many(rows))


class ReplayStore:
    """Records digests of signatures and signed content; a second sighting is a replay."""

    def __init__(
        self, db: Database, window: timedelta, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = db
        self._window = window
        self._clock = clock

    async def seen_or_record(self, digests: Sequence[str]) -> bool:
        """True if any digest was seen within the window; otherwise record them all."""
        if not digests:
            return False
        now = self._clock()
        rows = [
            {"digest": d, "seen_at": now, "expires_at": now + self._window}
            for d in dict.fromkeys(digests)
        ]
        # Group-committed with the hub's other hot writes: a batch that meets a replay fails,
        # and the group commit retries its writes one by one, so only the replay sees the error.
        try:
            if self._db.direct is not None:
                await self._db.direct.write(partial(_record_on_sqlite, now=now, rows=rows))
            else:
                await self._db.pg_lane.write(partial(_record_on_pg, now=now, rows=rows))
        except IntegrityError:
            return True
        return False
