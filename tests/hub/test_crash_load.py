"""Crash safety under load: sustained submissions and card payments, SIGKILL at random moments,
restarts — and afterwards every acknowledged transaction has one final answer, and the council's
balance fell by exactly what was charged, once.

Runs a few short rounds in CI; for a soak, raise the rounds and their length:
    GATEWAY_CRASH_ROUNDS=20 GATEWAY_CRASH_SECONDS=10 .venv/bin/pytest tests/hub/test_crash_load.py
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from gateway.demo import citizens_list
from tests.hub import wire
from tests.hub.test_dsp import VIEW

ROUNDS = int(os.environ.get("GATEWAY_CRASH_ROUNDS", "3"))
SECONDS = float(os.environ.get("GATEWAY_CRASH_SECONDS", "2.0"))
SED = citizens_list()[1]
SED_VIEW = SED.enrolments[0]
AMOUNT = 137  # pence, per payment


def view_request() -> str:
    return wire.submission(
        VIEW,
        SED_VIEW.example_body(),
        user=SED.user_id,
        password=SED.password,
        keys=SED_VIEW.keys,
        organisation=SED_VIEW.organisation,
    )


class Load:
    """Clients that keep submitting and paying against whichever hub is up."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.acked: list[str] = []  # CorrelationIDs the hub acknowledged
        self.payments: list[str] = []  # payments the hub created (201)
        self.paid: list[str] = []  # payments whose card POST was answered (decided)
        self.stop = False

    async def submitter(self, session: aiohttp.ClientSession) -> None:
        while not self.stop:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                async with session.post(f"{self.base}/submission", data=view_request()) as resp:
                    reply = wire.read(await resp.read())
                if reply.qualifier == "acknowledgement" and reply.correlation_id:
                    self.acked.append(reply.correlation_id)
            await asyncio.sleep(0.01)

    async def payer(self, session: aiohttp.ClientSession) -> None:
        while not self.stop:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, KeyError):
                base = self.base
                body = {
                    "amount": AMOUNT,
                    "reference": SED_VIEW.account_ref,
                    "council": SED_VIEW.organisation,
                    "description": "Council Tax",
                    "return_url": "https://council.example/back",
                }
                headers = {"Idempotency-Key": secrets.token_hex(8), "X-Council": "E07000188"}
                async with session.post(f"{base}/api/payments", json=body, headers=headers) as r:
                    if r.status != 201:
                        continue
                    pid = (await r.json())["payment_id"]
                self.payments.append(pid)
                form = {
                    "action": "pay",
                    "card-number": "4242424242424242",
                    "expiry-month": "12",
                    "expiry-year": "2030",
                    "cardholder-name": "Crash Test",
                    "cvc": "123",
                }
                async with session.post(f"{base}/pay/{pid}", data=form, allow_redirects=False) as r:
                    if r.status == 303:
                        self.paid.append(pid)
            await asyncio.sleep(0.02)


async def _final(session: aiohttp.ClientSession, base: str, cid: str) -> bytes:
    async with asyncio.timeout(60):
        while True:
            async with session.post(f"{base}/poll", data=wire.poll(VIEW, cid)) as resp:
                raw = await resp.read()
            if wire.read(raw).qualifier != "acknowledgement":
                return raw
            await asyncio.sleep(0.1)


async def _balance(session: aiohttp.ClientSession, base: str) -> Decimal:
    async with session.post(f"{base}/submission", data=view_request()) as resp:
        ack = wire.read(await resp.read())
    assert ack.correlation_id
    reply = wire.read(await _final(session, base, ack.correlation_id))
    assert reply.body is not None
    return Decimal(reply.body.findtext(".//{*}Balance") or "nan")


def _payload(raw: bytes) -> bytes:
    """The answer without the parts that differ per poll (timestamp)."""
    reply = wire.read(raw)
    assert reply.body is not None
    return bytes(wire.etree.tostring(reply.body))


async def test_repeated_sigkill_under_load_loses_nothing(tmp_path: Path, spawn_hub: Any) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "var"}"\n'
        f'[pki]\ndir = "{tmp_path / "certs"}"\n'
        "[dispatcher]\nidle_poll_seconds = 0.05\nlease_margin_seconds = 1\n"
        "[payments]\nsender_interval_seconds = 0.2\n"
    )
    hub = await asyncio.to_thread(spawn_hub, config)
    rng = random.Random(20261128)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        before = await _balance(session, hub.url)
        load = Load(hub.url)
        workers = [asyncio.create_task(load.submitter(session)) for _ in range(3)]
        workers += [asyncio.create_task(load.payer(session)) for _ in range(2)]
        for _ in range(ROUNDS):
            await asyncio.sleep(rng.uniform(0.3, SECONDS))
            hub.proc.kill()  # SIGKILL: no shutdown, no flush
            await asyncio.to_thread(hub.proc.wait)
            hub = await asyncio.to_thread(spawn_hub, config)
            load.base = hub.url
        await asyncio.sleep(0.5)
        load.stop = True
        await asyncio.gather(*workers)
        assert len(load.acked) > 10 and len(load.paid) > 3, (len(load.acked), len(load.paid))

        # Every acknowledged CorrelationID reaches a final answer, and the same one every time.
        for cid in load.acked:
            first = await _final(session, hub.url, cid)
            assert wire.read(first).qualifier == "response", wire.read(first).errors
            again = await _final(session, hub.url, cid)
            assert _payload(first) == _payload(again)

        # Payments: what the hub says was taken is what the council recorded — once each.
        states = {}
        for pid in load.payments:
            async with session.get(
                f"{hub.url}/api/payments/{pid}", headers={"X-Council": "E07000188"}
            ) as resp:
                states[pid] = (await resp.json())["state"]
        assert all(states[pid] == "success" for pid in load.paid)
        charged = sum(AMOUNT for state in states.values() if state == "success")
        expected = before - Decimal(charged) / 100
        async with asyncio.timeout(30):
            while (after := await _balance(session, hub.url)) != expected:
                assert after > expected, f"charged twice: {after} < {expected}"
                await asyncio.sleep(0.3)
