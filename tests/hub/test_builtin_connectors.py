"""The receipt and http-forward connectors behind real routes, driven through the DSP."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from lxml import etree

from examples.supplier_backoffice.app import STATE, make_app
from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.govtalk.irmark import apply_irmark
from tests.conftest import ROOT, Hub
from tests.console.conftest import audit_records
from tests.hub import wire
from tests.hub.test_dsp import acknowledged, poll_until_final
from tests.serving import serving

PLANNING = "LA-PLANNING-COMMENT"
EXAMPLE = (ROOT / "connectors/receipt/examples/planning-comment.xml").read_text(encoding="utf-8")
RECEIPT_NS = {"r": "urn:govtalk-hub:receipt:v1"}


def _payload() -> str:
    return EXAMPLE.split("?>", 1)[1] if EXAMPLE.startswith("<?xml") else EXAMPLE


async def receipt_hub(hub_factory, mode: str = "sync", **route: Any) -> Hub:
    return await hub_factory(
        {
            "connectors": {
                "planning": {
                    "type": "receipt",
                    "schema": "connectors/receipt/examples/planning-comment.xsd",
                    "require_irmark": True,
                }
            },
            "routes": [
                {
                    "class": PLANNING,
                    "organisation": "E08000024",
                    "connector": "planning",
                    "mode": mode,
                    "auth_level": 0,
                    **route,
                }
            ],
        }
    )


def marked_envelope(payload: str, *, tamper: bool = False, **header: Any) -> bytes:
    """A client's submission with the IRmark computed over the envelope Body, as HMRC defines it."""
    xml = wire.submission(PLANNING, payload, organisation="E08000024", **header)
    doc = etree.ElementTree(etree.fromstring(xml.encode()))
    apply_irmark(doc)
    raw = etree.tostring(doc, encoding="utf-8", xml_declaration=True)
    if tamper:
        raw = raw.replace(b"<Comment>", b"<Comment>Altered: ", 1)
    return raw


async def test_receipt_route_checks_envelope_irmark_and_answers_synchronously(hub_factory) -> None:
    hub = await receipt_hub(hub_factory)
    reply = wire.read(await hub.post(marked_envelope(_payload())))
    assert reply.qualifier == "response", reply.errors
    receipt = reply.body
    assert receipt is not None
    assert (
        receipt.xpath("string(r:Message)", namespaces=RECEIPT_NS) == "Thank you for your submission"
    )
    assert len(receipt.xpath("string(r:IRmark)", namespaces=RECEIPT_NS)) == 32


async def test_receipt_route_refuses_altered_body_with_2021(hub_factory) -> None:
    hub = await receipt_hub(hub_factory)
    raw = marked_envelope(_payload(), tamper=True)
    assert b"Altered" in raw
    reply = wire.read(await hub.post(raw))
    assert reply.qualifier == "error"
    assert reply.error_number == 2021


async def test_receipt_route_schema_errors_are_3001_with_locations(hub_factory) -> None:
    hub = await receipt_hub(hub_factory)
    payload = _payload().replace("<Postcode>", "<Postcode>NOT A POSTCODE ", 1)
    reply = wire.read(await hub.post(marked_envelope(payload)))
    assert reply.error_number == 3001, reply.errors
    assert reply.errors[0]["locations"]
    assert reply.body is not None and etree.QName(reply.body).localname == "ErrorResponse"


async def test_receipt_til_is_advisory(hub_factory) -> None:
    hub = await receipt_hub(hub_factory)
    raw = marked_envelope(_payload()).replace(
        f"<Class>{PLANNING}</Class>".encode(), f"<Class>{PLANNING}-TIL</Class>".encode()
    )
    reply = wire.read(await hub.post(raw))
    assert reply.qualifier == "response" and reply.class_ == f"{PLANNING}-TIL"
    assert "not processed" in etree.tostring(reply.body).decode()


def accepted_time(reply: wire.Reply) -> str:
    assert reply.qualifier == "response", reply.errors
    assert reply.body is not None
    return str(reply.body.xpath("string(r:AcceptedTime)", namespaces=RECEIPT_NS))


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_test_submission_is_back_dated_by_its_gateway_timestamp(
    hub_factory, mode: str
) -> None:
    # The local test tool's way to try a deadline: the back office and every reply about the
    # submission are given the time the client set; async, it is stored and read back.
    hub = await receipt_hub(hub_factory, mode)
    raw = marked_envelope(
        _payload(), gateway_test=True, gateway_timestamp="2026-01-31T23:59:30.250+01:00"
    )
    reply = wire.read(await hub.post(raw))
    if mode == "async":
        assert reply.qualifier == "acknowledgement", reply.errors
        assert reply.timestamp == "2026-01-31T22:59:30.250"
        assert reply.correlation_id is not None
        reply = await poll_until_final(hub, PLANNING, reply.correlation_id)
    assert accepted_time(reply) == "2026-01-31T22:59:30Z"
    assert reply.timestamp == "2026-01-31T22:59:30.250"


async def test_a_live_submission_keeps_the_gateways_own_time(hub_factory) -> None:
    hub = await receipt_hub(hub_factory)
    before = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
    raw = marked_envelope(_payload(), gateway_timestamp="2026-01-31T23:59:30")
    reply = wire.read(await hub.post(raw))
    assert datetime.fromisoformat(accepted_time(reply).removesuffix("Z")) >= before
    assert reply.timestamp is not None
    assert datetime.fromisoformat(reply.timestamp) >= before


