"""The schema the code expects is the schema the migrations build, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory

from gateway.store.migrate import HEAD, alembic_config, at_head, upgrade_async


def test_migrations_form_one_line_of_history() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    # migrate.HEAD is what a starting hub compares the database with instead of asking alembic.
    assert script.get_heads() == [HEAD]


async def test_a_database_at_head_is_known_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh' / 'schema.db'}"
    assert not await at_head(url)  # no schema at all
    await upgrade_async(url, "0013")
    assert not await at_head(url)
    await upgrade_async(url)
    assert await at_head(url)


async def test_models_match_migrations_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"
    await upgrade_async(url)
    import asyncio

    # Raises when the models and the upgraded database differ.
    await asyncio.to_thread(command.check, alembic_config(url))


@pytest.mark.postgres
async def test_models_match_migrations_on_postgresql(pg_url: str) -> None:
    import asyncio

    await upgrade_async(pg_url)
    await asyncio.to_thread(command.check, alembic_config(pg_url))
