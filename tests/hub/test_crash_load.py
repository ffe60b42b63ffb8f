"""Crash safety under load: sustained submissions, single-person discount applications and card
payments, SIGKILL at random moments, restarts — and afterwards every acknowledged transaction has
one final answer, each discount was applied once, and the council's balance fell by exactly what
was charged, once.

Runs a few short rounds in CI; for a soak, raise the rounds and their length:
    GATEWAY_CRASH_ROUNDS=20 GATEWAY_CRASH_SECONDS=10 .venv/bin/pytest --timeout 0 tests/hub/test_crash_load.py
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import re
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from connectors.simcouncil.dataset import generate
from connectors.simcouncil.examples import example_request, spd_eligible_account_refs
from connectors.simcouncil.model import SINGLE_PERSON
from gateway.demo import SEDGEMOOR, SPD, citizens_list
from tests.hub import wire
from tests.hub.test_dsp import VIEW

ROUNDS = int(os.environ.get("GATEWAY_CRASH_ROUNDS", "3"))
SECONDS = float(os.environ.get("GATEWAY_CRASH_SECONDS", "2.0"))
SED = citizens_list()[1]
SED_VIEW = SED.enrolments[0]
AMOUNT = 137  # pence, per payment
APPLICANTS = 16  # citizens, each applying once for the discount on an account of their own
PASSWORD = "crash-test-password-1"
PIN = re.compile(r"activation PIN is: ([A-Z0-9]{6,8})")


def view_request() -> str:
    return wire.submission(
        VIEW,
        SED_VIEW.example_body(),
        user=SED.user_id,
        password=SED.password,
        keys=SED_VIEW.keys,
        organisation=SED_VIEW.organisation,
    )


class Applicant:
    """A registered citizen enrolled (and activated) for the discount and View on one account."""

    def __init__(self, user_id: str, account_ref: str) -> None:
        self.user_id = user_id
        self.account_ref = account_ref

    def envelope(self, class_: str) -> str:
        body = example_request(class_, self.account_ref, SEDGEMOOR).decode()
        keys = {"CTaxAccountRef": self.account_ref}
        return wire.submission(
            class_, body, user=self.user_id, password=PASSWORD, keys=keys, organisation=SEDGEMOOR
        )


async def _applicants(session: aiohttp.ClientSession, base: str) -> list[Applicant]:
    """Citizens through the whole enrolment journey over HTTP, for accounts no demo citizen has."""
    taken = {e.account_ref for c in citizens_list() for e in c.enrolments}
    eligible = [ref for ref in spd_eligible_account_refs(SEDGEMOOR) if ref not in taken]
    accounts = {p.account_ref: p for p in generate(SEDGEMOOR)}
    applicants = []
    for ref in eligible[:APPLICANTS]:
        prop = accounts[ref]
        registration = {"kind": "individual", "display_name": "Crash", "password": PASSWORD}
        async with session.post(f"{base}/api/registrations", json=registration) as resp:
            assert resp.status == 201, await resp.text()
            user_id = (await resp.json())["user_id"]
        credentials = base64.b64encode(f"{user_id}:{PASSWORD}".encode()).decode()
        auth = {"Authorization": f"Basic {credentials}"}
        facts = {
            "CTaxAccountRef": ref,
            "PostCode": prop.address.postcode,
            "Surname": prop.liable[0].surname,
        }
        for class_ in (SPD, VIEW):
            enrolment = {"class": class_, "organisation": SEDGEMOOR, "facts": facts}
            async with session.post(f"{base}/api/enrolments", json=enrolment, headers=auth) as resp:
                assert resp.status == 202, await resp.text()
                enrolment_id = (await resp.json())["id"]
            async with session.get(f"{base}/admin/letters", params={"user_id": user_id}) as resp:
                letters = (await resp.json())["letters"]
            [text] = [x["text"] for x in letters if x["enrolment_id"] == enrolment_id]
            found = PIN.search(text)
            assert found, text
            url = f"{base}/api/enrolments/{enrolment_id}/activation"
            async with session.post(url, json={"pin": found.group(1)}, headers=auth) as resp:
                assert resp.status == 200, await resp.text()
        applicants.append(Applicant(user_id, ref))
    return applicants


class Load:
    """Clients that keep submitting and paying against whichever hubs are up (spread at random)."""

    def __init__(self, bases: list[str], applicants: list[Applicant]) -> None:
        self.bases = bases
        self.acked: list[str] = []  # CorrelationIDs the hub acknowledged
        self.payments: list[str] = []  # payments the hub created (201)
        self.paid: list[str] = []  # payments whose card POST was answered (decided)
        self.waiting = list(applicants)  # who has not yet applied for the discount
        self.applied: list[tuple[str, Applicant]] = []  # acknowledged applications
        self.stop = False

    @property
    def base(self) -> str:
        return random.choice(self.bases)

    def start(self, session: aiohttp.ClientSession) -> list[asyncio.Task[None]]:
        workers = [asyncio.create_task(self.submitter(session)) for _ in range(3)]
        workers += [asyncio.create_task(self.payer(session)) for _ in range(2)]
        workers.append(asyncio.create_task(self.applier(session)))
        return workers

    async def applier(self, session: aiohttp.ClientSession) -> None:
        """Each applicant applies once; unacknowledged applications are not resent (a resend
        with a new TransactionID is rightly refused as a second discount)."""
        while not self.stop and self.waiting:
            applicant = self.waiting.pop()
            try:
                async with session.post(
                    f"{self.base}/submission", data=applicant.envelope(SPD)
                ) as resp:
                    reply = wire.read(await resp.read())
                if reply.qualifier == "acknowledgement" and reply.correlation_id:
                    self.applied.append((reply.correlation_id, applicant))
            except aiohttp.ClientConnectorError:
                self.waiting.append(applicant)  # never reached a hub: safe to send again
            except (TimeoutError, aiohttp.ClientError, ValueError):
                pass  # it may have arrived: not sent again
            await asyncio.sleep(0.2)

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


async def _final(session: aiohttp.ClientSession, base: str, cid: str, class_: str = VIEW) -> bytes:
    async with asyncio.timeout(60):
        while True:
            async with session.post(f"{base}/poll", data=wire.poll(class_, cid)) as resp:
                raw = await resp.read()
            if wire.read(raw).qualifier != "acknowledgement":
                return raw
            await asyncio.sleep(0.1)


async def _view(session: aiohttp.ClientSession, base: str, envelope: str) -> wire.etree._Element:
    async with session.post(f"{base}/submission", data=envelope) as resp:
        ack = wire.read(await resp.read())
    assert ack.correlation_id
    reply = wire.read(await _final(session, base, ack.correlation_id))
    assert reply.body is not None
    return reply.body


async def _balance(session: aiohttp.ClientSession, base: str) -> Decimal:
    body = await _view(session, base, view_request())
    return Decimal(body.findtext(".//{*}Balance") or "nan")


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
        load = Load([hub.url], await _applicants(session, hub.url))
        workers = load.start(session)
        for _ in range(ROUNDS):
            await asyncio.sleep(rng.uniform(0.3, SECONDS))
            hub.proc.kill()  # SIGKILL: no shutdown, no flush
            await asyncio.to_thread(hub.proc.wait)
            hub = await asyncio.to_thread(spawn_hub, config)
            load.bases = [hub.url]
        await asyncio.sleep(0.5)
        load.stop = True
        await asyncio.gather(*workers)
        await check_nothing_lost_or_doubled(session, hub.url, load, before)


async def check_nothing_lost_or_doubled(
    session: aiohttp.ClientSession, base: str, load: Load, before: Decimal
) -> None:
    """Every acknowledged transaction answered once, each discount and payment applied once."""
    assert len(load.acked) > 10 and len(load.paid) > 3, (len(load.acked), len(load.paid))

    # Every acknowledged CorrelationID reaches a final answer, and the same one every time.
    for cid in load.acked:
        first = await _final(session, base, cid)
        assert wire.read(first).qualifier == "response", wire.read(first).errors
        again = await _final(session, base, cid)
        assert _payload(first) == _payload(again)

    # Discounts: each acknowledged application was accepted — a redelivery applied twice
    # would be refused as a second discount — and the account shows exactly one.
    assert len(load.applied) >= 3, len(load.applied)
    for cid, applicant in load.applied:
        answer = wire.read(await _final(session, base, cid, SPD))
        assert answer.qualifier == "response", (applicant.account_ref, answer.errors)
        view = await _view(session, base, applicant.envelope(VIEW))
        kinds = [d.findtext("{*}Type") for d in view.iterfind(".//{*}Discounts/{*}Discount")]
        assert kinds.count(SINGLE_PERSON) == 1, (applicant.account_ref, kinds)

    # Payments: what the hub says was taken is what the council recorded — once each.
    states = {}
    for pid in load.payments:
        async with session.get(
            f"{base}/api/payments/{pid}", headers={"X-Council": "E07000188"}
        ) as resp:
            states[pid] = (await resp.json())["state"]
    assert all(states[pid] == "success" for pid in load.paid)
    charged = sum(AMOUNT for state in states.values() if state == "success")
    expected = before - Decimal(charged) / 100
    async with asyncio.timeout(30):
        while (after := await _balance(session, base)) != expected:
            assert after > expected, f"charged twice: {after} < {expected}"
            await asyncio.sleep(0.3)
