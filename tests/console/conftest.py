"""The console over real HTTP: a cookie-keeping client, CSRF tokens, audit records."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from gateway.store.audit_models import AuditRecord
from gateway.web.keys import DB
from tests.conftest import Hub

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    """A browser-like client of one hub's console: keeps cookies (127.0.0.1 included)."""

    hub: Hub
    session: aiohttp.ClientSession
    base: str

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        async with self.session.get(f"{self.base}{path}", **kw) as resp:
            return resp.status, await resp.text()

    async def post(
        self, path: str, data: dict[str, str], *, token: bool = True, **kw: Any
    ) -> aiohttp.ClientResponse:
        """POST a form (with this browser's CSRF token unless told not to); no redirects."""
        if token:
            data = {"csrf_token": await self.csrf(), **data}
        async with self.session.post(
            f"{self.base}{path}", data=data, allow_redirects=False, **kw
        ) as resp:
            await resp.read()
            return resp

    async def csrf(self) -> str:
        """The token the console's forms carry for this browser (its cookie is set on the way)."""
        status, page = await self.get("/console/connectors")
        if status != 200:
            status, page = await self.get("/console/sign-in")
        found = _CSRF.search(page)
        assert found, page
        return found.group(1)


@pytest.fixture
async def console_for() -> AsyncIterator[Callable[..., Console]]:
    sessions: list[aiohttp.ClientSession] = []

    def make(hub: Hub, *, base: str | None = None, ssl: Any = None) -> Console:
        connector = aiohttp.TCPConnector(ssl=ssl) if ssl is not None else None
        session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), connector=connector
        )
        sessions.append(session)
        return Console(hub, session, base or hub.url)

    yield make
    for session in sessions:
        await session.close()


@pytest.fixture
async def console(hub: Hub, console_for: Callable[..., Console]) -> Console:
    return console_for(hub)


async def audit_records(
    hub: Hub, event: str, *, at_least: int = 1, limit: float = 5
) -> list[AuditRecord]:
    """The hub's audit records of this event, waiting (briefly) for the batch writer."""
    async with asyncio.timeout(limit):
        while True:
            async with hub.app[DB].read() as session:
                found = list(
                    await session.scalars(
                        select(AuditRecord)
                        .where(AuditRecord.event == event)
                        .order_by(AuditRecord.seq)
                    )
                )
            if len(found) >= at_least:
                return found
            await asyncio.sleep(0.05)
