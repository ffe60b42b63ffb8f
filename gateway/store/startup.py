"""One hub process at a time migrates and seeds a database; the others wait, then find it done.

Several processes share one database under `gateway serve --workers N`, and several hosts share
one PostgreSQL in a scale-out deployment; each runs migrations and the demo seed as it starts.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from gateway.store.engine import ensure_sqlite_dir, is_sqlite
from gateway.store.migrate import upgrade_async

# pg_advisory_lock's key: any constant the hub alone uses ("gate").
LOCK_KEY = 0x67617465


@asynccontextmanager
async def startup_lock(url: str) -> AsyncIterator[None]:
    """Hold the database's startup lock: a PostgreSQL advisory lock, or a lock file beside SQLite."""
    if not is_sqlite(url):
        async with _advisory_lock(url):
            yield
        return
    database = make_url(url).database
    if not database or database == ":memory:" or os.name == "nt":
        yield  # nothing another process could share (or no flock): nothing to serialise
        return
    import fcntl

    ensure_sqlite_dir(url)
    with Path(f"{database}.startup-lock").open("a") as handle:  # noqa: ASYNC230 - a tiny local file
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@asynccontextmanager
async def _advisory_lock(url: str) -> AsyncIterator[None]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            # Session-level: held until unlocked or this connection closes (a killed process
            # cannot leave it held).
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
    finally:
        await engine.dispose()


async def upgrade_locked(url: str, revision: str = "heads") -> None:
    """Migrate under the startup lock (for tools; a starting hub also seeds under it)."""
    async with startup_lock(url):
        await upgrade_async(url, revision)
