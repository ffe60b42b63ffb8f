"""Joined-up transactions: change of address from Sedgemoor to Sunderland, over the DSP and the
JSON API, with retry, compensation and a restart mid-journey."""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta
from types import SimpleNamespace
from typing import Any

import aiohttp
from lxml import etree

from connectors.simcouncil.charges import pence
from connectors.simcouncil.dataset import generate
from connectors.simcouncil.dates import YEAR_END
from connectors.simcouncil.view import build_request as view_request
from gateway.demo import citizens_list
from gateway.journeys import records
from gateway.journeys.change_of_address import build_xml
from gateway.store.engine import Database
from gateway.store.models import Submission
from gateway.store.volumes import submission_volumes
from gateway.web.keys import DB
from tests.hub import wire
from tests.journeys.conftest import ER, SEDGEMOOR, SUNDERLAND, JourneyHub, StartHub

CLASS = "GW-CHANGE-OF-ADDRESS"
REPORT = {"r": "urn:govtalk-hub:gw:journey-report:v1"}


def mover() -> Any:
    return citizens_list()[2]  # DEMO0MOV0001: enrolled at Sedgemoor and Sunderland


def old_account() -> str:
    citizen = mover()
    return next(e.account_ref for e in citizen.enrolments if e.organisation == SEDGEMOOR)


def new_uprn(n: int = 1) -> str:
    taken = {p.uprn for p in generate(SUNDERLAND)}
    candidate = 100_000_000_000 + n
    while str(candidate) in taken:
        candidate += 1
    return str(candidate)


def move_date() -> str:
    return min(date.today() + timedelta(days=14), YEAR_END).isoformat()


def request(postcode: str = "SR6 9NN", uprn: str | None = None) -> dict[str, Any]:
    return {
        "name": {"forename": "Morgan", "surname": "Mover"},
        "old_council": {"organisation": SEDGEMOOR, "account_ref": old_account()},
        "new_council": {"organisation": SUNDERLAND},
        "new_address": {
            "paon": "14",
            "street": "Roker Terrace",
            "locality": "Roker",
            "town": "Sunderland",
            "postcode": postcode,
            "uprn": uprn or new_uprn(),
        },
        "move_date": move_date(),
        "electoral_registration": ER,
    }


async def submit(
    hub: JourneyHub, data: dict[str, Any], user: Any = None, class_: str = CLASS
) -> wire.Reply:
    citizen = user or mover()
    xml = wire.submission(
        class_,
        build_xml(data).decode(),
        user=citizen.user_id,
        password=citizen.password,
        organisation="GW",
    )
    return wire.read(await hub.post(xml))


async def final(hub: JourneyHub, cid: str, tries: int = 400, class_: str = CLASS) -> wire.Reply:
    for _ in range(tries):
        reply = wire.read(await hub.post(wire.poll(class_, cid), path="/poll"))
        if reply.qualifier != "acknowledgement":
            return reply
        await asyncio.sleep(0.05)
    raise AssertionError("the journey never finished")


def legs(reply: wire.Reply) -> dict[str, dict[str, str]]:
    body = reply.body
    assert body is not None and etree.QName(body).localname == "JourneyReport"
    out = {}
    for leg in body.xpath("r:Legs/r:Leg", namespaces=REPORT):
        fields = {etree.QName(c).localname: (c.text or "") for c in leg if len(c) == 0}
        comp = leg.xpath("r:Compensation/r:Status/text()", namespaces=REPORT)
        fields["CompensationStatus"] = str(comp[0]) if comp else ""
        out[fields["Name"]] = fields
    return out


def report_text(reply: wire.Reply, name: str) -> str:
    assert reply.body is not None
    return str(reply.body.xpath(f"string(r:{name})", namespaces=REPORT))


def basic(user: Any) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user.user_id, user.password)}


