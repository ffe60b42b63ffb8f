"""Connection faults on an http-forward connector: a real TCP reset and a real refused connection,
met by the connector's HTTP client; the back office is never reached until the fault is cleared."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from tests.conftest import Hub, HubFactory
from tests.faults.conftest import (
    COUNCIL,
    clear_fault,
    final_answer,
    put_fault,
    quick_route,
    set_fault,
)
from tests.hub import wire
from tests.serving import serving

SUPPLIER = "supplier"
ORGANISATION = "SUPPLIER1"
BODY = (
    '<CTaxViewRequest xmlns="urn:test:supplier"><AccountRef>10000001</AccountRef></CTaxViewRequest>'
)


@dataclass
class BackOffice:
    url: str
    received: list[str] = field(default_factory=list)  # correlation ids, in arrival order


@pytest.fixture
async def back_office() -> AsyncIterator[BackOffice]:
    """A little supplier back office speaking the http-forward wire format, on a real port."""
    office = BackOffice("")

    async def transactions(request: web.Request) -> web.Response:
        document = json.loads(await request.read())
        office.received.append(document["correlation_id"])
        reply = '<Account xmlns="urn:test:supplier"><Balance>0.00</Balance></Account>'
        return web.json_response({"outcome": "response", "body": reply})

    app = web.Application()
    app.router.add_post("/transactions", transactions)
    async with serving(app) as url:
        office.url = f"{url}/transactions"
        yield office


@pytest.fixture
async def supplier_hub(hub_factory: HubFactory, back_office: BackOffice) -> Hub:
    hub: Hub = await hub_factory(
        {
            "connectors": {
                SUPPLIER: {"type": "http-forward", "url": back_office.url, "timeout": 2}
            },
            "routes": [quick_route(ORGANISATION, SUPPLIER, auth_level=0, timeout=3)],
        }
    )
    return hub


async def view(hub: Hub) -> wire.Reply:
    return await final_answer(hub, wire.submission("LA-CTAX-VIEW", BODY, organisation=ORGANISATION))


async def served_after_clearing(hub: Hub, back_office: BackOffice) -> None:
    assert await clear_fault(hub, SUPPLIER) == 204
    reply = await view(hub)
    assert reply.qualifier == "response", reply.errors
    assert back_office.received == [reply.correlation_id]


async def test_connection_reset_is_retried_then_3000(
    supplier_hub: Hub, back_office: BackOffice
) -> None:
    await set_fault(supplier_hub, SUPPLIER, "connection_reset")
    reply = await view(supplier_hub)
    assert (reply.qualifier, reply.error_number) == ("error", 3000)
    error = reply.errors[0]
    assert error["raised_by"] == "Department" and error["type"] == "fatal"
    assert "Connection reset by peer" in error["text"]
    assert "after 2 attempt(s)" in error["text"]
    assert back_office.received == []  # the requests went to the resetting socket
    await served_after_clearing(supplier_hub, back_office)


async def test_connection_refused_is_retried_then_3000(
    supplier_hub: Hub, back_office: BackOffice
) -> None:
    await set_fault(supplier_hub, SUPPLIER, "connection_refused")
    reply = await view(supplier_hub)
    assert (reply.qualifier, reply.error_number) == ("error", 3000)
    text = reply.errors[0]["text"]
    assert "ConnectionRefusedError" in text and "Connect call failed" in text
    assert "after 2 attempt(s)" in text
    assert back_office.received == []
    await served_after_clearing(supplier_hub, back_office)


async def test_connection_faults_are_refused_on_other_connector_types(supplier_hub: Hub) -> None:
    for fault in ("connection_reset", "connection_refused"):
        status, problem = await put_fault(supplier_hub, COUNCIL, fault)
        assert status == 422
        assert problem["detail"] == (
            f"{fault} applies to http-forward connectors only; "
            f"'{COUNCIL}' is a simulated-council connector"
        )
