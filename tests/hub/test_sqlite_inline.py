"""SQLite's hot path runs on the event loop's thread (gateway/store/sqlite_lane.py SqliteInline):
what it must still do is wait (on a lane, not on the loop) when another process holds the file,
and keep the WAL from growing, since its own connection never checkpoints."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.store import submissions as store
from gateway.store.engine import CHECKPOINT_EVERY, Database
from tests.hub.rows import submission

pytestmark = pytest.mark.sqlite


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Database]:
    database = Database.open(migrated_url)  # a file under tmp_path: this module is SQLite's
    yield database
    await database.aclose()


def file_of(db: Database) -> str:
    return db.url.split(":///", 1)[1]


async def ticks_while(task: asyncio.Future[Any], seconds: float) -> int:
    """How often the loop ran another coroutine in `seconds` while `task` was pending."""
    count = 0
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
        count += 1
    assert not task.done(), "the work did not wait for the other connection"
    return count


async def test_a_write_waits_off_the_loop_while_another_process_holds_the_file(
    db: Database,
) -> None:
    await store.insert(db, submission("before"))  # the inline connection is open and in use
    other = sqlite3.connect(file_of(db), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # what a second worker or a CLI command does
    other.execute("UPDATE submissions SET attempts = 7 WHERE correlation_id = 'before'")

    write = asyncio.ensure_future(store.insert(db, submission("during")))
    ticks = await ticks_while(write, 0.3)
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(write, 10)

    assert ticks >= 10  # the loop kept serving meanwhile
    during = await store.get(db, "during")
    before = await store.get(db, "before")
    assert during is not None and before is not None and before.attempts == 7


async def test_the_wal_is_checkpointed_and_started_again_under_a_stream_of_commits(
    db: Database,
) -> None:
    assert db.direct is not None
    await db.direct.write(lambda conn: conn.execute("CREATE TABLE ballast (b BLOB)"))
    commits = 400  # eight checkpoints' worth
    assert commits >= 8 * CHECKPOINT_EVERY
    for _ in range(commits):  # 16 KB a commit: 6.4 MB in all
        await db.direct.write(
            lambda conn: conn.execute("INSERT INTO ballast VALUES (?)", (b"x" * 16_384,))
        )

    wal_size = await asyncio.to_thread(os.path.getsize, file_of(db) + "-wal")
    assert wal_size < 3_000_000  # never checkpointed, it would hold all 6.4 MB
    count = await db.direct.read(
        lambda conn: conn.execute("SELECT count(*) FROM ballast").fetchone()[0]
    )
    assert count == commits
