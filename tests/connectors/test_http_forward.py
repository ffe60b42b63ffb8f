"""HttpForwardConnector against the example supplier back office, over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from lxml import etree

from connectors.http_forward import HttpForwardConnector, SupplierServerError, map_reply
from connectors.http_forward.connector import parse_retry_after, request_document
from connectors.protocol import (
    BusinessError,
    Connector,
    ConnectorContext,
    Failed,
    Identity,
    Response,
    Retry,
    Transaction,
)
from connectors.sdk import ConnectorConfigError
from examples.supplier_backoffice import STATE, make_app
from examples.supplier_backoffice.app import CTAX_NS

NOW = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)


@dataclasses.dataclass
class Supplier:
    url: str
    app: web.Application
    session: aiohttp.ClientSession

    @property
    def transactions_url(self) -> str:
        return f"{self.url}/transactions"

    async def fault(self, mode: str, **extra: Any) -> None:
        async with self.session.post(f"{self.url}/_fault", json={"mode": mode, **extra}) as r:
            assert r.status == 200, await r.text()

    async def stats(self) -> dict[str, int]:
        async with self.session.get(f"{self.url}/_stats") as r:
            result: dict[str, int] = await r.json()
            return result


@pytest.fixture
async def supplier() -> AsyncIterator[Supplier]:
    app = make_app(hang_seconds=30)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession() as session:
        yield Supplier(f"http://{host}:{port}", app, session)
    await runner.cleanup()


ConnectorFactory = Callable[..., Awaitable[HttpForwardConnector]]


def context(tmp_path: Path, **options: Any) -> ConnectorContext:
    return ConnectorContext(
        name="ctax-supplier", options=options, data_dir=tmp_path, clock=lambda: NOW
    )


@pytest.fixture
async def forwarder(tmp_path: Path, supplier: Supplier) -> AsyncIterator[ConnectorFactory]:
    made: list[HttpForwardConnector] = []

    async def make(**options: Any) -> HttpForwardConnector:
        options.setdefault("url", supplier.transactions_url)
        connector = HttpForwardConnector(context(tmp_path, **options))
        await connector.start()
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.aclose()


def view(reference: str = "10000002", **changes: Any) -> Transaction:
    body = (
        f'<CTaxViewRequest xmlns="{CTAX_NS}"><AccountReference>{reference}</AccountReference>'
        "</CTaxViewRequest>"
    ).encode()
    tx = Transaction(
        correlation_id=uuid.uuid4().hex.upper(),
        class_="LA-CTAX-VIEW",
        organisation="E07000123",
        keys={"CTaxRef": reference},
        body=body,
        identity=Identity(user_id="8CK3SA26U1G4", auth_method="clear", auth_level=1),
        transaction_id="0001A",
        received_at=NOW,
    )
    return dataclasses.replace(tx, **changes)


async def handle(connector: HttpForwardConnector, tx: Transaction) -> Any:
    return await connector.handle(tx, context(Path(".")))


# -- the happy path and business errors ------------------------------------------------------


async def test_satisfies_the_connector_protocol(forwarder: ConnectorFactory):
    connector = await forwarder()
    assert isinstance(connector, Connector)
    assert connector.name == "http-forward" and connector.api_version == 1


async def test_response(forwarder: ConnectorFactory, supplier: Supplier):
    outcome = await handle(await forwarder(), view("10000002"))
    assert isinstance(outcome, Response)
    root = etree.fromstring(outcome.body)
    assert root.tag == f"{{{CTAX_NS}}}CTaxViewResponse"
    assert root.findtext(f"{{{CTAX_NS}}}Band") == "D"
    assert root.findtext(f"{{{CTAX_NS}}}Balance") == "335.48"
    assert (await supplier.stats())["applied"] == 1


async def test_business_error_with_locations(forwarder: ConnectorFactory):
    outcome = await handle(await forwarder(), view("99999999"))
    assert isinstance(outcome, BusinessError)
    assert outcome.application == "Example Council Tax"
    [error] = outcome.errors
    assert error.number == 3001
    assert error.type == "business" and error.raised_by == "Department"
    assert "99999999" in error.text
    assert error.locations == ("/CTaxViewRequest/AccountReference",)


async def test_test_in_live_is_answered_but_not_applied(
    forwarder: ConnectorFactory, supplier: Supplier
):
    outcome = await handle(await forwarder(), view(test_in_live=True))
    assert isinstance(outcome, Response)
    assert (await supplier.stats())["applied"] == 0


# -- transient failures ------------------------------------------------------------------------


async def test_retry_after_on_503(forwarder: ConnectorFactory, supplier: Supplier):
    await supplier.fault("retry", retry_after=7)
    outcome = await handle(await forwarder(), view())
    assert isinstance(outcome, Retry)
    assert outcome.after == 7
    assert "503" in outcome.reason


async def test_retry_after_on_429(forwarder: ConnectorFactory, supplier: Supplier):
    await supplier.fault("throttle", retry_after=2)
    outcome = await handle(await forwarder(), view())
    assert isinstance(outcome, Retry) and outcome.after == 2


async def test_retry_then_success_applies_once(forwarder: ConnectorFactory, supplier: Supplier):
    await supplier.fault("retry", retry_after=1, times=1)
    connector = await forwarder()
    tx = view()
    assert isinstance(await handle(connector, tx), Retry)
    outcome = await handle(connector, dataclasses.replace(tx, attempt=2))
    assert isinstance(outcome, Response)
    assert (await supplier.stats())["applied"] == 1


async def test_500_raises(forwarder: ConnectorFactory, supplier: Supplier):
    await supplier.fault("error500")
    with pytest.raises(SupplierServerError) as info:
        await handle(await forwarder(), view())
    assert info.value.status == 500
    assert "simulated internal error" in str(info.value)


async def test_hang_raises_timeout_within_the_configured_timeout(
    forwarder: ConnectorFactory, supplier: Supplier
):
    await supplier.fault("hang")
    connector = await forwarder(timeout=0.5)
    started = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        await handle(connector, view())
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 2.0
    # A plain timeout, not one of aiohttp's connection-error hybrids: the hub maps it to 2005.
    assert type(info.value) is TimeoutError
    assert "0.5s" in str(info.value)


async def test_connection_refused_raises(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    connector = HttpForwardConnector(context(tmp_path, url=f"http://127.0.0.1:{port}/x", timeout=5))
    await connector.start()
    try:
        started = time.monotonic()
        with pytest.raises(aiohttp.ClientConnectionError) as info:
            await handle(connector, view())
        assert not isinstance(info.value, TimeoutError)
        assert time.monotonic() - started < 4
    finally:
        await connector.aclose()


# -- idempotency -------------------------------------------------------------------------------


async def test_same_correlation_id_twice_is_applied_once(
    forwarder: ConnectorFactory, supplier: Supplier
):
    connector = await forwarder()
    tx = view("10000001")
    first = await handle(connector, tx)
    second = await handle(connector, dataclasses.replace(tx, attempt=2))
    assert isinstance(first, Response)
    assert first == second
    stats = await supplier.stats()
    assert stats == {"requests": 2, "applied": 1, "replays": 1}
    assert supplier.app[STATE].applied == [tx.correlation_id]


async def test_business_error_is_replayed_too(forwarder: ConnectorFactory, supplier: Supplier):
    connector = await forwarder()
    tx = view("99999999")
    assert await handle(connector, tx) == await handle(connector, tx)
    assert (await supplier.stats())["replays"] == 1


async def test_key_reused_for_another_transaction_fails(
    forwarder: ConnectorFactory, supplier: Supplier
):
    connector = await forwarder()
    tx = view("10000001")
    assert isinstance(await handle(connector, tx), Response)
    other = dataclasses.replace(view("10000003"), correlation_id=tx.correlation_id)
    outcome = await handle(connector, other)
    assert isinstance(outcome, Failed)
    assert "409" in outcome.reason


# -- replies the hub must not trust ------------------------------------------------------------


async def test_malformed_json_fails(forwarder: ConnectorFactory, supplier: Supplier):
    await supplier.fault("malformed")
    outcome = await handle(await forwarder(), view())
    assert isinstance(outcome, Failed) and "not JSON" in outcome.reason


async def test_reply_body_not_well_formed_fails(forwarder: ConnectorFactory, supplier: Supplier):
    await supplier.fault("bad_xml")
    outcome = await handle(await forwarder(), view())
    assert isinstance(outcome, Failed) and "reply body is invalid" in outcome.reason


async def test_oversized_reply_fails(forwarder: ConnectorFactory):
    outcome = await handle(await forwarder(max_reply_bytes=50), view())
    assert isinstance(outcome, Failed) and "exceeds 50 bytes" in outcome.reason


async def test_404_fails_with_status_and_snippet(forwarder: ConnectorFactory, supplier: Supplier):
    outcome = await handle(await forwarder(url=f"{supplier.url}/nowhere"), view())
    assert isinstance(outcome, Failed)
    assert "HTTP 404" in outcome.reason and "Not Found" in outcome.reason


async def test_unknown_class_is_a_supplier_400(forwarder: ConnectorFactory):
    outcome = await handle(await forwarder(), view(class_="LA-OTHER"))
    assert isinstance(outcome, Failed)
    assert "HTTP 400" in outcome.reason and "LA-OTHER" in outcome.reason


# -- the wire format itself --------------------------------------------------------------------


def test_request_document_fields():
    tx = view(body=b'<?xml version="1.0" encoding="UTF-8"?>\n<A>\xc3\xa9</A>', attempt=3)
    doc = request_document(tx)
    assert doc == {
        "api_version": 1,
        "correlation_id": tx.correlation_id,
        "idempotency_key": tx.correlation_id,
        "class": "LA-CTAX-VIEW",
        "organisation": "E07000123",
        "keys": {"CTaxRef": "10000002"},
        "body": "<A>é</A>",
        "transaction_id": "0001A",
        "gateway_test": False,
        "test_in_live": False,
        "received_at": "2026-11-28T10:00:00+00:00",
        "identity": {"user_id": "8CK3SA26U1G4", "auth_method": "clear", "auth_level": 1},
        "attempt": 3,
    }
    json.dumps(doc)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"outcome": "nope"}, "unknown outcome"),
        ({"outcome": "response", "body": 3}, "string 'body'"),
        ({"outcome": "response", "body": "<!DOCTYPE a><a/>"}, "DOCTYPE"),
        ({"outcome": "business_error", "errors": []}, "non-empty 'errors'"),
        ({"outcome": "business_error", "errors": [{"number": "3001", "text": "x"}]}, "integer"),
        ({"outcome": "business_error", "errors": [{"number": 3001, "text": ""}]}, "'text'"),
        (
            {"outcome": "business_error", "errors": [{"number": 1, "text": "x", "type": "odd"}]},
            "unknown 'type'",
        ),
        ({"outcome": "failed", "reason": "account locked"}, "account locked"),
    ],
)
def test_invalid_or_failed_replies(document: dict[str, Any], expected: str):
    outcome = map_reply(200, None, json.dumps(document).encode(), now=NOW)
    assert isinstance(outcome, Failed)
    assert expected in outcome.reason


def test_department_error_numbers_and_types_are_kept():
    raw = json.dumps(
        {
            "outcome": "business_error",
            "application": "Rates",
            "errors": [
                {"number": 7123, "text": "Own rule", "locations": ["/A/B"]},
                {"number": 4002, "text": "Bad date", "type": "schema"},
            ],
        }
    ).encode()
    outcome = map_reply(200, None, raw, now=NOW)
    assert isinstance(outcome, BusinessError)
    own, schema = outcome.errors
    assert (own.number, own.type, own.raised_by, own.locations) == (
        7123,
        "business",
        "Department",
        ("/A/B",),
    )
    assert (schema.number, schema.type) == (4002, "schema")


def test_status_mapping():
    assert map_reply(429, None, b"", now=NOW) == Retry(
        after=5.0, reason="supplier answered HTTP 429: "
    )
    with pytest.raises(SupplierServerError):
        map_reply(503, None, b"down", now=NOW)  # no Retry-After: an ordinary 5xx
    assert isinstance(map_reply(302, None, b"", now=NOW), Failed)
    assert isinstance(map_reply(204, None, b"", now=NOW), Failed)


def test_retry_after_forms():
    assert parse_retry_after("120", now=NOW) == 120
    assert parse_retry_after("Sat, 28 Nov 2026 10:01:30 GMT", now=NOW) == 90
    assert parse_retry_after("Sat, 28 Nov 2026 09:00:00 GMT", now=NOW) == 0
    assert parse_retry_after("soon", now=NOW) is None
    assert parse_retry_after(None, now=NOW) is None


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"url": "ftp://example"},
        {"url": "http://x", "timeout": 0},
        {"url": "http://x", "verify_tls": "no"},
        {"url": "http://x", "headers": {"A": 1}},
    ],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict[str, Any]):
    with pytest.raises(ConnectorConfigError):
        HttpForwardConnector(context(tmp_path, **options))


async def test_extra_headers_are_sent(tmp_path: Path):
    seen: list[dict[str, str]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"outcome": "response", "body": "<Ok/>"})

    app = web.Application()
    app.router.add_post("/", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    connector = HttpForwardConnector(
        context(
            tmp_path,
            url=f"http://{host}:{port}/",
            headers={"Authorization": "Bearer t", "Idempotency-Key": "ignored"},
        )
    )
    try:
        tx = view()
        assert await handle(connector, tx) == Response(b"<Ok/>")  # starts the session itself
    finally:
        await connector.aclose()
        await runner.cleanup()
    assert seen[0]["Authorization"] == "Bearer t"
    assert seen[0]["Idempotency-Key"] == tx.correlation_id
    assert seen[0]["Content-Type"].startswith("application/json")


async def test_supplier_shutdown_releases_hanging_handlers(supplier: Supplier):
    # The fixture's cleanup must not wait out hang_seconds: measured here on a hung request.
    await supplier.fault("hang")
    task = asyncio.ensure_future(supplier.session.post(supplier.transactions_url, data=b"{}"))
    await asyncio.sleep(0.2)
    supplier.app[STATE].release.set()
    async with await task as reply:
        assert reply.status == 503
