"""What the CLI commands share: errors as CLI errors, and work on the hub's database."""

from __future__ import annotations

import asyncio
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


async def with_database(
    config: Config, work: Callable[[Database], Awaitable[T]], *, upgrade: bool = False
) -> T:
    """Open the hub's database (brought up to date first if `upgrade`), do work, close it."""
    from gateway.store.engine import Database

    if upgrade:
        from gateway.store.startup import upgrade_locked

        await upgrade_locked(config.database_url)
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
