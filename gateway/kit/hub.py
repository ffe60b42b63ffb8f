"""A real hub in this process with one supplier connector routed in: for tests and the checks.

The hub is the one `gateway serve` runs (create_app, a fresh SQLite file, its own PKI, the
dispatcher), listening on a free loopback port and spoken to over real HTTP with the hub's own
GovTalk client, so a connector that passes here behaves the same behind a deployed hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import sqlite3
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web
from lxml import etree
from sqlalchemy.engine import make_url

from connectors.protocol import Connector, ConnectorContext
from gateway.client import Cycle, Exchange, GovTalkClient
from gateway.config import Config, parse_config
from gateway.govtalk import requests
from gateway.govtalk.errors import GovTalkError
from gateway.govtalk.model import TIL_SUFFIX, Envelope, Qualifier
from gateway.kit.subject import CONNECTOR_NAME, from_factory
from gateway.routing.registry import ConnectorSet
from gateway.web.app import create_app
from gateway.web.keys import CONNECTORS

# Polls wait PollInterval / POLL_SPEEDUP: the protocol's pacing, without a test waiting seconds.
POLL_SPEEDUP = 20.0


@dataclass(frozen=True, slots=True)
class HubRoute:
    """One route to the connector under test, as `[connectors.*]` and `[[routes]]` would give it.

    connector is a `gateway.connectors` entry-point name or a `module:attribute` factory.
    auth_level 0 lets the tests submit without registering and enrolling a citizen; retries 0
    makes a failing connector's answer (3000 / 2005) arrive without the hub's back-off.
    """

    connector: str
    class_: str
    organisation: str
    options: Mapping[str, Any] = field(default_factory=dict)
    timeout: float = 10.0
    retries: int = 0
    mode: Literal["async", "sync"] = "async"
    poll_interval: int = 1
    auth_level: float = 0


@dataclass(frozen=True, slots=True)
class HubAnswer:
    """The final reply to one submission: a response or an error, and the whole conversation."""

    qualifier: str  # "response" | "error" | "acknowledgement" (still pending when polls ran out)
    correlation_id: str | None
    errors: tuple[GovTalkError, ...]  # GovTalkErrors (business errors carry their Locations)
    body: bytes | None  # the Body's element: the business reply, or the ErrorResponse
    cycle: Cycle

    @property
    def ok(self) -> bool:
        return self.qualifier == Qualifier.RESPONSE

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(e.number for e in self.errors)

    @property
    def locations(self) -> tuple[str, ...]:
        return tuple(loc for e in self.errors for loc in e.locations)

    def element(self) -> etree._Element | None:
        """The Body's element, parsed (the hub built it, so it is trusted XML)."""
        return None if self.body is None else etree.fromstring(self.body)


@dataclass(slots=True)
class GatewayHub:
    """A running hub: its URL, its configuration, and a GovTalk client to talk to it."""

    url: str
    route: HubRoute
    config: Config
    app: web.Application
    client: GovTalkClient

    @property
    def submission_url(self) -> str:
        return f"{self.url}/submission"

    @property
    def connector(self) -> Connector:
        """The connector instance the hub routes to (to inspect its state in a test)."""
        return self._routed()[0]

    @property
    def context(self) -> ConnectorContext:
        """The ConnectorContext the hub gave it (for calling its capabilities directly)."""
        return self._routed()[1]

    def _routed(self) -> tuple[Connector, ConnectorContext]:
        found = self.app[CONNECTORS].get(CONNECTOR_NAME)
        if found is None:
            raise RuntimeError("the hub has not started its connectors")
        return found

    async def send(self, message: Envelope | bytes) -> Exchange:
        """One message to /submission, its reply parsed (protocol errors are replies, not raises)."""
        return await self.client.send(self.submission_url, message)

    async def submit(
        self,
        body: etree._Element | bytes | str,
        *,
        keys: Mapping[str, str] | None = None,
        class_: str | None = None,
        organisation: str | None = None,
        test_in_live: bool = False,
        gateway_test: bool = False,
        transaction_id: str | None = None,
        wait: float | None = None,
    ) -> HubAnswer:
        """Submit, poll until answered (or `wait` seconds pass), delete; the final answer."""
        class_ = (class_ or self.route.class_) + (TIL_SUFFIX if test_in_live else "")
        envelope = requests.submission(
            class_,
            body,
            keys=keys,
            organisation=organisation or self.route.organisation,
            transaction_id=transaction_id,
            gateway_test=gateway_test,
        )
        if wait is None:
            wait = self.route.timeout * (self.route.retries + 1) + 5
        polls = math.ceil(wait * POLL_SPEEDUP / max(1, self.route.poll_interval))
        cycle = await self.client.cycle(envelope, max_polls=polls, speedup=POLL_SPEEDUP)
        final = cycle.final
        return HubAnswer(
            qualifier=final.message.qualifier,
            correlation_id=final.message.correlation_id,
            errors=tuple(final.errors),
            body=None if final.body is None else etree.tostring(final.body, encoding="utf-8"),
            cycle=cycle,
        )


def hub_settings(route: HubRoute, workdir: Path, port: int) -> dict[str, Any]:
    """The hub's configuration: no demo councils, one connector, one route, files in workdir."""
    return {
        "demo": False,
        "data_dir": str(workdir / "var"),
        "pki": {"dir": str(workdir / "certs")},
        "server": {"port": port, "https_port": 0},
        "dispatcher": {"idle_poll_seconds": 0.05},
        "connectors": {CONNECTOR_NAME: {"type": route.connector, **route.options}},
        "routes": [
            {
                "class": route.class_,
                "organisation": route.organisation,
                "connector": CONNECTOR_NAME,
                "timeout": route.timeout,
                "retries": route.retries,
                "mode": route.mode,
                "poll_interval": route.poll_interval,
                "auth_level": route.auth_level,
            }
        ],
    }


@contextlib.asynccontextmanager
async def start_hub(route: HubRoute, workdir: Path) -> AsyncIterator[GatewayHub]:
    """Serve a hub with route on a free loopback port until the block ends."""
    # No base_dir: relative paths in the connector's options resolve against the working
    # directory, as they do for `gateway serve` without a configuration file.
    config = parse_config(hub_settings(route, workdir, _free_port()))
    connectors = None
    if ":" in route.connector:
        # Not installed yet: built from its factory, the way the registry builds entry points.
        connectors = ConnectorSet()
        connector, ctx = from_factory(route.connector, config.connectors[0], config.data_dir)
        connectors.add(connector, ctx)
    await asyncio.to_thread(_wal_first, config)
    app = create_app(config, connectors=connectors)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", config.server.port).start()
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{config.server.port}"
            yield GatewayHub(url, route, config, app, GovTalkClient(session, f"{url}/submission"))
    finally:
        await runner.cleanup()


def _wal_first(config: Config) -> None:
    """Put a fresh SQLite file in WAL mode before the hub opens it.

    At startup the hub's engines each switch the file to WAL on their first connection, and
    several connect at once (migrations, the SSO keyring, the dispatcher); SQLite may refuse
    a concurrent switch with "database is locked" without waiting. The mode is stored in the
    file, so doing it once first leaves the hub exactly as it would be, minus the race — which
    matters here because the kit starts a fresh hub for every test.
    """
    url = make_url(config.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    path = Path(url.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
