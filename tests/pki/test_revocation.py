"""Revocation: the CRL and the OCSP responder, over real HTTP and checked by openssl."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from gateway.clock import MovableClock, utcnow
from gateway.identity.revocation import RevocationChecker
from gateway.pki import Pki, PkiError
from gateway.web.pki_views import add_pki_routes
from tests.pki.conftest import Run
from tests.serving import serving

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass


def _request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _check_signed(pki: Pki, der: bytes) -> ocsp.OCSPResponse:
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificates == [pki.ocsp_responder]
    public = pki.ocsp_responder.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    algorithm = response.signature_hash_algorithm
    assert algorithm is not None
    public.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
    return response


def test_revoke_lists_the_serial_with_its_reason(pki: Pki, run: Run, tmp_path: Path) -> None:
    keep = pki.issue("keep", common_name="Keep")
    gone = pki.issue("gone", common_name="Gone")
    entry = pki.revoke(gone.serial, "keyCompromise")
    assert entry.reason == "key_compromise" and entry.revoked_at is not None
    assert pki.status(gone.serial) == ("revoked", entry.revoked_at, x509.ReasonFlags.key_compromise)
    assert pki.status(keep.serial).status == "good"
    assert pki.status(12345).status == "unknown"

    now = utcnow()
    der = pki.crl(now, validity=timedelta(minutes=30))
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(pki.citizen_ca.public_key())  # type: ignore[arg-type]
    assert crl.next_update_utc is not None and crl.last_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(minutes=30)
    revoked = crl.get_revoked_certificate_by_serial_number(gone.serial)
    assert revoked is not None
    assert revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.key_compromise
    )
    assert crl.get_revoked_certificate_by_serial_number(keep.serial) is None

    path = tmp_path / "crl.der"
    path.write_bytes(der)
    text = run("openssl", "crl", "-inform", "DER", "-in", path, "-noout", "-text")
    assert text.returncode == 0, text.stderr
    assert format(gone.serial, "X") in text.stdout.replace(":", "").upper()
    assert "Key Compromise" in text.stdout
    verify = run(
        "openssl", "crl", "-inform", "DER", "-in", path, "-noout", "-CAfile", pki.ca_bundle_path
    )
    assert verify.returncode == 0 and "verify OK" in verify.stderr + verify.stdout


def test_revoke_errors_are_clear(pki: Pki) -> None:
    issued = pki.issue("erin", common_name="Erin")
    with pytest.raises(PkiError, match="unknown revocation reason"):
        pki.revoke(issued.serial, "bored")
    with pytest.raises(PkiError, match="no certificate with serial"):
        pki.revoke(0xDEADBEEF)
    pki.revoke(issued.serial)
    with pytest.raises(PkiError, match="already revoked"):
        pki.revoke(issued.serial)
    server = next(e for e in pki.entries() if e.kind == "server")
    with pytest.raises(PkiError, match="not covered"):
        pki.revoke(server.serial)


async def test_crl_over_http_with_content_type_and_fresh_after_revoke(
    pki: Pki, pki_url: str
) -> None:
    issued = pki.issue("frank", common_name="Frank")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{pki_url}/pki/crl") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/pkix-crl"
            assert len(list(x509.load_der_x509_crl(await resp.read()))) == 0
        pki.revoke(issued.serial, "cessation_of_operation")
        async with session.get(f"{pki_url}/pki/crl") as resp:
            crl = x509.load_der_x509_crl(await resp.read())
            assert crl.get_revoked_certificate_by_serial_number(issued.serial) is not None
        for name, cert in (("root-ca.pem", pki.root), ("citizen-ca.pem", pki.citizen_ca)):
            async with session.get(f"{pki_url}/pki/{name}") as resp:
                assert resp.headers["Content-Type"] == "application/x-pem-file"
                assert x509.load_pem_x509_certificate(await resp.read()) == cert
        async with session.get(f"{pki_url}/pki/ca-bundle.pem") as resp:
            assert x509.load_pem_x509_certificates(await resp.read()) == pki.trust_anchors


async def test_openssl_ocsp_good_then_revoked(pki: Pki, pki_url: str, run: Run) -> None:
    issued = pki.issue("grace", common_name="Grace")

    async def ask(*trust: str | Path) -> str:
        result = await asyncio.to_thread(
            run, "openssl", "ocsp", "-issuer", pki.citizen_ca_path, "-cert", issued.cert_path,
            "-url", f"{pki_url}/pki/ocsp", *trust,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "Response verify OK" in result.stderr + result.stdout
        return result.stdout

    assert f"{issued.cert_path}: good" in await ask("-VAfile", pki.ocsp_responder_path)
    assert f"{issued.cert_path}: good" in await ask("-CAfile", pki.ca_bundle_path)
    pki.revoke(issued.serial, "affiliation_changed")
    out = await ask("-CAfile", pki.ca_bundle_path)
    assert f"{issued.cert_path}: revoked" in out
    assert "Reason: affiliationChanged" in out


async def test_ocsp_get_form_and_nonce(pki: Pki, pki_url: str) -> None:
    issued = pki.issue("heidi", common_name="Heidi")
    nonce = os.urandom(16)
    encoded = quote(
        base64.b64encode(_request(issued.cert, pki.citizen_ca, nonce)).decode(), safe=""
    )
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{pki_url}/pki/ocsp/{encoded}") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/ocsp-response"
            response = _check_signed(pki, await resp.read())
    assert response.certificate_status is ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == issued.serial
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert response.next_update_utc is not None and response.this_update_utc is not None
    assert response.next_update_utc - response.this_update_utc == timedelta(hours=1)


async def test_ocsp_unknown_serial_and_foreign_issuer(
    pki: Pki, pki_url: str, tmp_path: Path
) -> None:
    other = Pki.init(tmp_path / "other", base_url="http://x.invalid")
    stranger = other.issue("mallory", common_name="Mallory")
    server = x509.load_pem_x509_certificate(pki.server_cert_path.read_bytes())
    # Same issuer name and key as ours, unknown serial: "unknown".
    unknown = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(
            _request_hashes(pki)[0], _request_hashes(pki)[1], 4242, hashes.SHA1()
        )
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    async with aiohttp.ClientSession() as session:

        async def post(body: bytes) -> bytes:
            async with session.post(f"{pki_url}/pki/ocsp", data=body) as resp:
                assert resp.headers["Content-Type"] == "application/ocsp-response"
                return await resp.read()

        assert _check_signed(pki, await post(unknown)).certificate_status is (
            ocsp.OCSPCertStatus.UNKNOWN
        )
        for foreign in (_request(stranger.cert, other.citizen_ca), _request(server, pki.root)):
            status = ocsp.load_der_ocsp_response(await post(foreign)).response_status
            assert status is ocsp.OCSPResponseStatus.UNAUTHORIZED
        for junk in (b"", b"not DER at all", b"\x30\x03\x02\x01\x01"):
            status = ocsp.load_der_ocsp_response(await post(junk)).response_status
            assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        async with session.get(f"{pki_url}/pki/ocsp/%%%not-base64") as resp:
            status = ocsp.load_der_ocsp_response(await resp.read()).response_status
            assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def _request_hashes(pki: Pki) -> tuple[bytes, bytes]:
    """SHA-1 issuer name and key hashes of the citizen CA, as a client computes them."""
    probe = ocsp.load_der_ocsp_request(_request(pki.ocsp_responder, pki.citizen_ca))
    return probe.issuer_name_hash, probe.issuer_key_hash


def _tlv(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 128:
        return bytes([tag, length]) + content
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _request_for_serial(pki: Pki, serial: bytes) -> bytes:
    """A one-CertID request for the citizen CA whose serial INTEGER holds these content bytes."""
    # cryptography will not build a negative serial, but parses one: the DER is put together here.
    name_hash, key_hash = _request_hashes(pki)
    sha1 = _tlv(0x30, _tlv(0x06, bytes.fromhex("2b0e03021a")) + b"\x05\x00")
    cert_id = _tlv(0x30, sha1 + _tlv(0x04, name_hash) + _tlv(0x04, key_hash) + _tlv(0x02, serial))
    return _tlv(0x30, _tlv(0x30, _tlv(0x30, _tlv(0x30, cert_id))))


async def test_ocsp_requests_no_answer_can_carry_are_malformed(pki: Pki, pki_url: str) -> None:
    issued = pki.issue("ivy", common_name="Ivy")
    negative = _request_for_serial(pki, b"\xff\x01")  # -255
    assert ocsp.load_der_ocsp_request(negative).serial_number == -255
    malformed = [
        negative,
        _request_for_serial(pki, b"\x80"),
        # RFC 8954: a nonce is 1 to 32 octets.
        _request(issued.cert, pki.citizen_ca, nonce=b""),
        _request(issued.cert, pki.citizen_ca, nonce=os.urandom(33)),
    ]
    async with aiohttp.ClientSession() as session:
        for body in malformed:
            async with session.post(f"{pki_url}/pki/ocsp", data=body) as resp:
                assert resp.status == 200
                status = ocsp.load_der_ocsp_response(await resp.read()).response_status
                assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        encoded = quote(base64.b64encode(negative).decode(), safe="")
        async with session.get(f"{pki_url}/pki/ocsp/{encoded}") as resp:
            assert resp.status == 200
            status = ocsp.load_der_ocsp_response(await resp.read()).response_status
            assert status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        # The largest nonce allowed, and a serial far longer than any issued, are answered.
        for body in (
            _request(issued.cert, pki.citizen_ca, nonce=os.urandom(32)),
            _request_for_serial(pki, b"\x01" * 40),
        ):
            async with session.post(f"{pki_url}/pki/ocsp", data=body) as resp:
                _check_signed(pki, await resp.read())


async def test_the_crl_and_ocsp_answers_are_dated_by_the_hubs_clock(pki: Pki) -> None:
    # The hub checks these answers by its own (movable) clock: dated by real time, they would
    # look stale once it is moved on an hour, and every certificate would be refused.
    clock = MovableClock()
    clock.advance(timedelta(hours=2))
    issued = pki.issue("jack", common_name="Jack")
    app = web.Application()
    add_pki_routes(app, lambda: pki, clock)
    async with serving(app) as url, aiohttp.ClientSession() as session:

        async def crl_issued() -> x509.CertificateRevocationList:
            async with session.get(f"{url}/pki/crl") as resp:
                return x509.load_der_x509_crl(await resp.read())

        first = await crl_issued()
        assert abs(first.last_update_utc - clock()) < timedelta(minutes=1)
        async with session.post(
            f"{url}/pki/ocsp", data=_request(issued.cert, pki.citizen_ca)
        ) as resp:
            answer = _check_signed(pki, await resp.read())
        assert abs(answer.this_update_utc - clock()) < timedelta(minutes=1)
        # With no revocation since, a CRL is reused for a minute of the hub's time, no longer.
        assert await crl_issued() == first
        clock.advance(timedelta(hours=2))
        later = await crl_issued()
        assert abs(later.last_update_utc - clock()) < timedelta(minutes=1)


class _HeldResponder:
    """The hub's OCSP and CRL endpoints, holding back the first answer of one kind."""

    # That answer is made at once (before the test revokes anything) and sent only once
    # `release` is set: an answer in flight while the certificate is revoked.

    def __init__(self, held: str, *, ocsp_down: bool) -> None:
        self.held = held
        self.ocsp_down = ocsp_down
        self.made = asyncio.Event()
        self.release = asyncio.Event()
        self.ocsp_asked: asyncio.Queue[None] = asyncio.Queue()
        self.pki: Pki | None = None

    async def _hold(self, kind: str) -> None:
        if kind == self.held and not self.made.is_set():
            self.made.set()
            await self.release.wait()

    async def ocsp(self, request: web.Request) -> web.Response:
        assert self.pki is not None
        self.ocsp_asked.put_nowait(None)
        if self.ocsp_down:
            return web.Response(status=503)
        der = self.pki.ocsp_response(await request.read(), utcnow())
        await self._hold("ocsp")
        return web.Response(body=der, content_type="application/ocsp-response")

    async def crl(self, request: web.Request) -> web.Response:
        assert self.pki is not None
        der = self.pki.crl(utcnow())
        await self._hold("crl")
        return web.Response(body=der, content_type="application/pkix-crl")


