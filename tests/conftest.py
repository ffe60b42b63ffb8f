"""Shared fixtures: a real hub on a real socket, with a fresh database per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright

from gateway import logs
from gateway.config import DATABASE_URL_ENV, Config, parse_config
from gateway.routing.registry import ConnectorSet
from gateway.store.migrate import upgrade_async
from gateway.web.app import create_app
from gateway.web.server import tls_context

ROOT = Path(__file__).resolve().parent.parent

# In-process hubs log as `gateway serve` does, to stderr. Unconfigured, structlog prints to
# whatever sys.stdout is at that moment: a CLI command's captured JSON answer, say, when a hub
# logs while CliRunner has swapped the streams.
logs.configure("INFO")


@dataclass
class Hub:
    """A running hub: its base URL, its app, and an HTTP session to talk to it."""

    url: str
    app: web.Application
    session: aiohttp.ClientSession
    config: Config
    https_url: str | None = None

    @property
    def submission_url(self) -> str:
        return f"{self.url}/submission"

    @property
    def poll_url(self) -> str:
        return f"{self.url}/poll"

    async def post(self, data: bytes | str, *, path: str = "/submission", **kw: Any) -> bytes:
        body = data.encode("utf-8") if isinstance(data, str) else data
        async with self.session.post(f"{self.url}{path}", data=body, **kw) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.read()


HubFactory = Callable[..., Any]


@pytest.fixture
async def hub_factory(tmp_path: Path) -> AsyncIterator[HubFactory]:
    """Start hubs with config overrides; all are stopped at the end of the test."""
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(
        raw: dict[str, Any] | None = None,
        *,
        connectors: ConnectorSet | None = None,
        data_dir: Path | None = None,
        https: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> Hub:
        settings = dict(raw or {})
        settings.setdefault("data_dir", str(data_dir or tmp_path / "var"))
        settings.setdefault("pki", {"dir": str(tmp_path / "certs")})
        settings.setdefault("dispatcher", {"idle_poll_seconds": 0.05})
        # Ports are fixed before the app exists: issued certificates carry the CRL and OCSP URLs.
        server = dict(settings.get("server", {}))
        server.setdefault("port", free_port())
        server.setdefault("https_port", free_port() if https else 0)
        settings["server"] = server
        config = parse_config(settings)
        app = create_app(config, connectors=connectors, **({"clock": clock} if clock else {}))
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", config.server.port).start()
        https_url = None
        context = tls_context(config)
        if context is not None:
            await web.TCPSite(
                runner, "127.0.0.1", config.server.https_port, ssl_context=context
            ).start()
            https_url = f"https://localhost:{config.server.https_port}"
        runners.append(runner)
        session = aiohttp.ClientSession()
        sessions.append(session)
        return Hub(f"http://127.0.0.1:{config.server.port}", app, session, config, https_url)

    yield start
    for session in sessions:
        await session.close()
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def hub(hub_factory: HubFactory) -> Hub:
    """The demo hub with its default configuration (both councils, async routes)."""
    return await hub_factory()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HubProcess:
    """A `gateway serve` child process."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path


@pytest.fixture
def spawn_hub(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(config_path: Path, *serve_args: str) -> HubProcess:
        port = free_port()
        log = tmp_path / f"hub-{port}.log"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway.cli",
                    "--config",
                    str(config_path),
                    "serve",
                    "--port",
                    str(port),
                    "--https-port",
                    "0",
                    *serve_args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"hub exited: {log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"hub did not start: {log.read_text()}")
        return HubProcess(proc, url, log)

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


SERVER = os.environ.get("GATEWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
# GATEWAY_TEST_DATABASE=postgresql runs the whole suite on the local PostgreSQL: each test gets a
# fresh database through GATEWAY_DATABASE_URL, which in-process hubs, `gateway` child processes and
# CLI runs all honour. Tests about SQLite itself are marked `sqlite` and skipped there.
ON_POSTGRES = os.environ.get("GATEWAY_TEST_DATABASE", "sqlite") == "postgresql"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass, leave out tests that never open the hub's database: they would
    only repeat the SQLite pass (and each pay for a database of its own)."""
    if not ON_POSTGRES:
        return
    repeats = [item for item in items if item.get_closest_marker("no_database")]
    if repeats:
        items[:] = [item for item in items if not item.get_closest_marker("no_database")]
        config.hook.pytest_deselected(items=repeats)


async def create_pg_database(template: str = "template1") -> str:
    """A fresh database on the local server (empty, or a copy of template); its SQLAlchemy URL."""
    name = f"gw_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(SERVER)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    base = SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


_migrated: list[str] = []  # the session's template database, once made


async def create_migrated_pg_database() -> str:
    """A fresh database already at the newest migration: a copy of a template migrated once.

    Migrating each test's database would cost a second a test; the migrations themselves are
    tested from an empty database in tests/hub/test_migrations.py and test_postgres.py.
    """
    if not _migrated:
        url = await create_pg_database()
        await upgrade_async(url)
        _migrated.append(url.rsplit("/", 1)[1])
    return await create_pg_database(template=_migrated[0])


@pytest.fixture(scope="session", autouse=True)
def drop_migrated_template() -> Iterator[None]:
    yield
    for name in _migrated:
        asyncio.run(drop_pg_database(f"postgresql+asyncpg://template/{name}"))


async def drop_pg_database(url: str) -> None:
    admin = await asyncpg.connect(SERVER)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.contextmanager
def hub_database() -> Iterator[dict[str, Any]]:
    """Config for a hub outside any one test (a module's or session's): its own database."""
    if not ON_POSTGRES:
        yield {}
        return
    url = asyncio.run(create_migrated_pg_database())
    try:
        yield {"database": {"url": url}}
    finally:
        asyncio.run(drop_pg_database(url))


@pytest.fixture(autouse=True)
def database_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """On the PostgreSQL pass, point every hub this test starts at a database of its own."""
    if not ON_POSTGRES:
        yield
        return
    if request.node.get_closest_marker("sqlite"):
        pytest.skip("about SQLite itself; this pass runs on PostgreSQL")
    url = asyncio.run(create_migrated_pg_database())
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    try:
        yield
    finally:
        asyncio.run(drop_pg_database(url))


@pytest.fixture
async def migrated_url(tmp_path: Path) -> str:
    """A migrated database of this test's own on the pass's backend (PostgreSQL: the one the
    autouse fixture made; SQLite: a file under tmp_path)."""
    url = os.environ.get(DATABASE_URL_ENV) or f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    await upgrade_async(url)
    return url


def table_names(url: str) -> set[str]:
    """The tables in a hub's database, whichever backend it is on."""
    from sqlalchemy import inspect
    from sqlalchemy.ext.asyncio import create_async_engine

    async def read() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh database on the local server, dropped afterwards."""
    url = await create_pg_database()
    yield url
    await drop_pg_database(url)


# --- a real headless Chromium (Debian's /usr/bin/chromium) for the hub's HTML pages --------------
# `browser` is a launched browser, for a test that needs its own context (JavaScript off,
# `ignore_https_errors=True` for the hub's HTTPS port, client certificates); `page` is a page in a
# fresh default context. Both are per test, so they live in the test's own event loop.

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip("Debian's chromium is not installed: apt-get install chromium")
    async with async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    context.set_default_timeout(5_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()
