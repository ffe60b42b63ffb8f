"""PostgreSQL's hot path off SQLAlchemy: plain asyncpg on a pool of its own.

Through the ORM a poll's one-row read cost about 1 ms of the event loop (the session, statement
compilation and cache keys, the greenlet bridge, the result machinery): 41 % of the loop's time
under a cycle load, against 9 % for the GovTalk parsing and serialising. Here the submit, poll,
delete and delivery paths run their few statements on asyncpg directly, with values encoded as
SQLAlchemy encodes them (gateway/store/row_codec.py), so rows written either way read back the
same; everything else keeps the ORM.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias, TypeVar, cast

import asyncpg  # type: ignore[import-untyped,unused-ignore]  # it ships no type information
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from gateway.audit import append
from gateway.audit.append import Event
from gateway.store.group_commit import GroupCommit

T = TypeVar("T")
Connection: TypeAlias = asyncpg.Connection  # what a lane's work is given
PgWork = Callable[[Connection], Awaitable[Any]]

# Enough for the dispatcher's slots and the request handlers at once (writes share a connection
# per batch); with the ORM's pool (gateway/store/engine.py) at most 18 connections a process.
POOL_SIZE = 8
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def numbered(sql: str) -> tuple[str, list[str]]:
    """SQL with `:name` parameters as asyncpg's `$n`, and the names in `$n` order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _NAMED.sub(number, sql), names


def asyncpg_dsn(url: str) -> str:
    """The libpq-style DSN asyncpg takes for a SQLAlchemy `postgresql+asyncpg://` URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _as_dbapi_error(exc: BaseException) -> DBAPIError:
    """The SQLAlchemy exception the same failure raises through the ORM (IntegrityError, ...),
    so callers handle one family whichever path the store took."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityError(None, None, exc)
    return OperationalError(None, None, exc)


class PgDirect:
    """Reads on pooled connections; writes group-committed, each batch one transaction.

    A connection the server closed while it sat in the pool (a restart, an administrator's
    pg_terminate_backend) is noticed and replaced by asyncpg's pool when it is next acquired.
    """

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self._dsn = asyncpg_dsn(url)
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._group: GroupCommit[tuple[PgWork, Sequence[Event]]] = GroupCommit(self._commit)

    async def read(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """`work` on a pooled connection, outside any transaction (each statement its own)."""
        try:
            pool = await self._connected()
            async with pool.acquire() as conn:
                return await work(conn)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise _as_dbapi_error(exc) from exc

    async def write(
        self, work: Callable[[Connection], Awaitable[T]], *, audited: Sequence[Event] = ()
    ) -> T:
        """`work` in a transaction shared with concurrent callers; returns once committed.

        `audited` are audit events appended in the same transaction, after every write of the
        batch (so the chain head is the last lock it takes, and hubs sharing the database cannot
        deadlock on it): they commit with the change they record, or not at all."""
        return cast(T, await self._group.run((work, audited)))

    async def _commit(self, batch: list[tuple[PgWork, Sequence[Event]]]) -> list[Any]:
        try:
            pool = await self._connected()
            async with pool.acquire() as conn, conn.transaction():
                results = [await work(conn) for work, _ in batch]
                events = [event for _, audited in batch for event in audited]
                if events:
                    await append.on_pg(conn, events)
                return results
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            raise _as_dbapi_error(exc) from exc

    async def _connected(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=self._pool_size
                    )
        return self._pool

    async def aclose(self) -> None:
        await self._group.wait_idle()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
