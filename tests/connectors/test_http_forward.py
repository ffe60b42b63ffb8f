"""HttpForwardConnector against the example supplier back office, over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
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


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_oversized_429_or_5xx_is_still_retried(tmp_path: Path, chunked: bool):
    # A proxy's error page can be large; the status says "ask again", whatever the body's size.
    answers = iter(
        [(429, {}), (503, {"Retry-After": "7"}), (502, {}), (200, {})]  # the 200 stays permanent
    )
    page = b"<html>" + b"x" * 1000 + b"</html>"

    async def big(request: web.Request) -> web.StreamResponse:
        status, headers = next(answers)
        reply = web.StreamResponse(status=status, headers=headers)
        if chunked:
            reply.enable_chunked_encoding()
        else:
            reply.content_length = len(page)
        await reply.prepare(request)
        await reply.write(page)
        await reply.write_eof()
        return reply

    app = web.Application()
    app.router.add_post("/", big)
    async with serve(app) as url:
        connector = HttpForwardConnector(context(tmp_path, url=f"{url}/", max_reply_bytes=50))
        try:
            throttled = await handle(connector, view())
            unavailable = await handle(connector, view())
            with pytest.raises(SupplierServerError) as bad_gateway:
                await handle(connector, view())
            ok_but_huge = await handle(connector, view())
        finally:
            await connector.aclose()
    assert isinstance(throttled, Retry) and throttled.after == 5
    assert "HTTP 429" in throttled.reason and "not read" in throttled.reason
    assert isinstance(unavailable, Retry) and unavailable.after == 7
    assert bad_gateway.value.status == 502
    assert isinstance(ok_but_huge, Failed) and "exceeds 50 bytes" in ok_but_huge.reason


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
    "value",
    [
        "Sat, 28 Nov 2026 10:01:30 GMT",  # IMF-fixdate
        "Saturday, 28-Nov-26 10:01:30 GMT",  # RFC 850
        "Sat Nov 28 10:01:30 2026",  # asctime: no zone, GMT by definition
        "Sat, 28 Nov 2026 10:01:30 -0000",  # parsedate leaves this one naive too
    ],
)
def test_retry_after_accepts_every_http_date_form_as_gmt(value: str):
    # RFC 9110 5.6.7: a recipient MUST accept all three forms, and an HTTP-date is always GMT.
    assert parse_retry_after(value, now=NOW) == 90


@pytest.mark.parametrize(
    "value",
    [
        "\u00b2",  # superscript two: str.isdigit() says yes, float() says no
        "\u0661\u0662\u0660",  # Arabic-Indic 120
        "1.5",
        "-5",
        "9" * 400,  # float() makes it infinity
        "Sat, 28 Nov 99999999999 10:01:30 GMT",  # parsedate overflows
        "Sat, 31 Nov 2026 10:01:30 GMT",
    ],
)
def test_an_unusable_retry_after_is_no_retry_after(value: str):
    assert parse_retry_after(value, now=NOW) is None
    # A throttle whose header is unusable is still a throttle: the default wait, not a crash.
    assert map_reply(429, value, b"", now=NOW) == Retry(
        after=5.0, reason="supplier answered HTTP 429: "
    )


async def test_an_asctime_retry_after_is_honoured_over_the_wire(tmp_path: Path):
    async def throttle(_: web.Request) -> web.Response:
        return web.json_response(
            {"error": "slow down"}, status=429, headers={"Retry-After": "Sat Nov 28 10:01:30 2026"}
        )

    app = web.Application()
    app.router.add_post("/", throttle)
    async with serve(app) as url:
        connector = HttpForwardConnector(context(tmp_path, url=f"{url}/"))
        try:
            outcome = await handle(connector, view())
        finally:
            await connector.aclose()
    assert isinstance(outcome, Retry) and outcome.after == 90


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


async def test_the_hubs_own_headers_win_whatever_the_case(tmp_path: Path, supplier: Supplier):
    # Were both `idempotency-key` and `Idempotency-Key` sent, the example back office would read
    # the option's and refuse it (400, a permanent failure).
    options = {"Authorization": "Bearer t", "idempotency-key": "nope", "content-type": "text/x"}
    connector = HttpForwardConnector(
        context(tmp_path, url=supplier.transactions_url, headers=options)
    )
    try:
        outcome = await handle(connector, view())
    finally:
        await connector.aclose()
    assert isinstance(outcome, Response), outcome
    assert (await supplier.stats())["applied"] == 1


async def test_each_hub_header_is_sent_once(tmp_path: Path):
    seen: list[list[tuple[str, str]]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(list(request.headers.items()))
        return web.json_response({"outcome": "response", "body": "<Ok/>"})

    app = web.Application()
    app.router.add_post("/", echo)
    headers = {"IDEMPOTENCY-KEY": "x", "accept": "text/html", "X-Council": "E07000123"}
    async with serve(app) as url:
        connector = HttpForwardConnector(context(tmp_path, url=f"{url}/", headers=headers))
        try:
            tx = view()
            assert await handle(connector, tx) == Response(b"<Ok/>")
        finally:
            await connector.aclose()
    [sent] = seen
    named = {name.lower(): [v for n, v in sent if n.lower() == name.lower()] for name, _ in sent}
    assert named["idempotency-key"] == [tx.correlation_id]
    assert named["accept"] == ["application/json"]
    assert named["content-type"] == ["application/json; charset=utf-8"]
    assert named["x-council"] == ["E07000123"]


# -- TLS: ca_file adds to the system's trust store -------------------------------------------


@dataclasses.dataclass
class Pki:
    """A certificate authority made for the test, and server certificates for 127.0.0.1."""

    name: str
    key: ec.EllipticCurvePrivateKey = dataclasses.field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        public = self.key.public_key()
        self.cert = (
            self._builder(subject, subject, public)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def _builder(
        self, subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        )

    def pem(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def server_context(self, directory: Path) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        cert = (
            self._builder(subject, self.cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_file = directory / f"{self.name}-server.pem"
        key_file = directory / f"{self.name}-server.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(cert_file, key_file)
        return server


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@pytest.fixture
def trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Pki, Pki]:
    """(a "public" CA the system trusts, a supplier's private CA it does not)."""
    public, private = Pki("public-root"), Pki("supplier-root")
    # OpenSSL reads these when a context loads the default certificates: the system store here.
    monkeypatch.setenv("SSL_CERT_FILE", str(public.pem(tmp_path / "system.pem")))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-such-dir"))
    return public, private


@pytest.mark.parametrize("signer", ["public", "private"])
async def test_ca_file_adds_to_the_system_trust_store(
    tmp_path: Path, trust: tuple[Pki, Pki], signer: str
):
    # README: ca_file is an optional *extra* bundle. A back office whose certificate chains to a
    # public CA stays reachable with it set; one under the supplier's own CA becomes reachable.
    public, private = trust
    issuer = public if signer == "public" else private
    ca_file = private.pem(tmp_path / "supplier-ca.pem")
    async with serve(make_app(), ssl_context=issuer.server_context(tmp_path)) as url:
        assert url.startswith("https://")
        connector = HttpForwardConnector(
            context(tmp_path, url=f"{url}/transactions", ca_file=str(ca_file))
        )
        try:
            outcome = await handle(connector, view())
        finally:
            await connector.aclose()
    assert isinstance(outcome, Response), outcome


async def test_a_back_office_no_trusted_ca_vouches_for_is_refused(
    tmp_path: Path, trust: tuple[Pki, Pki]
):
    _, private = trust
    stranger = Pki("stranger-root")
    ca_file = private.pem(tmp_path / "supplier-ca.pem")
    async with serve(make_app(), ssl_context=stranger.server_context(tmp_path)) as url:
        connector = HttpForwardConnector(
            context(tmp_path, url=f"{url}/transactions", ca_file=str(ca_file))
        )
        try:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await handle(connector, view())
        finally:
            await connector.aclose()


@asynccontextmanager
async def serve(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """app on a free loopback port (over TLS with ssl_context); yields its base URL."""
    # tests/serving.py's serving() passes its options to the runner, not the site, so no TLS there.
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        scheme = "https" if ssl_context is not None else "http"
        yield f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_supplier_shutdown_releases_hanging_handlers(supplier: Supplier):
    # The fixture's cleanup must not wait out hang_seconds: measured here on a hung request.
    await supplier.fault("hang")
    task = asyncio.ensure_future(supplier.session.post(supplier.transactions_url, data=b"{}"))
    await asyncio.sleep(0.2)
    supplier.app[STATE].release.set()
    async with await task as reply:
        assert reply.status == 503
