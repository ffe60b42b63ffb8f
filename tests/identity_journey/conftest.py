"""A real demo hub with the identity routes and services, a movable clock, on a real port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.clock import MovableClock
from gateway.config import Config, parse_config
from gateway.web.app import create_app


@dataclass
class IdentityHub:
    url: str
    app: web.Application
    session: aiohttp.ClientSession
    config: Config
    clock: MovableClock
    data_dir: Path

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        auth: tuple[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {"Authorization": aiohttp.encode_basic_auth(*auth)} if auth else {}
        async with self.session.request(
            method, self.url + path, json=json, headers=headers
        ) as resp:
            body = await resp.json(content_type=None)
            return resp.status, body, resp

    async def post_xml(self, xml: str, path: str = "/submission") -> bytes:
        async with self.session.post(self.url + path, data=xml.encode("utf-8")) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.read()


IdentityHubFactory = Callable[..., Any]


@pytest.fixture
async def identity_hub_factory(tmp_path: Path) -> AsyncIterator[IdentityHubFactory]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(raw: dict[str, Any] | None = None) -> IdentityHub:
        settings = dict(raw or {})
        settings.setdefault("data_dir", str(tmp_path / "var"))
        settings.setdefault("dispatcher", {"idle_poll_seconds": 0.05})
        settings.setdefault("demo", True)
        settings.setdefault("pki", {"dir": str(tmp_path / "certs")})
        settings.setdefault("server", {"https_port": 0})
        config = parse_config(settings)
        clock = MovableClock()
        app = create_app(config, clock=clock)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        session = aiohttp.ClientSession()
        sessions.append(session)
        port = runner.addresses[0][1]
        return IdentityHub(
            f"http://127.0.0.1:{port}", app, session, config, clock, Path(settings["data_dir"])
        )

    yield start
    for session in sessions:
        await session.close()
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def ihub(identity_hub_factory: IdentityHubFactory) -> IdentityHub:
    hub: IdentityHub = await identity_hub_factory()
    return hub
