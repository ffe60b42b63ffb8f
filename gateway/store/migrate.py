"""Alembic migrations, driven from code so `gateway db upgrade` needs no alembic.ini."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

from gateway.store.engine import ensure_sqlite_dir, is_sqlite

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the schema at url up to revision (blocking: call from a thread inside a loop)."""
    if is_sqlite(url):
        ensure_sqlite_dir(url)
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "heads") -> None:
    # env.py runs its own event loop, which cannot nest inside ours.
    await asyncio.to_thread(upgrade, url, revision)
