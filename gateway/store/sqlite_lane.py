"""SQLite off SQLAlchemy, a whole unit of work at a time: the hot path's way to the file.

Through SQLAlchemy and aiosqlite, every statement, BEGIN and COMMIT is a separate hand-off to the
driver's thread, and the session around them costs more than the statement (about 1 ms of CPU
for one poll's read, `python -m bench.micro`). Here a caller hands over a plain function of a
`sqlite3.Connection`, and it runs all at once.

It runs on the event loop's own thread (`SqliteInline`): on another thread every statement gives
the GIL up and then waits for the busy event loop to give it back, so there the work took several
times its own CPU. Only what must wait goes to a lane, a connection on a thread of its own
(`SqliteLane`): work that finds the database held by another connection, and checkpoints (fsync).

The values written are the ones SQLAlchemy writes for the same columns (`to_db_time`,
`to_db_json`), so rows written here and rows written through the ORM read back the same either way.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, StatementError

T = TypeVar("T")

# The busy timeout matches the engines' (gateway/store/engine.py): another process (a second
# worker, the CLI) may hold the write lock for a moment.
BUSY_TIMEOUT_MS = 30_000


class SqliteLane:
    """One sqlite3 connection, used only from one thread; `run` executes work there."""

    def __init__(self, path: str, *, name: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._conn: sqlite3.Connection | None = None

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` on the lane's thread; what it returns or raises.

        A cancelled caller does not stop work already started: it finishes (committing or
        rolling back) on the thread, so the connection is never left mid-transaction.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = _connect(self._path)
        try:
            return work(self._conn)
        except sqlite3.Error as exc:
            raise _as_dbapi(exc) from exc

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Busy(Exception):
    """Another connection holds the database: the work was not done, and may be handed to a lane."""


class SqliteInline:
    """One sqlite3 connection used on the event loop's own thread, for work that never waits.

    It waits on no lock (busy_timeout 0: `Busy` at once, nothing done, any transaction rolled
    back) and writes no checkpoint (wal_autocheckpoint 0: the caller has a lane checkpoint, since
    that is where the fsyncs are). A commit is then SQLite writing the WAL, with no fsync
    (synchronous=NORMAL): what a killed process keeps, as on the lanes.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)`, here and now; raises `Busy` if the database is held elsewhere."""
        if self._closed:  # as a closed lane refuses: never a connection that nobody closes
            raise RuntimeError(f"the database {self._path} is closed")
        if self._conn is None:
            self._conn = _connect(self._path, busy_timeout_ms=0, autocheckpoint=False)
        conn = self._conn
        try:
            return work(conn)
        except sqlite3.Error as exc:
            if conn.in_transaction:  # e.g. a COMMIT refused: never leave the lock held
                conn.execute("ROLLBACK")
            if (exc.sqlite_errorcode or 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise Busy(str(exc)) from exc
            raise _as_dbapi(exc) from exc

    def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def checkpoint(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """Copy what the WAL holds into the database, as far as readers allow; never waits on them."""
    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return busy, frames, copied


def _as_dbapi(exc: sqlite3.Error) -> StatementError:
    # The exceptions the same failure raises through SQLAlchemy (IntegrityError, ...), so
    # callers handle one family whichever path the store took.
    return DBAPIError.instance(None, None, exc, sqlite3.Error)


def _connect(
    path: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, autocheckpoint: bool = True
) -> sqlite3.Connection:
    # isolation_level=None: no implicit BEGIN; a lone SELECT is its own snapshot, and a writer
    # says BEGIN IMMEDIATE itself (`transaction`).
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    if not autocheckpoint:
        conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """`work` inside BEGIN IMMEDIATE … COMMIT, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def to_db_time(value: datetime | None) -> str | None:
    """An aware datetime as SQLAlchemy stores a UTCDateTime on SQLite (naive UTC, microseconds)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def from_db_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def to_db_json(value: Any) -> str:
    """As SQLAlchemy's JSON type writes it (json.dumps; None is JSON null, not SQL NULL)."""
    return json.dumps(value)


def from_db_json(value: str | None) -> Any:
    return None if value is None else json.loads(value)
