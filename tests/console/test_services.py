"""Console services: letters (PINs masked), mailboxes and messages as metadata only (never a
message's subject or body), payments, and webhook attempts with their responses and retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from gateway.console.services import list_mail, mail_content_allowed, mask_pins
from gateway.demo import citizens_list
from gateway.web.keys import DB
from tests.conftest import Hub, HubFactory
from tests.console.test_journeys import (
    SUNDERLAND,
    call,
    council_mail,
    create_payment,
    enrol,
    page,
    pin_for,
    register,
    text_of,
)
from tests.serving import serving

SUN, MOV = "DEMO0SUN0001", "DEMO0MOV0001"  # both enrolled at Sunderland, different accounts
HOOK_SECRET = "whsec-console-test-secret"


def account(user_id: str) -> str:
    citizen = next(c for c in citizens_list() if c.user_id == user_id)
    return next(e.account_ref for e in citizen.enrolments if e.organisation == SUNDERLAND)


async def test_mail_is_listed_as_metadata_and_no_body_or_subject_ever_appears(hub: Hub) -> None:
    secret_subject, secret_body = "Arrears notice 7731", "You owe £4,000.00 — account flagged."
    await council_mail(hub, account(SUN), secret_subject, secret_body)
    await council_mail(hub, account(MOV), "Bill ready", "Hello Mover, your bill is ready.")

    for path in (
        "/console/services/mail",
        f"/console/services/mail?user_id={MOV}",
        f"/console/services/mail?user_id={SUN}",
        "/console/services/mailboxes",
        f"/console/journeys?user_id={SUN}",
        f"/console/journeys?user_id={MOV}",
        "/console/services",
    ):
        status, html = await page(hub, path)
        assert status == 200, path
        for hidden in (secret_subject, secret_body, "Bill ready", "Hello Mover"):
            assert hidden not in html, (path, hidden)

    status, html = await page(hub, f"/console/services/mail?user_id={MOV}")
    text = text_of(html)
    assert MOV in text and SUN not in text  # filtered to one mailbox
    assert f"CTaxAccountRef {account(MOV)}" in text and "unread" in text
    status, html = await page(hub, "/console/services/mailboxes")
    rows = {line.split()[0]: line for line in text_of(html).split(" DEMO0")[1:]}
    assert rows["SUN0001"].split()[1:3] == ["1", "1"]  # one message, unread

    assert not mail_content_allowed(hub.config)
    listed = await list_mail(hub.app[DB], user_id=SUN)
    assert [m.subject for m in listed.items] == [None]


async def test_mail_content_is_shown_only_when_the_configuration_says_so(
    hub_factory: HubFactory,
) -> None:
    hub: Hub = await hub_factory({"admin": {"show_mail_content": True}})
    await council_mail(hub, account(SUN), "Arrears notice 7731", "You owe £4,000.00.")
    status, html = await page(hub, f"/console/services/mail?user_id={SUN}")
    assert status == 200
    text = text_of(html)
    assert "Arrears notice 7731" in text and "You owe £4,000.00." in text
    assert "[admin] show_mail_content" in text  # the page says why it shows them
    # The timeline still never needs them.
    status, html = await page(hub, f"/console/journeys?user_id={SUN}")
    assert "Arrears notice 7731" not in html


async def test_letters_mask_the_activation_pin(hub: Hub) -> None:
    user_id = await register(hub, "Letter Reader")
    enrolment_id, _ = await enrol(hub, user_id)
    pin = await pin_for(hub, user_id)
    status, html = await page(hub, f"/console/services/letters?user_id={user_id}")
    assert status == 200
    assert pin not in html
    text = text_of(html)
    assert f"activation pin (enrolment {enrolment_id})" in text
    assert "Your activation PIN is: ••••••••" in text
    assert mask_pins("Your activation PIN is: ABCD2345\n") == "Your activation PIN is: ••••••••\n"


@pytest.fixture
async def failing_hook() -> AsyncIterator[str]:
    """A webhook receiver that answers 503 to everything."""

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=503, text="busy")

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving(app) as url:
        yield url.replace("http://", "http://hooks:s3cr3t-pass@") + "/hook"


async def test_payments_and_webhook_attempts(
    hub_factory: HubFactory, failing_hook: str, tmp_path: Path
) -> None:
    hub: Hub = await hub_factory(
        {"payments": {"webhooks": [{"url": failing_hook, "secret": HOOK_SECRET}]}}
    )
    open_id = await create_payment(hub, account(SUN), amount=2500)
    paid_id = await create_payment(hub, account(MOV), amount=9999)
    async with hub.session.get(f"{hub.url}/pay/{paid_id}") as resp:
        assert resp.status == 200
    card = {
        "card-number": "4242424242424242",
        "expiry-month": "12",
        "expiry-year": "2099",
        "cvc": "123",
        "cardholder-name": "Morgan Mover",
    }
    async with hub.session.post(
        f"{hub.url}/pay/{paid_id}", data=card, allow_redirects=False
    ) as resp:
        assert resp.status == 303

    status, html = await page(hub, "/console/services/payments")
    assert status == 200
    text = text_of(html)
    assert f"{open_id} {SUNDERLAND} {account(SUN)}" in text and "£25.00 created" in text
    assert f"{paid_id} {SUNDERLAND} {account(MOV)}" in text and "£99.99 success" in text
    assert "Visa ending 4242" in text or "visa ending 4242" in text
    status, html = await page(hub, "/console/services/payments?state=success")
    assert paid_id in html and open_id not in html

    for _ in range(100):  # the sender tries at once after the change
        status, data = await call(hub, "GET", "/api/payments/webhooks/attempts")
        if data and data.get("attempts"):
            break
        await asyncio.sleep(0.05)
    status, html = await page(hub, "/console/services/webhooks")
    assert status == 200
    text = text_of(html)
    assert "payment.succeeded" in text and paid_id in text
    assert "HTTP 503" in text and "pending" in text
    assert "s3cr3t-pass" not in html and HOOK_SECRET not in html
    assert "hooks:••••••@127.0.0.1" in text
    status, html = await page(hub, "/console/services")
    assert "success : 1" in text_of(html) and "created : 1" in text_of(html)
