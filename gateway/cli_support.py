"""What the CLI commands share: errors as CLI errors, and work on the hub's database."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import click

from gateway.config import Config

if TYPE_CHECKING:
    from gateway.store.engine import Database

T = TypeVar("T")


@contextmanager
def cli_errors(*kinds: type[Exception]) -> Iterator[None]:
    """Errors of these kinds end the command as a CLI error with their message."""
    try:
        yield
    except kinds as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """A database that cannot be reached or migrated ends the command with one line saying why.

    Only around connecting and migrating (`reach_database`, `upgrade_locked`): the same kinds of
    error from a command's own work are bugs, whose tracebacks are wanted.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except Exception as exc:
        if not _database_failure(exc):
            raise
        reason = exc.orig if isinstance(exc, DBAPIError) else exc
        # SQLAlchemy's messages run on with the SQL and a link; the first line says it.
        first = (str(reason).strip().splitlines() or [type(reason).__name__])[0]
        shown = make_url(url).render_as_string(hide_password=True)
        raise click.ClickException(f"database {shown}: {first}") from exc


def _database_failure(exc: Exception) -> bool:
    """The driver's, SQLAlchemy's or alembic's error (a refused connection, a wrong password, a
    database or revision that does not exist)."""
    from sqlalchemy.exc import SQLAlchemyError

    kinds: list[type[Exception]] = [OSError, SQLAlchemyError]
    # Looked up, not imported: importing alembic costs `gateway serve` a third of its start, and
    # what was never imported raised nothing.
    for module, name in (
        ("alembic.util.exc", "CommandError"),
        ("asyncpg", "PostgresError"),
        ("asyncpg", "InterfaceError"),
    ):
        if module in sys.modules:
            kinds.append(getattr(sys.modules[module], name))
    return isinstance(exc, tuple(kinds))


async def reach_database(url: str) -> None:
    """Connect to the database once (SQLite: make its directory), or fail as the driver does."""
    from sqlalchemy import text

    from gateway.store.engine import one_connection

    async with one_connection(url) as conn:
        await conn.execute(text("SELECT 1"))


async def with_database(
    config: Config, work: Callable[[Database], Awaitable[T]], *, upgrade: bool = False
) -> T:
    """Open the hub's database (brought up to date first if `upgrade`), do work, close it."""
    from gateway.store.engine import Database
    from gateway.store.startup import upgrade_locked

    with database_errors(config.database_url):
        if upgrade:
            await upgrade_locked(config.database_url)
        else:
            await reach_database(config.database_url)
    db = Database.open(config.database_url)
    try:
        return await work(db)
    finally:
        await db.aclose()


def run_with_database(
    config: Config, work: Callable[[Database], Awaitable[T]], *, upgrade: bool = False
) -> T:
    """`with_database` from synchronous code: a command's own event loop."""
    return asyncio.run(with_database(config, work, upgrade=upgrade))
