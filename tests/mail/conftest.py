"""A real demo hub with the mail routes and services, a movable clock, on a real port."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.clock import MovableClock
from gateway.config import Config, parse_config
from gateway.demo import SUNDERLAND, citizens_list
from gateway.services.mail.service import MailService
from gateway.web.app import create_app
from gateway.web.mail_views import MAIL


def citizen(user_id: str) -> tuple[str, str]:
    found = next(c for c in citizens_list() if c.user_id == user_id)
    return found.user_id, found.password


def account_ref(user_id: str, organisation: str = SUNDERLAND) -> str:
    found = next(c for c in citizens_list() if c.user_id == user_id)
    return next(e.account_ref for e in found.enrolments if e.organisation == organisation)


SUN = "DEMO0SUN0001"  # enrolled at Sunderland
MOV = "DEMO0MOV0001"  # enrolled at Sunderland too, another account
SED = "DEMO0SED0001"  # Sedgemoor only


@dataclass
class MailHub:
    url: str
    app: web.Application
    runner: web.AppRunner
    session: aiohttp.ClientSession
    config: Config
    clock: MovableClock
    data_dir: Path
    sent: int = field(default=0)

    @property
    def mail(self) -> MailService:
        return self.app[MAIL]

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        sent = dict(headers or {})
        if auth:
            sent["Authorization"] = aiohttp.encode_basic_auth(*auth)
        async with self.session.request(method, self.url + path, json=json, headers=sent) as resp:
            if resp.status == 204:
                return resp.status, None
            return resp.status, await resp.json(content_type=None)

    async def council_send(
        self,
        account: str,
        *,
        organisation: str = SUNDERLAND,
        class_: str = "LA-CTAX-VIEW",
        subject: str = "Your bill",
        body: str = "Your new bill is ready.",
        sender_message_id: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> tuple[int, Any]:
        self.sent += 1
        payload = {
            "class": class_,
            "key_type": "CTaxAccountRef",
            "key_value": account,
            "subject": subject,
            "body": body,
            "sender_message_id": sender_message_id or f"msg-{self.sent}-{secrets.token_hex(4)}",
            **extra,
        }
        return await self.call(
            "POST",
            "/api/council/mail",
            json=payload,
            headers=headers if headers is not None else {"X-Council": organisation},
        )

    async def stop(self) -> None:
        await self.session.close()
        await self.runner.cleanup()


MailHubFactory = Callable[..., Any]


@pytest.fixture
async def mail_hub_factory(tmp_path: Path) -> AsyncIterator[MailHubFactory]:
    hubs: list[MailHub] = []

    async def start(mail: dict[str, Any] | None = None, **raw: Any) -> MailHub:
        settings = dict(raw)
        settings.setdefault("data_dir", str(tmp_path / "var"))
        settings.setdefault("dispatcher", {"idle_poll_seconds": 0.05})
        settings.setdefault("demo", True)
        settings.setdefault("pki", {"dir": str(tmp_path / "certs")})
        settings.setdefault("server", {"https_port": 0})
        settings["mail"] = {"expiry_interval_seconds": 3600, **(mail or {})}
        config = parse_config(settings)
        clock = MovableClock()
        app = create_app(config, clock=clock)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        hub = MailHub(
            f"http://127.0.0.1:{port}",
            app,
            runner,
            aiohttp.ClientSession(),
            config,
            clock,
            Path(settings["data_dir"]),
        )
        hubs.append(hub)
        return hub

    yield start
    for hub in reversed(hubs):
        if not hub.session.closed:
            await hub.stop()


@pytest.fixture
async def mhub(mail_hub_factory: MailHubFactory) -> MailHub:
    hub: MailHub = await mail_hub_factory()
    return hub