async def test_a_gateway_timestamp_no_clock_can_hold_is_1001(hub_factory) -> None:
    hub = await receipt_hub(hub_factory)
    # Schema-valid xs:dateTime, but not a time: refused on the test service, where it is used.
    raw = marked_envelope(_payload(), gateway_test=True, gateway_timestamp="2026-01-31T24:00:00")
    reply = wire.read(await hub.post(raw))
    assert reply.error_number == 1001
    assert "GatewayTimestamp" in reply.errors[0]["text"]
    assert reply.errors[0]["locations"] == [
        "/GovTalkMessage/Header/MessageDetails/GatewayTimestamp"
    ]


@pytest.mark.parametrize("credentials", ["check", "ignore"])
async def test_a_route_may_ignore_credentials_as_the_local_test_tool_did(
    hub_factory, credentials: str
) -> None:
    # A client set up with its live Gateway credentials, which this hub has never heard of.
    hub = await receipt_hub(hub_factory, credentials=credentials)
    raw = marked_envelope(_payload(), user="LIVE0CLIENT1", password="live-secret")
    reply = wire.read(await hub.post(raw))
    if credentials == "check":
        assert reply.error_number == 1046
        return
    assert reply.qualifier == "response", reply.errors
    received = await audit_records(hub, "dsp.received")
    assert [(r.actor, r.detail["auth_method"]) for r in received] == [(None, "none")]


def test_ignoring_credentials_needs_a_route_open_to_anyone() -> None:
    route = {"class": PLANNING, "organisation": "E08000024", "connector": "planning"}
    with pytest.raises(ConfigError, match="needs auth_level = 0"):
        parse_config({"routes": [{**route, "credentials": "ignore", "auth_level": 1}]})
    with pytest.raises(ConfigError, match="'check' or 'ignore'"):
        parse_config({"routes": [{**route, "credentials": "skip", "auth_level": 0}]})


async def test_http_forward_route_to_the_example_supplier(hub_factory, tmp_path: Path) -> None:
    supplier = make_app()
    async with serving(supplier) as url:
        hub = await hub_factory(
            {
                "connectors": {
                    "supplier": {"type": "http-forward", "url": f"{url}/transactions", "timeout": 2}
                },
                "routes": [
                    {
                        "class": "LA-CTAX-VIEW",
                        "organisation": "SUPPLIER",
                        "connector": "supplier",
                        "auth_level": 0,
                        "backoff": 0.05,
                    }
                ],
            }
        )
        body = '<CTaxViewRequest xmlns="urn:govtalk-hub:example:ctax-view:v1"><AccountReference>{}</AccountReference></CTaxViewRequest>'

        async def cycle(ref: str) -> wire.Reply:
            xml = wire.submission("LA-CTAX-VIEW", body.format(ref), organisation="SUPPLIER")
            return await poll_until_final(hub, "LA-CTAX-VIEW", await acknowledged(hub, xml))

        ok = await cycle("10000001")
        assert ok.qualifier == "response"
        assert "A. Resident" in etree.tostring(ok.body).decode()
        refused = await cycle("99999999")
        assert refused.error_number == 3001
        assert refused.errors[0]["locations"] == ["/CTaxViewRequest/AccountReference"]
        # A supplier outage for one request is retried through to an answer.
        async with hub.session.post(f"{url}/_fault", json={"mode": "error500", "times": 1}) as resp:
            assert resp.status == 200
        recovered = await cycle("10000002")
        assert recovered.qualifier == "response"
        assert supplier[STATE].requests >= 4


async def test_a_back_offices_own_error_numbers_reach_the_client_with_its_detail(
    hub_factory,
) -> None:
    # Departments number their own business rules; the client still gets the ErrorResponse
    # detail (reference §2), as for 3001, while the hub's own 3000 carries none.
    answers = [
        {
            "outcome": "business_error",
            "application": "Revenues and Benefits",
            "errors": [{"number": 7001, "text": "Account closed", "locations": ["/X/Ref"]}],
        },
        {"outcome": "failed", "reason": "the ledger is being rebuilt"},
    ]

    async def back_office(request: web.Request) -> web.Response:
        return web.json_response(answers.pop(0))

    app = web.Application()
    app.router.add_post("/transactions", back_office)
    async with serving(app) as url:
        hub = await hub_factory(
            {
                "connectors": {"dept": {"type": "http-forward", "url": f"{url}/transactions"}},
                "routes": [
                    {
                        "class": "LA-CTAX-VIEW",
                        "organisation": "DEPT",
                        "connector": "dept",
                        "auth_level": 0,
                    }
                ],
            }
        )
        replies = []
        for _ in answers[:]:
            xml = wire.submission("LA-CTAX-VIEW", "<X><Ref>1</Ref></X>", organisation="DEPT")
            replies.append(
                await poll_until_final(hub, "LA-CTAX-VIEW", await acknowledged(hub, xml))
            )
    business, failed = replies
    assert business.error_number == 7001
    assert business.body is not None and etree.QName(business.body).localname == "ErrorResponse"
    assert "Account closed" in etree.tostring(business.body).decode()
    assert "Revenues and Benefits" in etree.tostring(business.body).decode()
    assert failed.error_number == 3000 and failed.body is None
