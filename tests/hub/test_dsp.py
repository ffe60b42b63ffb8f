"""The Document Submission Protocol over real HTTP against the demo hub."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.demo import citizens_list
from gateway.govtalk.credentials import md5_value
from gateway.store import submissions as store
from gateway.store.models import Submission
from gateway.web.keys import DB
from tests.conftest import Hub
from tests.hub import rows, wire

VIEW = "LA-CTAX-VIEW"
CTAX_NS = {"v": "urn:govtalk-hub:la:ctax:view:v1"}


def demo(index: int = 0):
    citizen = citizens_list()[index]
    return citizen, citizen.enrolments[0]


def view_submission(**overrides) -> str:
    citizen, enrolment = demo()
    args = dict(
        user=citizen.user_id,
        password=citizen.password,
        keys=enrolment.keys,
        organisation=enrolment.organisation,
    )
    args.update(overrides)
    return wire.submission(VIEW, enrolment.example_body(), **args)


async def submit(hub: Hub, xml: str | bytes, path: str = "/submission") -> wire.Reply:
    return wire.read(await hub.post(xml, path=path))


async def acknowledged(hub: Hub, xml: str | bytes | None = None) -> str:
    """Submit (the demo citizen's View Council Tax by default), require an acknowledgement;
    its CorrelationID."""
    ack = await submit(hub, xml if xml is not None else view_submission())
    assert ack.qualifier == "acknowledgement", ack.errors
    assert ack.correlation_id
    return ack.correlation_id


async def poll_until_final(
    hub: Hub, class_: str, cid: str, url: str | None = None, *, seconds: float = 10
) -> wire.Reply:
    """Poll as a client would until the answer is final (a response or an error)."""
    path = (url or hub.poll_url).removeprefix(hub.url)
    async with asyncio.timeout(seconds):
        while True:
            reply = wire.read(await hub.post(wire.poll(class_, cid), path=path))
            if reply.qualifier != "acknowledgement":
                return reply
            await asyncio.sleep(0.05)


async def test_submission_is_acknowledged_with_a_correlation_id_and_poll_endpoint(hub: Hub) -> None:
    reply = await submit(hub, view_submission(transaction_id="0042"))
    assert reply.qualifier == "acknowledgement"
    assert reply.function == "submit"
    assert reply.class_ == VIEW
    assert re.fullmatch(r"[0-9A-F]{32}", reply.correlation_id or "")
    assert reply.endpoint == hub.poll_url
    assert reply.poll_interval == 1
    assert reply.transaction_id == "0042"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", reply.timestamp or "")


async def test_full_cycle_response_repeatable_then_delete_then_2000(hub: Hub) -> None:
    ack = await submit(hub, view_submission())
    cid = ack.correlation_id
    assert cid
    final = await poll_until_final(hub, VIEW, cid, ack.endpoint)
    assert final.qualifier == "response"
    assert final.correlation_id == cid
    body = final.body
    assert body is not None
    _, enrolment = demo()
    assert enrolment.account_ref in wire.etree.tostring(body).decode()
    again = wire.read(await hub.post(wire.poll(VIEW, cid), path="/poll"))
    assert again.qualifier == "response"
    assert wire.etree.tostring(again.body) == wire.etree.tostring(body)

    deleted = wire.read(await hub.post(wire.delete(VIEW, cid)))
    assert deleted.qualifier == "response"
    assert deleted.function == "delete"
    assert deleted.correlation_id == cid
    assert deleted.poll_interval >= 0

    gone = wire.read(await hub.post(wire.poll(VIEW, cid), path="/poll"))
    assert gone.qualifier == "error"
    assert gone.error_number == 2000
    twice = wire.read(await hub.post(wire.delete(VIEW, cid)))
    assert twice.error_number == 2000


async def test_every_message_type_is_accepted_on_both_urls(hub: Hub) -> None:
    ack = await submit(hub, view_submission(), path="/poll")
    assert ack.qualifier == "acknowledgement"
    cid = ack.correlation_id
    assert cid
    final = await poll_until_final(hub, VIEW, cid, hub.submission_url)
    assert final.qualifier == "response"
    citizen, _ = demo()
    listed = wire.read(
        await hub.post(wire.data_request(VIEW, citizen.user_id, citizen.password), path="/poll")
    )
    assert listed.qualifier == "response" and listed.function == "list"
    deleted = wire.read(await hub.post(wire.delete(VIEW, cid), path="/poll"))
    assert deleted.function == "delete" and deleted.qualifier == "response"


@pytest.mark.parametrize(
    "content_type",
    ["text/xml", "application/xml", "application/octet-stream", "application/x-binary", None],
)
async def test_any_content_type_is_accepted(hub: Hub, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    reply = wire.read(await hub.post(view_submission(), headers=headers))
    assert reply.qualifier == "acknowledgement"


async def test_client_leniency(hub: Hub) -> None:
    _citizen, _enrolment = demo()
    # No CorrelationID element at all, digit-only TransactionID, ROLE in capitals, EmailAddress
    # inside IDAuthentication (not schema-valid, but real clients do it).
    xml = view_submission(
        correlation_id=None,
        transaction_id="123456",
        extra_sender="<EmailAddress>a@b.example</EmailAddress>",
    )
    xml = xml.replace("<Role>principal</Role>", "<Role>PRINCIPAL</Role>")
    reply = await submit(hub, xml)
    assert reply.qualifier == "acknowledgement", reply.errors
    assert reply.transaction_id == "123456"
    cid = reply.correlation_id
    assert cid
    # Full SenderDetails on a poll are ignored; a poll with no Body at all works too.
    sender = (
        "<SenderDetails><IDAuthentication><SenderID>someone</SenderID><Authentication><Method>clear</Method>"
        "<Value>wrong</Value></Authentication></IDAuthentication></SenderDetails>"
    )
    polled = wire.read(await hub.post(wire.poll(VIEW, cid, sender=sender), path="/poll"))
    assert polled.qualifier in ("acknowledgement", "response")
    polled = wire.read(await hub.post(wire.poll(VIEW, cid, with_body=True), path="/poll"))
    assert polled.qualifier in ("acknowledgement", "response")


async def test_md5_authentication(hub: Hub) -> None:
    citizen, _ = demo()
    reply = await submit(hub, view_submission(method="MD5", password=md5_value(citizen.password)))
    assert reply.qualifier == "acknowledgement", reply.errors


async def test_md5_switched_off_is_1047(hub_factory) -> None:
    hub = await hub_factory({"auth": {"allow_md5": False}})
    citizen, _ = demo()
    reply = await submit(hub, view_submission(method="MD5", password=md5_value(citizen.password)))
    assert reply.error_number == 1047
    assert reply.class_ == VIEW


@pytest.mark.parametrize(
    ("overrides", "number", "needle"),
    [
        ({"password": "not-the-password"}, 1046, "not recognised"),
        ({"user": "NOSUCHUSER01"}, 1046, "not recognised"),
        ({"keys": {"CTaxAccountRef": "SUN99999999"}}, 1046, "not enrolled"),
        ({"keys": {}}, 1046, "not enrolled"),
        ({"user": None}, 1046, "requires authentication"),
        ({"password": ""}, 1040, "Value"),
        ({"method": "W3Csigned"}, 1040, "Signature"),
        ({"correlation_id": "0" * 32}, 1020, "CorrelationID"),
        ({"organisation": "E99999999"}, 1001, "E99999999"),
        ({"organisation": None}, 2002, "Organisation"),
    ],
)
async def test_submission_refusals(hub: Hub, overrides, number: int, needle: str) -> None:
    reply = await submit(hub, view_submission(**overrides))
    assert reply.qualifier == "error"
    assert reply.error_number == number, reply.errors
    assert needle in reply.errors[0]["text"]
    assert reply.errors[0]["raised_by"] == "Gateway"
    assert reply.errors[0]["type"] == "fatal"
    assert reply.endpoint and reply.poll_interval >= 0
    assert reply.transaction_id == "0001"


async def test_unknown_class_is_1001_naming_it(hub: Hub) -> None:
    citizen, enrolment = demo()
    xml = wire.submission(
        "LA-NO-SUCH", enrolment.example_body(), user=citizen.user_id, password=citizen.password
    )
    reply = await submit(hub, xml)
    assert reply.error_number == 1001
    assert "LA-NO-SUCH" in reply.errors[0]["text"]


async def test_empty_body_is_1042(hub: Hub) -> None:
    citizen, enrolment = demo()
    xml = wire.submission(
        VIEW,
        "",
        user=citizen.user_id,
        password=citizen.password,
        keys=enrolment.keys,
        organisation=enrolment.organisation,
    )
    assert (await submit(hub, xml)).error_number == 1042


async def test_poll_and_delete_refusals(hub: Hub) -> None:
    ack = await submit(hub, view_submission())
    cid = ack.correlation_id
    assert cid
    wrong_class = wire.read(await hub.post(wire.poll("LA-CTAX-SPD", cid), path="/poll"))
    assert wrong_class.error_number == 1001 and "does not match" in wrong_class.errors[0]["text"]
    wrong_class = wire.read(await hub.post(wire.delete("LA-CTAX-SPD", cid)))
    assert wrong_class.error_number == 1001
    no_cid = wire.read(await hub.post(wire.delete(VIEW, None)))
    assert no_cid.error_number == 1035
    unknown = wire.read(await hub.post(wire.poll(VIEW, "A" * 32), path="/poll"))
    assert unknown.error_number == 2000
    assert unknown.correlation_id == "A" * 32
    # The wrong-class attempts left the record alone.
    assert (await poll_until_final(hub, VIEW, cid)).qualifier == "response"


async def test_client_cannot_send_gateway_messages(hub: Hub) -> None:
    xml = view_submission(qualifier="acknowledgement")
    reply = await submit(hub, xml)
    assert reply.error_number == 1001
    assert "acknowledgement" in reply.errors[0]["text"]


async def test_data_request_lists_status_and_filters(hub: Hub) -> None:
    citizen, _ = demo()
    ack = await submit(hub, view_submission(transaction_id="0A0B"))
    cid = ack.correlation_id
    assert cid
    await poll_until_final(hub, VIEW, cid)
    second = await submit(hub, view_submission(transaction_id="0C0D"))
    assert second.correlation_id
    await poll_until_final(hub, VIEW, second.correlation_id)
    await hub.post(wire.delete(VIEW, second.correlation_id))

    reply = wire.read(await hub.post(wire.data_request(VIEW, citizen.user_id, citizen.password)))
    assert reply.qualifier == "response" and reply.function == "list"
    assert reply.correlation_id is None
    assert reply.transaction_id == "42"
    report = reply.body
    assert report is not None and wire.etree.QName(report).localname == "StatusReport"
    records = report.xpath("*[local-name()='StatusRecord']")
    by_cid = {r.xpath("string(*[local-name()='CorrelationID'])"): r for r in records}
    assert cid in by_cid and second.correlation_id not in by_cid  # deleted never appear
    assert by_cid[cid].xpath("string(*[local-name()='Status'])") == "SUBMISSION_RESPONSE"
    assert by_cid[cid].xpath("string(*[local-name()='TransactionID'])") == "0A0B"
    stamp = by_cid[cid].xpath("string(*[local-name()='TimeStamp'])")
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d", stamp)

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%d/%m/%Y")
    future = f"<StartDate>{tomorrow}</StartDate><StartTime>00:00:00</StartTime>"
    reply = wire.read(
        await hub.post(wire.data_request(VIEW, citizen.user_id, citizen.password, future))
    )
    assert reply.body is not None and not reply.body.xpath("*[local-name()='StatusRecord']")

    today = datetime.now(UTC).strftime("%d/%m/%Y")
    backwards = f"<StartDate>{tomorrow}</StartDate><EndDate>{today}</EndDate>"
    reply = wire.read(
        await hub.post(wire.data_request(VIEW, citizen.user_id, citizen.password, backwards))
    )
    assert reply.error_number == 1038
    bad = "<StartDate>31/02/2026</StartDate>"
    reply = wire.read(
        await hub.post(wire.data_request(VIEW, citizen.user_id, citizen.password, bad))
    )
    assert reply.error_number == 1039
    reply = wire.read(await hub.post(wire.data_request(VIEW, citizen.user_id, "wrong")))
    assert reply.error_number == 1046
    reply = wire.read(
        await hub.post(
            wire.data_request(VIEW, citizen.user_id, citizen.password, correlation_id="B" * 32)
        )
    )
    assert reply.error_number == 1020


async def stored_answers(hub: Hub, start: datetime, seconds: list[int]) -> list[Submission]:
    """Answered submissions of the demo citizen, the nth received `seconds[n]` after start."""
    citizen, _ = demo()
    stored = [
        rows.submission(
            f"{n:032X}",
            at=start + timedelta(seconds=s, microseconds=n),
            class_=VIEW,
            sender_id=citizen.user_id,
            state="response",
            response_body=b"<x/>",
        )
        for n, s in enumerate(seconds)
    ]
    async with hub.app[DB].transaction() as session:  # one transaction, not one per row
        session.add_all(stored)
    return stored


async def list_page(hub: Hub, since: str | None = None) -> tuple[list[str], str]:
    """One data request (from since, a report timestamp): its CorrelationIDs and EndTimeStamp."""
    citizen, _ = demo()
    body = ""
    if since is not None:
        day, time = since.split(" ")
        body = f"<StartDate>{day}</StartDate><StartTime>{time}</StartTime>"
    reply = wire.read(
        await hub.post(wire.data_request(VIEW, citizen.user_id, citizen.password, body))
    )
    assert reply.qualifier == "response" and reply.body is not None, reply.errors
    cids = reply.body.xpath("*[local-name()='StatusRecord']/*[local-name()='CorrelationID']")
    return [c.text for c in cids], reply.body.xpath("string(*[local-name()='EndTimeStamp'])")


def report_time(value: datetime) -> str:
    return value.strftime("%d/%m/%Y %H:%M:%S")


async def test_a_long_list_is_paged_by_its_end_timestamp(hub: Hub) -> None:
    """A report holds at most 1,000 records, in whole seconds; past that it ends at the first
    second it leaves out, and asking again from there gives the rest: none missed, none twice."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    # 1,003 submissions a second apart, but the 999th to 1,002nd (counting from 0) in one second.
    stored = await stored_answers(hub, start, [*range(999), 999, 999, 999, 1000])
    first, end = await list_page(hub)
    assert first == [r.correlation_id for r in stored[:999]]  # second 999 would not fit whole
    assert end == report_time(start + timedelta(seconds=999))
    second, last_end = await list_page(hub, end)
    assert second == [r.correlation_id for r in stored[999:]]
    # Not cut short: the report runs to now.
    assert (
        datetime.strptime(last_end, "%d/%m/%Y %H:%M:%S").replace(tzinfo=UTC)
        > stored[-1].received_at
    )


async def test_paging_gets_past_a_second_of_more_than_a_reports_worth(hub: Hub) -> None:
    """A load test can file more than 1,000 submissions in one second: the report holds all of
    that second, and the next starts at the second after it."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    stored = await stored_answers(hub, start, [0] * 1200 + [1, 2])
    first, end = await list_page(hub)
    assert first == [r.correlation_id for r in stored[:1200]]
    assert end == report_time(start + timedelta(seconds=1))
    second, _ = await list_page(hub, end)
    assert second == [r.correlation_id for r in stored[1200:]]


async def test_list_shows_only_the_senders_own_submissions(hub: Hub) -> None:
    ack = await submit(hub, view_submission())
    other = citizens_list()[1]
    reply = wire.read(await hub.post(wire.data_request(VIEW, other.user_id, other.password)))
    assert reply.qualifier == "response"
    assert ack.correlation_id not in reply.raw.decode()


async def test_gateway_test_flag_is_recorded_and_echoed(hub: Hub) -> None:
    ack = await submit(hub, view_submission(gateway_test=True))
    assert ack.text("//gt:GatewayTest") == "1"
    assert ack.correlation_id
    final = await poll_until_final(hub, VIEW, ack.correlation_id)
    assert final.qualifier == "response"
    assert final.text("//gt:GatewayTest") == "1"


async def test_spd_write_changes_view_and_second_application_is_3001(hub: Hub) -> None:
    citizen, _ = demo()
    spd = next(e for e in citizen.enrolments if e.class_ == "LA-CTAX-SPD")
    view = next(e for e in citizen.enrolments if e.class_ == VIEW)

    async def run(class_: str, body: str) -> wire.Reply:
        xml = wire.submission(
            class_,
            body,
            user=citizen.user_id,
            password=citizen.password,
            keys=spd.keys,
            organisation=spd.organisation,
        )
        ack = await submit(hub, xml)
        assert ack.correlation_id, ack.errors
        return await poll_until_final(hub, class_, ack.correlation_id)

    before = await run(VIEW, view.example_body())
    assert before.qualifier == "response"
    applied = await run("LA-CTAX-SPD", spd.example_body())
    assert applied.qualifier == "response", applied.errors
    after = await run(VIEW, view.example_body())
    assert wire.etree.tostring(after.body) != wire.etree.tostring(before.body)
    assert "single" in wire.etree.tostring(after.body).decode().lower()

    refused = await run("LA-CTAX-SPD", spd.example_body())
    assert refused.qualifier == "error"
    assert refused.error_number == 3001
    assert refused.errors[0]["type"] == "business"
    assert refused.errors[0]["locations"], "a business error names where"
    detail = refused.body
    assert detail is not None and wire.etree.QName(detail).localname == "ErrorResponse"
    assert detail.xpath("string(//err:Error/err:Number)", namespaces=wire.NS) == "3001"
    assert detail.xpath("//err:Error/err:Location", namespaces=wire.NS)


async def test_test_in_live_is_checked_not_processed(hub: Hub) -> None:
    citizen, _ = demo()
    spd = next(e for e in citizen.enrolments if e.class_ == "LA-CTAX-SPD")
    xml = wire.submission(
        "LA-CTAX-SPD-TIL",
        spd.example_body(),
        user=citizen.user_id,
        password=citizen.password,
        keys=spd.keys,
        organisation=spd.organisation,
    )
    ack = await submit(hub, xml)
    assert ack.class_ == "LA-CTAX-SPD-TIL" and ack.correlation_id, ack.errors
    final = await poll_until_final(hub, "LA-CTAX-SPD-TIL", ack.correlation_id)
    assert final.qualifier == "response"
    assert "not processed" in wire.etree.tostring(final.body).decode()
    # Not processed: the real application is still accepted afterwards.
    xml = wire.submission(
        "LA-CTAX-SPD",
        spd.example_body(),
        user=citizen.user_id,
        password=citizen.password,
        keys=spd.keys,
        organisation=spd.organisation,
    )
    ack = await submit(hub, xml)
    assert ack.correlation_id
    assert (await poll_until_final(hub, "LA-CTAX-SPD", ack.correlation_id)).qualifier == "response"


def sync_view_route(**extra: Any) -> dict[str, Any]:
    """The demo citizen's View Council Tax route, answered synchronously."""
    _citizen, enrolment = demo()
    return {
        "class": VIEW,
        "organisation": enrolment.organisation,
        "connector": f"council-{enrolment.organisation}",
        "mode": "sync",
        **extra,
    }


async def test_sync_route_answers_the_submission_directly(hub_factory) -> None:
    hub = await hub_factory({"routes": [sync_view_route()]})
    reply = await submit(hub, view_submission())
    assert reply.qualifier == "response", reply.errors
    assert reply.correlation_id and reply.body is not None
    deleted = wire.read(await hub.post(wire.delete(VIEW, reply.correlation_id)))
    assert deleted.function == "delete"


async def test_a_sync_route_failing_after_the_commit_still_gives_the_correlation_id(
    hub_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database dropping out between the commit and the answer cannot be staged for real at
    # that instant: the first read of the answer fails, as a lost connection would.
    route = sync_view_route(timeout=0.5)
    hub = await hub_factory({"routes": [route], "dispatcher": {"lease_margin_seconds": 0.5}})
    read = store.get
    failures = [ConnectionResetError("connection to the database lost")]

    async def get_failing_once(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await read(*args, **kwargs)

    monkeypatch.setattr(store, "get", get_failing_once)
    reply = await submit(hub, view_submission())
    # Committed, so acknowledged: refused, the client would resubmit and be served twice.
    assert reply.qualifier == "acknowledgement", reply.errors
    assert reply.correlation_id and not failures
    assert (await poll_until_final(hub, VIEW, reply.correlation_id)).qualifier == "response"


async def test_a_stored_answer_xml_cannot_carry_is_a_1000_not_a_500(hub: Hub) -> None:
    # A row stored before the dispatcher cleaned back offices' texts, or by another writer.
    cid = "D" * 32
    async with hub.app[DB].transaction() as session:
        session.add(
            rows.submission(
                cid,
                class_=VIEW,
                base_class=VIEW,
                state="error",
                errors=[
                    {
                        "number": 3000,
                        "text": "Processing failed: ledger \x01 offline",
                        "raised_by": "Department",
                        "type": "fatal",
                        "locations": [],
                    }
                ],
            )
        )
    reply = wire.read(await hub.post(wire.poll(VIEW, cid), path="/poll"))
    assert reply.error_number == 1000
    assert reply.correlation_id == cid


async def test_poll_interval_is_per_class(hub_factory) -> None:
    _, enrolment = demo()
    route = {
        "class": VIEW,
        "organisation": enrolment.organisation,
        "connector": f"council-{enrolment.organisation}",
        "poll_interval": 7,
    }
    hub = await hub_factory({"routes": [route]})
    reply = await submit(hub, view_submission())
    assert reply.poll_interval == 7


async def test_response_endpoint_follows_configuration(hub_factory) -> None:
    hub = await hub_factory({"server": {"public_url": "https://gateway.example.gov.uk/"}})
    reply = await submit(hub, view_submission())
    assert reply.endpoint == "https://gateway.example.gov.uk/poll"


async def test_response_endpoint_follows_host_header(hub: Hub) -> None:
    reply = wire.read(await hub.post(view_submission(), headers={"Host": "councilhub.test:9000"}))
    assert reply.endpoint == "http://councilhub.test:9000/poll"


async def test_empty_gateway_test_and_timestamp_mean_absent(hub: Hub) -> None:
    # Real client software writes <GatewayTest/> and <GatewayTimestamp/> on every request, as
    # it writes <CorrelationID/>: a live submission, and its delete, with no client time.
    xml = view_submission().replace(
        "<Transformation>XML</Transformation>",
        "<Transformation>XML</Transformation><GatewayTest/><GatewayTimestamp/>",
    )
    ack = await submit(hub, xml)
    assert ack.qualifier == "acknowledgement", ack.errors
    assert ack.correlation_id
    async with hub.app[DB].read() as session:
        stored = await session.get(Submission, ack.correlation_id)
    assert stored is not None and not stored.gateway_test and stored.backdated_to is None
    delete = wire.delete(VIEW, ack.correlation_id).replace(
        "</MessageDetails>", "<GatewayTimestamp/></MessageDetails>"
    )
    deleted = wire.read(await hub.post(delete))
    assert (deleted.qualifier, deleted.function) == ("response", "delete"), deleted.errors


async def test_a_refused_envelope_echoes_what_the_client_matches_replies_by(hub: Hub) -> None:
    # A delete the schema refuses still tells the client which of its messages failed.
    invalid = wire.delete(VIEW, "a" * 32, transaction_id="0099").replace(
        "</MessageDetails>", "<Unexpected/></MessageDetails>"
    )
    reply = wire.read(await hub.post(invalid))
    assert reply.error_number == 1001
    assert (reply.function, reply.transaction_id, reply.correlation_id) == (
        "delete",
        "0099",
        "A" * 32,
    )
    # Values the schema forbids are not echoed: the reply itself must stay schema-valid.
    garbled = invalid.replace("0099", "not-hex").replace("a" * 32, "short")
    garbled = garbled.replace("<Function>delete</Function>", "<Function>erase</Function>")
    reply = wire.read(await hub.post(garbled))
    assert reply.error_number == 1001
    assert (reply.function, reply.transaction_id, reply.correlation_id) == ("submit", None, None)


async def test_an_http10_client_without_host_is_given_a_reachable_poll_url(hub: Hub) -> None:
    host, port = hub.url.removeprefix("http://").split(":")
    body = view_submission().encode()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /submission HTTP/1.0\r\nContent-Type: text/xml\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split()[1] == b"200"
    reply = wire.read(payload)
    assert reply.qualifier == "acknowledgement", reply.errors
    assert reply.endpoint == hub.poll_url