@asynccontextmanager
async def _held(
    directory: Path, held: str, *, ocsp_down: bool = False
) -> AsyncIterator[tuple[_HeldResponder, Pki, RevocationChecker]]:
    """A PKI served by a _HeldResponder, and a checker that forgets when its index changes."""
    responder = _HeldResponder(held, ocsp_down=ocsp_down)
    app = web.Application()
    app.router.add_post("/pki/ocsp", responder.ocsp)
    app.router.add_get("/pki/crl", responder.crl)
    async with serving(app) as url:
        pki = responder.pki = Pki.init(directory, base_url=url)
        checker = RevocationChecker(revocations_changed=pki.index_version)
        try:
            yield responder, pki, checker
        finally:
            responder.release.set()
            await checker.aclose()


async def test_an_ocsp_answer_in_flight_across_a_revocation_is_not_kept(tmp_path: Path) -> None:
    async with _held(tmp_path, "ocsp") as (responder, pki, checker):
        ivan = pki.issue("ivan", common_name="Ivan")
        asked_before = asyncio.create_task(checker.status(ivan.cert, pki.citizen_ca))
        await responder.made.wait()
        pki.revoke(ivan.serial, "key_compromise")
        assert not (await checker.status(ivan.cert, pki.citizen_ca)).good
        responder.release.set()
        # Its caller asked before the revocation; the answer must not be kept for later ones.
        assert (await asked_before).good
        later = await checker.status(ivan.cert, pki.citizen_ca)
        assert not later.good and "revoked (keyCompromise)" in later.reason


async def test_a_crl_fetched_before_a_revocation_is_not_reused_after_it(tmp_path: Path) -> None:
    async with _held(tmp_path, "crl", ocsp_down=True) as (responder, pki, checker):
        ivan = pki.issue("ivan", common_name="Ivan")
        asked_before = asyncio.create_task(checker.status(ivan.cert, pki.citizen_ca))
        await responder.made.wait()
        pki.revoke(ivan.serial, "key_compromise")
        asked_after = asyncio.create_task(checker.status(ivan.cert, pki.citizen_ca))
        # Both have asked OCSP (in vain), so both are past their check for a revocation: the
        # second is to take the CRL after the first, which fetched it before the revocation.
        for _ in range(2):
            await responder.ocsp_asked.get()
        responder.release.set()
        assert (await asked_before).good
        refused = await asked_after
        assert not refused.good and refused.source == "crl", refused
        assert "revoked (keyCompromise)" in refused.reason
        assert not (await checker.status(ivan.cert, pki.citizen_ca)).good
