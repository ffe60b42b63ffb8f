"""Each fault in the catalogue on the demo council, set through the admin API: the GovTalk answer
a View Council Tax client gets is the one the reference prescribes, and clearing restores service."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lxml import etree

from gateway.store import submissions as store
from gateway.store.models import DeadLetter
from gateway.web.keys import DB
from tests.conftest import Hub
from tests.faults.conftest import COUNCIL, clear_fault, set_fault, timed_view, view
from tests.hub import wire

SCHEMAS = Path(__file__).resolve().parents[2] / "connectors" / "simcouncil" / "schemas"
VIEW_NS = "urn:govtalk-hub:la:ctax:view:v1"


async def dead_letters(hub: Hub) -> list[DeadLetter]:
    # The dispatcher writes the answer, then the dead letter: a poll can see the first alone.
    async with asyncio.timeout(5):
        while True:
            letters = await store.dead_letters(hub.app[DB])
            if letters:
                return letters
            await asyncio.sleep(0.05)


async def cleared_and_served(hub: Hub) -> None:
    """Clearing the fault puts the council back in service for the next transaction."""
    assert await clear_fault(hub, COUNCIL) == 204
    reply = await view(hub)
    assert reply.qualifier == "response", reply.errors
    assert reply.body is not None and reply.body.tag == f"{{{VIEW_NS}}}CTaxViewResponse"


async def test_hang_ends_in_2005_after_the_retries(council_hub: Hub) -> None:
    await set_fault(council_hub, COUNCIL, "hang")
    reply = await view(council_hub)
    assert (reply.qualifier, reply.error_number) == ("error", 2005)
    error = reply.errors[0]
    assert error["raised_by"] == "Gateway" and error["type"] == "fatal"
    assert "did not answer within 0.5s" in error["text"]
    assert "after 2 attempt(s)" in error["text"]
    [letter] = await dead_letters(council_hub)
    assert (letter.correlation_id, letter.error_number) == (reply.correlation_id, 2005)
    await cleared_and_served(council_hub)


async def test_latency_beyond_the_route_timeout_is_2005(council_hub: Hub) -> None:
    await set_fault(council_hub, COUNCIL, "latency", ms=1500)
    reply = await view(council_hub)
    assert reply.error_number == 2005
    assert "did not answer within 0.5s" in reply.errors[0]["text"]
    await cleared_and_served(council_hub)


async def test_distributed_latency_within_the_timeout_slows_the_answer(council_hub: Hub) -> None:
    # Uniform 300 ± 100 ms: every call waits at least 0.2 s and ends inside the 0.5 s timeout.
    await set_fault(council_hub, COUNCIL, "latency", ms=300, jitter_ms=100, distribution="uniform")
    for _ in range(2):
        reply, seconds = await timed_view(council_hub)
        assert reply.qualifier == "response", reply.errors
        assert seconds >= 0.2
    await cleared_and_served(council_hub)


async def test_error_rate_one_fails_every_call_and_ends_in_3000(council_hub: Hub) -> None:
    await set_fault(council_hub, COUNCIL, "error_rate", rate=1)
    reply = await view(council_hub)
    assert (reply.qualifier, reply.error_number) == ("error", 3000)
    error = reply.errors[0]
    assert error["raised_by"] == "Department" and error["type"] == "fatal"
    assert "injected fault error_rate" in error["text"]
    assert "after 2 attempt(s)" in error["text"]  # retried, as any failing connector is
    await cleared_and_served(council_hub)


async def test_business_error_is_a_located_3001_with_an_error_response(council_hub: Hub) -> None:
    await set_fault(
        council_hub,
        COUNCIL,
        "business_error",
        text="The account is under review; try again next week",
        location="/CTaxViewRequest/AccountRef",
    )
    reply = await view(council_hub)
    assert (reply.qualifier, reply.error_number) == ("error", 3001)
    error = reply.errors[0]
    assert error["raised_by"] == "Department" and error["type"] == "business"
    assert error["text"] == "The account is under review; try again next week"
    assert error["locations"] == ["/CTaxViewRequest/AccountRef"]
    # Reference §6: a business error's detail also travels in Body/ErrorResponse.
    detail = reply.root.xpath(
        "/gt:GovTalkMessage/gt:Body/err:ErrorResponse/err:Error", namespaces=wire.NS
    )
    assert [e.findtext(f"{{{wire.NS['err']}}}Number") for e in detail] == ["3001"]
    assert not await store.dead_letters(council_hub.app[DB])  # an answer, not a failure
    await cleared_and_served(council_hub)


async def test_business_error_can_be_a_schema_error_number(council_hub: Hub) -> None:
    await set_fault(
        council_hub, COUNCIL, "business_error", number=4002, text="AccountRef is missing"
    )
    reply = await view(council_hub)
    assert reply.error_number == 4002
    assert reply.errors[0]["type"] == "schema"
    await cleared_and_served(council_hub)


async def test_malformed_reply_is_3000_at_once(council_hub: Hub) -> None:
    await set_fault(council_hub, COUNCIL, "malformed_reply")
    reply = await view(council_hub)
    assert (reply.qualifier, reply.error_number) == ("error", 3000)
    text = reply.errors[0]["text"]
    assert "not usable XML" in text and "not well-formed" in text
    assert "after 1 attempt(s)" in text  # a reply that can never be embedded is not retried
    await cleared_and_served(council_hub)


async def test_schema_invalid_reply_reaches_the_client_failing_the_class_schema(
    council_hub: Hub,
) -> None:
    schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "ctax-view-response-v1.xsd")))
    await set_fault(council_hub, COUNCIL, "schema_invalid_reply")
    reply = await view(council_hub)
    # The hub checks a reply is well-formed XML, not the service's schema: it is passed through.
    assert reply.qualifier == "response", reply.errors
    body = reply.body
    assert body is not None and body.tag == f"{{{VIEW_NS}}}CTaxViewResponse"
    assert not schema.validate(body)
    assert "UnexpectedElement" in str(schema.error_log.last_error)
    # The rest is the council's real answer: the account it was asked about.
    assert body.findtext(f"{{{VIEW_NS}}}AccountRef")
    assert await clear_fault(council_hub, COUNCIL) == 204
    good = await view(council_hub)
    assert good.body is not None and schema.validate(good.body)