async def get_json(hub: JourneyHub, path: str, user: Any) -> tuple[int, dict[str, Any]]:
    async with hub.session.get(f"{hub.url}{path}", headers=basic(user)) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_change_of_address_over_the_dsp_closes_opens_and_notifies(
    start_hub: StartHub,
) -> None:
    hub = await start_hub()
    data = request()
    ack = await submit(hub, data)
    assert ack.qualifier == "acknowledgement", ack.errors
    cid = ack.correlation_id
    assert cid
    reply = await final(hub, cid)
    assert reply.qualifier == "response", reply.errors
    assert reply.correlation_id == cid
    assert report_text(reply, "Status") == "completed"
    assert report_text(reply, "CorrelationID") == cid
    found = legs(reply)
    assert list(found) == ["close", "open", "notify"]
    assert {f["Status"] for f in found.values()} == {"succeeded"}
    assert found["close"]["Class"] == "LA-CTAX-CLOSE"
    assert found["close"]["Organisation"] == SEDGEMOOR
    assert found["open"]["Organisation"] == SUNDERLAND
    assert found["notify"]["Organisation"] == ER
    cids = {f["CorrelationID"] for f in found.values()}
    assert len(cids) == 3 and cid not in cids  # each leg a routed transaction of its own
    assert f"closed from {data['move_date']}" in found["close"]["Outcome"]
    assert "reference ER-E08000024-" in found["notify"]["Outcome"]

    # Each leg is a real submission: the store answered it like any other.
    new_ref = found["open"]["Outcome"].split()[1]
    sunderland = hub.connector(f"council-{SUNDERLAND}")
    opened = await sunderland.store.account(new_ref)
    assert opened is not None
    assert opened.address.postcode == "SR6 9NN"
    assert opened.liable[0].surname == "Mover"
    notified = await hub.connector("electoral-E08000024").notifications()
    assert [n[2] for n in notified] == ["SR6 9NN"]

    # View Council Tax at Sedgemoor shows the account closed.
    citizen = mover()
    enrolment = next(e for e in citizen.enrolments if e.organisation == SEDGEMOOR)
    view = wire.read(
        await hub.post(
            wire.submission(
                "LA-CTAX-VIEW",
                enrolment.example_body(),
                user=citizen.user_id,
                password=citizen.password,
                keys=enrolment.keys,
                organisation=SEDGEMOOR,
            )
        )
    )
    assert view.correlation_id
    for _ in range(100):
        answer = wire.read(
            await hub.post(wire.poll("LA-CTAX-VIEW", view.correlation_id), path="/poll")
        )
        if answer.qualifier != "acknowledgement":
            break
        await asyncio.sleep(0.05)
    assert answer.qualifier == "response"
    assert answer.body is not None
    closed = answer.body.xpath("string(//*[local-name()='ClosedFrom'])")
    assert closed == data["move_date"]

    # The same journey through the JSON API, per leg.
    status, body = await get_json(hub, f"/api/journeys/{cid}", citizen)
    assert status == 200
    assert body["status"] == "completed"
    assert [leg["status"] for leg in body["legs"]] == ["succeeded"] * 3


