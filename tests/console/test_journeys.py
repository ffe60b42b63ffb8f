"""Console journeys: a citizen's registration → enrolment → activation → transactions → payments
→ mail as one timeline, over a real hub, saying what it is waiting on."""

from __future__ import annotations

import asyncio
import re
from html import unescape
from typing import Any

import aiohttp

from connectors.simcouncil.dataset import generate
from connectors.simcouncil.examples import example_request
from gateway.clock import utcnow
from gateway.console.journeys import citizen_timeline, find_citizens
from gateway.web.keys import DB
from tests.conftest import Hub, HubFactory
from tests.hub import wire

SUNDERLAND = "E08000024"
SEDGEMOOR = "E07000188"
VIEW = "LA-CTAX-VIEW"
PASSWORD = "correct horse battery"
PIN_RE = re.compile(r"activation PIN is: ([A-Z0-9]{6,8})")


async def call(
    hub: Hub,
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
    async with hub.session.request(method, hub.url + path, json=json, headers=sent) as resp:
        text = await resp.text()
        return resp.status, (await resp.json(content_type=None)) if text else None


async def page(hub: Hub, path: str) -> tuple[int, str]:
    """A console page as a person's browser gets it (the test runs on loopback: an admin)."""
    async with hub.session.get(hub.url + path) as resp:
        return resp.status, await resp.text()


def text_of(html: str) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


async def register(hub: Hub, name: str = "Ada Citizen") -> str:
    status, data = await call(
        hub,
        "POST",
        "/api/registrations",
        json={"kind": "individual", "display_name": name, "password": PASSWORD},
    )
    assert status == 201, data
    return str(data["user_id"])


async def enrol(hub: Hub, user_id: str, index: int = 10) -> tuple[int, str]:
    """Enrol for View Council Tax at Sunderland with an account's facts; (enrolment id, ref)."""
    prop = generate(SUNDERLAND)[index]
    facts = {
        "CTaxAccountRef": prop.account_ref,
        "PostCode": prop.address.postcode,
        "Surname": prop.liable[0].surname,
    }
    status, data = await call(
        hub,
        "POST",
        "/api/enrolments",
        json={"class": VIEW, "organisation": SUNDERLAND, "facts": facts},
        auth=(user_id, PASSWORD),
    )
    assert status in (200, 201, 202), data
    return int(data["enrolment_id"] if "enrolment_id" in data else data["id"]), prop.account_ref


async def pin_for(hub: Hub, user_id: str) -> str:
    status, data = await call(hub, "GET", f"/admin/letters?user_id={user_id}")
    assert status == 200, data
    found = PIN_RE.search(data["letters"][-1]["text"])
    assert found
    return found.group(1)


async def activate(hub: Hub, user_id: str, enrolment_id: int) -> None:
    pin = await pin_for(hub, user_id)
    status, data = await call(
        hub,
        "POST",
        f"/api/enrolments/{enrolment_id}/activation",
        json={"pin": pin},
        auth=(user_id, PASSWORD),
    )
    assert status == 200, data


async def view_council_tax(hub: Hub, user_id: str, account: str) -> str:
    body = example_request(VIEW, account, SUNDERLAND).decode()
    xml = wire.submission(
        VIEW,
        body,
        user=user_id,
        password=PASSWORD,
        keys={"CTaxAccountRef": account},
        organisation=SUNDERLAND,
    )
    reply = wire.read(await hub.post(xml))
    assert reply.qualifier == "acknowledgement", reply.raw
    assert reply.correlation_id
    for _ in range(200):
        polled = wire.read(await hub.post(wire.poll(VIEW, reply.correlation_id), path="/poll"))
        if polled.qualifier != "acknowledgement":
            break
        await asyncio.sleep(0.05)
    return reply.correlation_id


async def create_payment(hub: Hub, account: str, amount: int = 12345) -> str:
    status, data = await call(
        hub,
        "POST",
        "/api/payments",
        json={
            "amount": amount,
            "reference": account,
            "council": SUNDERLAND,
            "description": "Council Tax",
            "return_url": "https://council.example/paid",
        },
    )
    assert status == 201, data
    return str(data["payment_id"])


async def council_mail(
    hub: Hub, account: str, subject: str, body: str, organisation: str = SUNDERLAND
) -> str:
    status, data = await call(
        hub,
        "POST",
        "/api/council/mail",
        json={
            "class": VIEW,
            "key_type": "CTaxAccountRef",
            "key_value": account,
            "subject": subject,
            "body": body,
            "sender_message_id": f"console-{account}-{subject}"[:100],
        },
        headers={"X-Council": organisation},
    )
    assert status == 201, data
    return str(data["id"])


async def test_the_timeline_lists_each_step_in_order_and_what_it_waits_on(hub: Hub) -> None:
    db = hub.app[DB]
    user_id = await register(hub, "Grace Timeline")
    enrolment_id, account = await enrol(hub, user_id)

    # Facts accepted, PIN posted: the citizen's next move is the PIN.
    timeline = await citizen_timeline(db, user_id, now=utcnow())
    assert timeline is not None
    waiting = [w.on for w in timeline.waiting]
    assert waiting == [
        f"enrolment {enrolment_id} ({VIEW} at {SUNDERLAND}): awaiting activation with the posted "
        f"PIN (valid until {waiting[0].split('valid until ')[1]}"
    ]

    await activate(hub, user_id, enrolment_id)
    cid = await view_council_tax(hub, user_id, account)
    payment = await create_payment(hub, account)
    await council_mail(hub, account, "Your bill", "Your new bill is ready.")

    timeline = await citizen_timeline(db, user_id, now=utcnow())
    assert timeline is not None
    titles = [s.title for s in timeline.steps.items]
    expected = [
        "Registered (individual) as Grace Timeline",
        f"Enrolment {enrolment_id} for {VIEW} at {SUNDERLAND}: known facts accepted",
        f"Activation PIN letter for enrolment {enrolment_id} posted by {SUNDERLAND}",
        f"Enrolment {enrolment_id} for {VIEW} at {SUNDERLAND}: activated",
        f"Transaction {VIEW} to {SUNDERLAND}",
        f"Payment {payment} of £123.45 to {SUNDERLAND} created",
        "Secure message from",
    ]
    positions = [next(i for i, t in enumerate(titles) if t.startswith(e)) for e in expected]
    assert positions == sorted(positions), titles
    [transaction] = [s for s in timeline.steps.items if s.kind == "transaction"]
    assert transaction.link == f"/console/transactions/{cid}" and transaction.state == "response"
    assert [w.on for w in timeline.waiting] == [
        f"payment {payment} (£123.45 to {SUNDERLAND}): created, not completed by the citizen",
        "the citizen: unread message from "
        + timeline.steps.items[-1].title.split("from ")[1].split(" (")[0],
    ]

    # The page says the same, in the same order.
    status, html = await page(hub, f"/console/journeys?user_id={user_id}")
    assert status == 200
    text = text_of(html)
    shown = text[text.index("Timeline, oldest first") :]
    at = [shown.index(e) for e in expected]
    assert at == sorted(at), shown
    assert f'href="/console/transactions/{cid}"' in html
    assert (
        f"Waiting on: payment {payment} (£123.45 to {SUNDERLAND}): created, not completed" in text
    )
    assert "Your new bill is ready." not in html and "Your bill" not in html  # metadata only
    assert '<th scope="col">When</th>' in html and "<caption>" in html

    # Another citizen's timeline shows none of it.
    status, html = await page(hub, "/console/journeys?user_id=DEMO0MOV0001")
    assert status == 200 and payment not in html and cid not in html

    status, html = await page(hub, f"/console/journeys?q={user_id[:6].lower()}")
    assert status == 200 and f"/console/journeys?user_id={user_id}" in html
    status, html = await page(hub, "/console/journeys?user_id=NOSUCHUSER00")
    assert status == 404 and "There is no citizen with user ID" in html

    found = await find_citizens(db, user_id[:6].lower())
    assert user_id in [c.user_id for c in found.items]
    assert [c.user_id for c in (await find_citizens(db, "grace time")).items] == [user_id]
    assert await citizen_timeline(db, "NOSUCHUSER00", now=utcnow()) is None


async def test_a_joined_up_journey_shows_its_legs_and_the_leg_it_waits_on(
    hub_factory: HubFactory,
) -> None:
    from tests.journeys.test_change_of_address import mover, request

    # A short timeout on the leg that will hang, so the hub stops quickly at the end.
    close = {"class": "LA-CTAX-CLOSE", "organisation": SEDGEMOOR, "timeout": 2}
    hub: Hub = await hub_factory(
        {
            "routes": [
                {**close, "connector": f"council-{SEDGEMOOR}", "bvpi157": "collecting-revenue"}
            ]
        }
    )
    citizen = mover()
    # The old council's back office hangs: the first leg is submitted and stays unanswered.
    status, data = await call(
        hub, "PUT", f"/admin/faults/council-{SEDGEMOOR}", json={"fault": "hang"}
    )
    assert status == 200, data
    status, data = await call(
        hub,
        "POST",
        "/api/journeys/change-of-address",
        json=request(),
        auth=(citizen.user_id, citizen.password),
    )
    assert status == 202, data
    journey_id = data["id"]
    for _ in range(100):
        status, html = await page(hub, f"/console/journeys?user_id={citizen.user_id}")
        assert status == 200
        if "awaiting the answer" in html:
            break
        await asyncio.sleep(0.05)
    text = text_of(html)
    waiting = text[text.index("Waiting on") : text.index("Timeline, oldest first")]
    assert (
        f"Waiting on: journey {journey_id}, leg close (LA-CTAX-CLOSE at {SEDGEMOOR}): submitted as"
        in waiting
    )
    # The legs not yet started are named after the one holding them up.
    assert waiting.index("leg close") < waiting.index("leg open") < waiting.index("leg notify")
    timeline = text[text.index("Timeline, oldest first") :]
    assert timeline.index("Joined-up journey change-of-address started") < timeline.index(
        f"Journey leg close (LA-CTAX-CLOSE at {SEDGEMOOR})"
    )
    assert "in progress" in timeline and "submitted" in timeline
