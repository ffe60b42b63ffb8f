"""A portal that is down when the citizen signs out is told later; one down for good, given up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select, update

from gateway.store.audit_models import AuditRecord
from gateway.store.sso_models import SsoSession, SsoSessionClient
from gateway.web.app import CLOCK
from gateway.web.keys import AUDIT, DB
from tests.conftest import Hub
from tests.sso.conftest import SUNDERLAND, Browser, Portal
from tests.sso.test_oidc import portal_token, portal_user, sign_in_with_password


async def signed_in(portals: Callable[..., Any], browser: Browser) -> tuple[Portal, str]:
    portal: Portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    status, _, page = await sign_in_with_password(browser, portal)
    assert status == 200, page
    return portal, portal_user(portal)["sid"]


async def sign_out(browser: Browser, portal: Portal) -> None:
    query = urlencode({"id_token_hint": portal_token(portal)["id_token"]})
    status, _, page = await browser.get(f"{portal.metadata['end_session_endpoint']}?{query}")
    assert status == 200 and "You have signed out" in page, page


async def owed(hub: Hub, sid: str) -> SsoSessionClient:
    async with hub.app[DB].read() as session:
        row = await session.scalar(select(SsoSessionClient).where(SsoSessionClient.sid == sid))
    assert row is not None
    return row


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the hub's own retry pass changes it
            await asyncio.sleep(0.05)


async def test_a_portal_down_at_sign_out_is_told_when_it_is_back(
    sso_hub: Hub, portals: Callable[..., Any], browser_factory: Callable[..., Browser]
) -> None:
    portal, sid = await signed_in(portals, browser_factory())
    portal.refuse_logouts = 2
    await sign_out(browser_factory(), portal)  # another browser: the portal is told, not asked
    row = await owed(sso_hub, sid)
    assert (row.logout_state, row.logout_attempts, row.logout_error) == ("pending", 1, "HTTP 503")
    assert portal.logout_tokens == [] and portal.users  # still signed in at the portal

    # The portal's clock is the real one, so time passes here by moving the retry due now
    # (advancing the hub's clock would have the portal refuse tokens issued in its future).
    for attempts in (1, 2):  # the retry pass tries, is refused once more, then gets through
        await due_now(sso_hub, sid)
        await until(lambda n=attempts: attempts_over(sso_hub, sid, n))
    row = await owed(sso_hub, sid)
    assert row.logout_state == "done" and row.logout_attempts == 3
    [logout] = portal.logout_tokens
    assert logout["sid"] == sid and portal.users == {}


async def due_now(hub: Hub, sid: str) -> None:
    async with hub.app[DB].transaction() as session:
        await session.execute(
            update(SsoSessionClient)
            .where(SsoSessionClient.sid == sid)
            .values(logout_next_at=hub.app[CLOCK]())
        )


async def attempts_over(hub: Hub, sid: str, attempts: int) -> bool:
    return (await owed(hub, sid)).logout_attempts > attempts


async def test_a_portal_down_for_twelve_hours_is_given_up_on_and_audited(
    sso_hub: Hub, portals: Callable[..., Any], browser_factory: Callable[..., Browser]
) -> None:
    browser = browser_factory()
    portal, sid = await signed_in(portals, browser)
    portal.refuse_logouts = 10_000
    await sign_out(browser, portal)
    # Twelve hours since the sign-out, and the retry due.
    async with sso_hub.app[DB].transaction() as session:
        await session.execute(
            update(SsoSession)
            .where(SsoSession.sid == sid)
            .values(ended_at=sso_hub.app[CLOCK]() - timedelta(hours=12, minutes=1))
        )
    await due_now(sso_hub, sid)

    async def given_up() -> bool:
        return (await owed(sso_hub, sid)).logout_state == "failed"

    await until(given_up)
    attempts = (await owed(sso_hub, sid)).logout_attempts
    await asyncio.sleep(0.5)  # two more retry passes: nothing is sent any more
    assert (await owed(sso_hub, sid)).logout_attempts == attempts
    await sso_hub.app[AUDIT].drained()
    async with sso_hub.app[DB].read() as session:
        records = (
            await session.scalars(
                select(AuditRecord).where(AuditRecord.event == "sso.backchannel_given_up")
            )
        ).all()
    assert [(r.outcome, r.detail["client_id"]) for r in records] == [("failed", portal.client_id)]
    assert records[0].detail["error"] == "HTTP 503"