async def test_failing_electoral_registration_is_retried_then_succeeds(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(er={"fail_first_n": 2})
    ack = await submit(hub, request())
    assert ack.correlation_id
    reply = await final(hub, ack.correlation_id)
    assert report_text(reply, "Status") == "completed"
    notify = legs(reply)["notify"]
    assert notify["Status"] == "succeeded"
    assert notify["Attempts"] == "3"
    _status, body = await get_json(hub, f"/api/journeys/{ack.correlation_id}", mover())
    earlier = body["legs"][2]["earlier_attempts"]
    assert len(earlier) == 2
    assert all("unavailable" in e["error"] for e in earlier)


async def test_electoral_registration_down_exhausts_retries_and_says_what_stands(
    start_hub: StartHub,
) -> None:
    hub = await start_hub(er={"unavailable": True})
    ack = await submit(hub, request())
    assert ack.correlation_id
    reply = await final(hub, ack.correlation_id)
    assert reply.qualifier == "response"
    assert report_text(reply, "Status") == "failed"
    found = legs(reply)
    assert found["close"]["Status"] == "succeeded"
    assert found["open"]["Status"] == "succeeded"
    assert found["notify"]["Status"] == "failed"
    assert found["notify"]["Attempts"] == "3"
    explanation = report_text(reply, "Explanation")
    assert "'notify'" in explanation and "after 3 attempt(s)" in explanation
    assert "stand" in explanation


async def test_failing_open_compensates_the_close(start_hub: StartHub) -> None:
    hub = await start_hub()
    # A postcode outside Sunderland: the new council refuses the open (3001).
    ack = await submit(hub, request(postcode="TA6 1AA"))
    assert ack.correlation_id
    reply = await final(hub, ack.correlation_id)
    assert report_text(reply, "Status") == "completed_with_compensation"
    found = legs(reply)
    assert found["open"]["Status"] == "failed"
    assert "3001" in found["open"]["Error"] and "not in Sunderland" in found["open"]["Error"]
    assert found["close"]["Status"] == "compensated"
    assert found["close"]["CompensationStatus"] == "succeeded"
    assert found["notify"]["Status"] == "skipped"
    explanation = report_text(reply, "Explanation")
    assert "compensate" in explanation and "'close'" in explanation
    account = await hub.connector(f"council-{SEDGEMOOR}").store.account(old_account())
    assert account.closed_from is None  # reopened: nothing half done
    assert await hub.connector("electoral-E08000024").notifications() == []


async def test_a_leg_deleted_before_its_answer_still_counts(start_hub: StartHub) -> None:
    # A delete before the answer only removes the client's copy; the back office still applies
    # the leg (reference §3.8), so the journey must neither undo the close nor open twice.
    hub = await start_hub()
    council = hub.connector(f"council-{SUNDERLAND}")
    opening = asyncio.Event()
    release = asyncio.Event()
    opens: list[str] = []
    handle = council.handle

    async def held_open(tx: Any, ctx: Any) -> Any:
        if tx.class_ == "LA-CTAX-OPEN":
            opens.append(tx.correlation_id)
            opening.set()
            await release.wait()
        return await handle(tx, ctx)

    council.handle = held_open
    ack = await submit(hub, request())
    assert ack.correlation_id
    await asyncio.wait_for(opening.wait(), 10)
    deleted = wire.read(await hub.post(wire.delete("LA-CTAX-OPEN", opens[0])))
    assert (deleted.qualifier, deleted.function) == ("response", "delete")
    await asyncio.sleep(1)  # the coordinator checks the journey every 0.05 s meanwhile
    release.set()
    reply = await final(hub, ack.correlation_id)
    assert report_text(reply, "Status") == "completed"
    assert legs(reply)["open"]["Status"] == "succeeded"
    assert len(opens) == 1
    closed = await hub.connector(f"council-{SEDGEMOOR}").store.account(old_account())
    assert closed.closed_from is not None


async def test_test_in_live_checks_every_step_and_sends_none(start_hub: StartHub) -> None:
    hub = await start_hub()
    ack = await submit(hub, request(), class_=f"{CLASS}-TIL")
    assert ack.qualifier == "acknowledgement", ack.errors
    assert ack.correlation_id
    reply = await final(hub, ack.correlation_id, class_=f"{CLASS}-TIL")
    assert reply.qualifier == "response", reply.errors
    assert report_text(reply, "Status") == "checked_not_processed"
    assert "nothing was sent" in report_text(reply, "Explanation")
    assert {leg["Status"] for leg in legs(reply).values()} == {"pending"}
    assert await records.get(hub.app[DB], ack.correlation_id) is None
    account = await hub.connector(f"council-{SEDGEMOOR}").store.account(old_account())
    assert account.closed_from is None
    # The checks are the live ones: a citizen not enrolled for the old account is refused.
    stranger = citizens_list()[0]  # DEMO0SUN0001: not enrolled at Sedgemoor
    refused = await submit(hub, request(), user=stranger, class_=f"{CLASS}-TIL")
    assert refused.correlation_id
    answer = await final(hub, refused.correlation_id, class_=f"{CLASS}-TIL")
    assert answer.error_number == 3001 and "not enrolled" in answer.errors[0]["text"]


async def test_a_journey_on_the_test_service_runs_its_legs_there(start_hub: StartHub) -> None:
    # As if the client had sent each leg with GatewayTest=1: flagged for the back office (or a
    # route's test back office) and left out of the councils' counts.
    hub = await start_hub()
    citizen = mover()
    xml = wire.submission(
        CLASS,
        build_xml(request()).decode(),
        user=citizen.user_id,
        password=citizen.password,
        organisation="GW",
        gateway_test=True,
    )
    ack = wire.read(await hub.post(xml))
    assert ack.qualifier == "acknowledgement", ack.errors
    assert ack.correlation_id
    assert report_text(await final(hub, ack.correlation_id), "Status") == "completed"
    _journey, run = await records.get(hub.app[DB], ack.correlation_id)
    async with hub.app[DB].read() as session:
        flags = [
            (await session.get(Submission, leg.correlation_id)).gateway_test
            for leg in run
            if leg.correlation_id
        ]
    assert flags and all(flags)
    assert await submission_volumes(hub.app[DB]) == {}


async def test_restart_mid_journey_completes(start_hub: StartHub, tmp_path: Any) -> None:
    data_dir = tmp_path / "shared"
    first = await start_hub(er={"delay_seconds": 0.5}, data_dir=data_dir)
    ack = await submit(first, request())
    cid = ack.correlation_id
    assert cid
    for _ in range(200):
        status, body = await get_json(first, f"/api/journeys/{cid}", mover())
        if status == 200 and body["legs"][2]["status"] == "submitted":
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the notify leg was never submitted")
    await first.stop()
    db = Database.open(first.config.database_url)
    try:
        stopped = await records.get(db, cid)
    finally:
        await db.aclose()
    assert stopped is not None
    assert stopped[0].state == "in_progress"  # stopped mid-journey, its state in the database
    second = await start_hub(data_dir=data_dir)
    reply = await final(second, cid)
    assert report_text(reply, "Status") == "completed"
    found = legs(reply)
    assert {f["Status"] for f in found.values()} == {"succeeded"}
    assert found["notify"]["Attempts"] == "1"  # delivered once, not resubmitted


async def test_json_api_starts_a_journey_and_hides_it_from_others(start_hub: StartHub) -> None:
    hub = await start_hub()
    citizen = mover()
    async with hub.session.post(
        f"{hub.url}/api/journeys/change-of-address", json=request(), headers=basic(citizen)
    ) as resp:
        assert resp.status == 202, await resp.text()
        started = await resp.json()
    jid = started["id"]
    assert started["status"] == "in_progress"
    assert [leg["class"] for leg in started["legs"]] == [
        "LA-CTAX-CLOSE",
        "LA-CTAX-OPEN",
        "ER-NOTIFY-MOVE",
    ]
    for _ in range(200):
        status, body = await get_json(hub, f"/api/journeys/{jid}", citizen)
        if body["status"] != "in_progress":
            break
        await asyncio.sleep(0.05)
    assert body["status"] == "completed", body
    assert all(leg["correlation_id"] for leg in body["legs"])

    other = citizens_list()[0]
    status, _ = await get_json(hub, f"/api/journeys/{jid}", other)
    assert status == 404
    async with hub.session.get(f"{hub.url}/api/journeys/{jid}") as resp:
        assert resp.status == 401


async def test_a_citizen_not_enrolled_for_the_old_account_is_refused(start_hub: StartHub) -> None:
    hub = await start_hub()
    stranger = citizens_list()[0]  # DEMO0SUN0001: not enrolled at Sedgemoor
    async with hub.session.post(
        f"{hub.url}/api/journeys/change-of-address", json=request(), headers=basic(stranger)
    ) as resp:
        assert resp.status == 422
        assert "not enrolled" in (await resp.json(content_type=None))["detail"]
    ack = await submit(hub, request(), user=stranger)
    assert ack.correlation_id
    reply = await final(hub, ack.correlation_id)
    assert reply.qualifier == "error"
    assert reply.error_number == 3001
    assert "not enrolled" in reply.errors[0]["text"]
    # No password: the route needs a signed-on citizen.
    anonymous = wire.read(
        await hub.post(wire.submission(CLASS, build_xml(request()).decode(), organisation="GW"))
    )
    assert anonymous.error_number == 1046


async def test_after_moving_in_the_citizen_can_view_council_tax_at_the_new_address(
    start_hub: StartHub,
) -> None:
    hub = await start_hub()
    data = request()
    ack = await submit(hub, data)
    assert ack.correlation_id
    reply = await final(hub, ack.correlation_id)
    assert report_text(reply, "Status") == "completed"
    new_ref = legs(reply)["open"]["Outcome"].split()[1]

    # The mover already has a View Council Tax enrolment at Sunderland (one per class), so the
    # new account is enrolled for by a new registration, with its facts and the letter's PIN.
    password = "correct horse battery"
    async with hub.session.post(
        f"{hub.url}/api/registrations",
        json={"kind": "individual", "display_name": "Morgan Mover", "password": password},
    ) as resp:
        assert resp.status == 201, await resp.text()
        citizen = SimpleNamespace(user_id=(await resp.json())["user_id"], password=password)
    facts = {"CTaxAccountRef": new_ref, "PostCode": "SR6 9NN", "Surname": "Mover"}
    async with hub.session.post(
        f"{hub.url}/api/enrolments",
        json={"class": "LA-CTAX-VIEW", "organisation": SUNDERLAND, "facts": facts},
        headers=basic(citizen),
    ) as resp:
        assert resp.status in (200, 201, 202), await resp.text()
        enrolment = await resp.json()
    async with hub.session.get(f"{hub.url}/admin/letters?user_id={citizen.user_id}") as resp:
        letters = (await resp.json())["letters"]
    pin = re.search(r"activation PIN is: ([A-Z0-9]{6,8})", letters[-1]["text"])
    assert pin is not None
    async with hub.session.post(
        f"{hub.url}/api/enrolments/{enrolment['id']}/activation",
        json={"pin": pin.group(1)},
        headers=basic(citizen),
    ) as resp:
        assert resp.status == 200, await resp.text()

    # View Council Tax: charged by the day from the move in, over the instalments left.
    sent = wire.read(
        await hub.post(
            wire.submission(
                "LA-CTAX-VIEW",
                view_request(new_ref).decode(),
                user=citizen.user_id,
                password=citizen.password,
                keys={"CTaxAccountRef": new_ref},
                organisation=SUNDERLAND,
            )
        )
    )
    assert sent.correlation_id, sent.errors
    answer = await final(hub, sent.correlation_id, class_="LA-CTAX-VIEW")
    assert answer.qualifier == "response", answer.errors
    assert answer.body is not None

    def field(name: str) -> str:
        assert answer.body is not None
        return str(answer.body.xpath(f"string(//*[local-name()='{name}'])"))

    moved_in = date.fromisoformat(data["move_date"])
    days = (YEAR_END - moved_in).days + 1
    gross = pence(field("AnnualCharge"))
    assert field("OpenedFrom") == data["move_date"]
    assert pence(field("NetCharge")) == pence(field("Balance")) == (2 * gross * days + 365) // 730
    amounts = answer.body.xpath("//*[local-name()='Instalment']/*[local-name()='Amount']/text()")
    assert sum(pence(str(a)) for a in amounts) == pence(field("NetCharge"))
