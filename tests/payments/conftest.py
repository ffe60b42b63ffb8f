"""A real demo hub with the payment routes and service, a movable clock, on a real port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.clock import MovableClock
from gateway.config import Config, parse_config
from gateway.services.payments import PaymentService
from gateway.web.app import create_app
from gateway.web.payment_views import PAYMENTS
from tests.serving import serving

SUNDERLAND = "E08000024"
RETURN_URL = "https://council.example/paid"
GOOD_CARD = {
    "card-number": "4242424242424242",
    "expiry-month": "12",
    "expiry-year": "2099",
    "cvc": "123",
    "cardholder-name": "Ada Lovelace",
}


@dataclass
class PayHub:
    url: str
    app: web.Application
    session: aiohttp.ClientSession
    config: Config
    clock: MovableClock

    @property
    def payments(self) -> PaymentService:
        return self.app[PAYMENTS]

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        async with self.session.request(
            method, self.url + path, json=json, headers=headers or {}
        ) as resp:
            text = await resp.text()
            if not text:
                return resp.status, None
            return resp.status, await resp.json(content_type=None)

    async def create(
        self, *, key: str | None = None, headers: dict[str, str] | None = None, **fields: Any
    ) -> tuple[int, Any]:
        body = {
            "amount": 12345,
            "reference": "REF",
            "council": SUNDERLAND,
            "description": "Council Tax",
            "return_url": RETURN_URL,
        }
        body.update(fields)
        sent = dict(headers or {})
        if key is not None:
            sent["Idempotency-Key"] = key
        return await self.call("POST", "/api/payments", json=body, headers=sent)

    async def page(self, payment_id: str) -> tuple[int, str]:
        async with self.session.get(f"{self.url}/pay/{payment_id}") as resp:
            return resp.status, await resp.text()

    async def submit(self, payment_id: str, form: dict[str, str]) -> aiohttp.ClientResponse:
        async with self.session.post(
            f"{self.url}/pay/{payment_id}", data=form, allow_redirects=False
        ) as resp:
            await resp.read()
            return resp

    async def pay(self, payment_id: str, number: str = "4242424242424242") -> str:
        """Open the hosted page, post the form with the card; the payment's state after."""
        status, _ = await self.page(payment_id)
        assert status == 200
        resp = await self.submit(payment_id, {**GOOD_CARD, "card-number": number})
        assert resp.status == 303, resp.status
        status, body = await self.call("GET", f"/api/payments/{payment_id}")
        assert status == 200
        return str(body["state"])

    async def paid_payment(self, amount: int = 12345, **fields: Any) -> str:
        status, body = await self.create(amount=amount, **fields)
        assert status == 201, body
        assert await self.pay(body["payment_id"]) == "success"
        return str(body["payment_id"])


@dataclass
class Receiver:
    """A webhook receiver: answers from `statuses` in turn (then 200), keeps what it got."""

    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0  # seconds before answering (a slow receiver)


PayHubFactory = Callable[..., Any]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver(url="")

    async def hook(request: web.Request) -> web.Response:
        got.received.append((await request.read(), dict(request.headers)))
        await asyncio.sleep(got.delay)
        status = got.statuses.pop(0) if got.statuses else 200
        return web.Response(status=status, text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving(app) as url:
        got.url = f"{url}/hook"
        yield got


@pytest.fixture
async def pay_hub_factory(tmp_path: Path) -> AsyncIterator[PayHubFactory]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(payments: dict[str, Any] | None = None, **raw: Any) -> PayHub:
        settings: dict[str, Any] = {
            "data_dir": str(tmp_path / "var"),
            "dispatcher": {"idle_poll_seconds": 0.05},
            "demo": True,
            "pki": {"dir": str(tmp_path / "certs")},
            "server": {"https_port": 0},
            **raw,
            # Background passes only when woken by a change; tests run due work themselves.
            "payments": {"sender_interval_seconds": 3600, **(payments or {})},
        }
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
        return PayHub(f"http://127.0.0.1:{port}", app, session, config, clock)

    yield start
    for session in sessions:
        await session.close()
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def pay_hub(pay_hub_factory: PayHubFactory) -> PayHub:
    hub: PayHub = await pay_hub_factory()
    return hub


async def eventually(check: Callable[[], Any], within: float = 5) -> Any:
    """Await check() until it returns something truthy."""
    async with asyncio.timeout(within):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.02)
