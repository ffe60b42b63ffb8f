"""Alembic migrations, driven from code so `gateway db upgrade` needs no alembic.ini."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

from gateway.store.engine import ensure_sqlite_dir, is_sqlite, one_connection

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration's revision (tests/hub/test_migrations.py holds it to alembic's head). A
# hub starting on a database already there need not import alembic at all: a third of its start.
HEAD = "0016"


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the schema at url up to revision (blocking: call from a thread inside a loop)."""
    from alembic import command

    if is_sqlite(url):
        ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "heads") -> None:
    if revision == "heads" and await at_head(url):
        return
    # env.py runs its own event loop, which cannot nest inside ours.
    await asyncio.to_thread(upgrade, url, revision)


async def at_head(url: str) -> bool:
    """Whether the database's schema is already the newest migration's."""
    try:
        async with one_connection(url) as conn:
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    except Exception:
        return False  # no schema yet (or none alembic made): the upgrade will say what is wrong
    return bool(version == HEAD)
