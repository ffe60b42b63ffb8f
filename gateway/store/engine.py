"""Engine and sessions: SQLite (WAL, serialised writers) by default, PostgreSQL by URL; beside
them each backend's hot-path lanes off the ORM."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import structlog
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from gateway.audit import append
from gateway.audit.append import Event
from gateway.store.group_commit import GroupCommit
from gateway.store.pg_lane import PgDirect
from gateway.store.sqlite_lane import Busy, SqliteInline, SqliteLane, checkpoint, transaction

T = TypeVar("T")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


@asynccontextmanager
async def one_connection(url: str) -> AsyncIterator[AsyncConnection]:
    """A single connection to url, no pool kept (SQLite: its directory made first): for a
    look at the database before the hub opens its engines."""
    if is_sqlite(url):
        ensure_sqlite_dir(url)
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            yield conn
    finally:
        await engine.dispose()


def ensure_wal(url: str) -> None:
    """Put the SQLite file in WAL mode before any pool opens on it (several engines switching at
    once race for the lock the switch needs: 'database is locked' on a fresh file)."""
    database = make_url(url).database
    if database and database != ":memory:":
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as connection:
            connection.execute("PRAGMA journal_mode=WAL")


def _sqlite_engine(url: str, *, immediate: bool, echo: bool) -> AsyncEngine:
    # SQLite has one writer: with a pool of writers, all but one sleep in SQLite's busy handler
    # (the benchmark's profile: 98 % of the database threads' samples), waking late and out of
    # turn. One writing connection makes them queue on the pool instead, in order.
    pool = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 30} if immediate else {}
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, **pool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        # WAL is a property of the file, set once (Database.open); switching needs a lock that a
        # concurrent connection may hold, so only a file not yet in WAL is switched here.
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A read transaction that later writes gets SQLITE_BUSY at once, whatever the timeout;
        # writers take the write lock up front instead.
        connection.exec_driver_sql(begin)

    return engine


DirectWork = Callable[[sqlite3.Connection], Any]


# Inline commits between two checkpoints on the writing lane. SQLite's own default checkpoints
# at 1,000 pages of WAL; a batch of acknowledgements writes some tens of pages.
CHECKPOINT_EVERY = 50

log = structlog.get_logger("gateway.store")


class SqliteDirect:
    """A SQLite file's hot path off SQLAlchemy (gateway/store/sqlite_lane.py): reads and
    group-committed writes on the event loop's thread, each handed to a lane of its own when
    another connection holds the database.

    The inline connection and the writing lane are beside the write engine's; their batches and
    the engine's transactions (`Database.transaction`) hold `turn` while they run, so they take
    turns in order instead of meeting in SQLite's busy handler (which sleeps up to 100 ms at a
    time). Other processes on the file make the inline work `Busy`: it waits on a lane instead.
    """

    def __init__(self, path: str) -> None:
        self.turn = asyncio.Lock()
        self.inline = SqliteInline(path)
        self.reader = SqliteLane(path, name="sqlite-read")
        self.writer = SqliteLane(path, name="sqlite-write")
        self._group: GroupCommit[tuple[DirectWork, Sequence[Event]]] = GroupCommit(self._commit)
        self._uncheckpointed = 0
        self._checkpointing: asyncio.Task[None] | None = None

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` outside any transaction (one statement, one snapshot)."""
        try:
            return self.inline.run(work)
        except Busy:
            return await self.reader.run(work)

    async def write(
        self, work: Callable[[sqlite3.Connection], T], *, audited: Sequence[Event] = ()
    ) -> T:
        """`work` in a write transaction shared with concurrent callers; returns once committed.

        `audited` are audit events appended in the same transaction, after every write of the
        batch: they commit with the change they record, or not at all."""
        return cast(T, await self._group.run((work, audited)))

    async def _commit(self, batch: list[tuple[DirectWork, Sequence[Event]]]) -> list[Any]:
        def run(conn: sqlite3.Connection) -> list[Any]:
            results = [work(conn) for work, _ in batch]
            events = [event for _, audited in batch for event in audited]
            if events:
                append.on_sqlite(conn, events)
            return results

        def whole(conn: sqlite3.Connection) -> list[Any]:
            return transaction(conn, run)

        async with self.turn:
            try:
                results = self.inline.run(whole)
            except Busy:
                # Not counted below: the lane's own connection checkpoints after its commits.
                return await self.writer.run(whole)
        self._uncheckpointed += 1
        if self._uncheckpointed >= CHECKPOINT_EVERY and self._checkpointing is None:
            self._uncheckpointed = 0
            self._checkpointing = asyncio.create_task(self._checkpoint(), name="sqlite-checkpoint")
        return results

    async def _checkpoint(self) -> None:
        try:
            # In turn, as SQLite's own checkpoint runs between its writer's transactions: one
            # that copies every frame lets the next writer start the WAL again from its
            # beginning; one racing new frames never does, and the file grows without end.
            async with self.turn:
                await self.writer.run(checkpoint)
        except Exception as exc:  # the next one tries again; the WAL only grows meanwhile
            log.warning("store.checkpoint_failed", error=str(exc))
        finally:
            self._checkpointing = None

    async def aclose(self) -> None:
        await self._group.wait_idle()
        if self._checkpointing is not None:
            await self._checkpointing
        self.inline.close()
        await self.reader.aclose()
        await self.writer.aclose()


@dataclass(slots=True, weakref_slot=True, eq=False)
class Database:
    """Two session factories: `write` for read-modify-write, `read` for queries; for the hot
    path, `direct` lanes on a SQLite file or `pg` on PostgreSQL (exactly one of the two)."""

    url: str
    write_engine: AsyncEngine
    read_engine: AsyncEngine
    write: async_sessionmaker[AsyncSession]
    read: async_sessionmaker[AsyncSession]
    direct: SqliteDirect | None = None
    pg: PgDirect | None = None

    @classmethod
    def open(cls, url: str, *, echo: bool = False) -> Database:
        direct = pg = None
        if is_sqlite(url):
            database = make_url(url).database
            if not database or database == ":memory:":
                # Each engine would have a database of its own: nothing written would be read.
                raise ValueError("the hub needs a SQLite file, not an in-memory database")
            ensure_sqlite_dir(url)
            ensure_wal(url)
            write_engine = _sqlite_engine(url, immediate=True, echo=echo)
            read_engine = _sqlite_engine(url, immediate=False, echo=echo)
            direct = SqliteDirect(database)
        else:
            # The hot path has a pool of its own (pg_lane.POOL_SIZE); the ORM serves the rest.
            # Together at most 18 connections a process (README, "Shared hub").
            write_engine = read_engine = create_async_engine(
                url, echo=echo, pool_size=5, max_overflow=5, pool_pre_ping=True
            )
            pg = PgDirect(url)
        return cls(
            url=url,
            write_engine=write_engine,
            read_engine=read_engine,
            write=async_sessionmaker(write_engine, expire_on_commit=False),
            read=async_sessionmaker(read_engine, expire_on_commit=False),
            direct=direct,
            pg=pg,
        )

    @property
    def pg_lane(self) -> PgDirect:
        """The PostgreSQL lane: for the hot path where `direct` is None."""
        if self.pg is None:
            raise RuntimeError("not a PostgreSQL database")
        return self.pg

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction, committed on success."""
        async with (
            self.direct.turn if self.direct is not None else contextlib.nullcontext(),
            self.write() as session,
            session.begin(),
        ):
            yield session

    async def aclose(self) -> None:
        if self.direct is not None:
            await self.direct.aclose()
        if self.pg is not None:
            await self.pg.aclose()
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
