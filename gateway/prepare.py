"""What a hub needs before it serves: its database migrated (and seeded with the demo), its PKI.

Both `create_app`'s startup and the supervisor of `gateway serve --workers N` run these; the
supervisor runs nothing else, so it imports them from here rather than the whole web app.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from gateway import demo
from gateway.config import Config
from gateway.pki.ca import Pki
from gateway.store.engine import Database
from gateway.store.migrate import upgrade_async
from gateway.store.startup import startup_lock


async def prepare_database(config: Config) -> Database:
    """Migrate and (demo) seed under the startup lock, so that processes sharing it take turns."""
    async with startup_lock(config.database_url):
        await upgrade_async(config.database_url)
        db = Database.open(config.database_url, echo=config.database.echo)
        if config.demo:
            await demo.seed(db, config)
    return db


def pki_provider(config: Config) -> Callable[[], Pki]:
    """The hub's PKI, created on first use (like `gateway certs init`) and then kept."""

    @functools.cache
    def pki() -> Pki:
        return Pki.ensure(config.pki_dir, base_url=config.pki_base_url, hosts=config.pki.hosts)

    return pki
