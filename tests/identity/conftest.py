"""A test PKI (root → citizen CA → leaves, delegated OCSP signer) served over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.identity import citizens
from gateway.identity.certificates import CertificateValidator, fingerprint
from gateway.identity.revocation import RevocationChecker
from gateway.store.engine import Database
from gateway.store.migrate import upgrade_async
from gateway.store.models import CitizenCertificate
from tests.conftest import free_port
from tests.serving import serving


class Clock:
    """A settable clock shared by the hub code and the test PKI."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str, clock: Clock, parent: Issued | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name = parent.cert.subject if parent else _name(cn)
    signing_key = parent.key if parent else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(clock() - timedelta(days=30))
        .not_valid_after(clock() + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if parent:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()), False
        )
    return Issued(builder.sign(signing_key, hashes.SHA256()), key)


def make_leaf(
    issuer: Issued,
    *,
    email: str = "alice@example.org",
    not_before: datetime,
    not_after: datetime,
    eku: list[x509.ObjectIdentifier] | None = None,
    ocsp_url: str | None = None,
    crl_url: str | None = None,
    digital_signature: bool = True,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(email))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=not digital_signature,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(eku if eku is not None else [ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    )
    if ocsp_url:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.oid.AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(ocsp_url),
                    )
                ]
            ),
            critical=False,
        )
    if crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(crl_url)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)


def make_ocsp_signer(issuer: Issued, clock: Clock) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Citizen CA OCSP responder"))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(clock() - timedelta(days=1))
        .not_valid_after(clock() + timedelta(days=365))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    return Issued(cert, key)


@dataclass
class Pki:
    """The CA hierarchy plus an HTTP server answering OCSP and serving the CRL."""

    clock: Clock
    root: Issued
    ca: Issued
    responder: Issued
    base_url: str = ""
    revoked: dict[int, tuple[datetime, x509.ReasonFlags]] = field(default_factory=dict)
    ocsp_mode: str = "ok"  # ok | error | stale
    crl_mode: str = "ok"  # ok | error | stale
    ocsp_validity: timedelta = timedelta(hours=1)
    crl_validity: timedelta = timedelta(hours=6)
    ocsp_signer: Issued | None = None  # None: the delegated responder
    ocsp_requests: int = 0
    crl_requests: int = 0

    @property
    def ocsp_url(self) -> str:
        return f"{self.base_url}/pki/ocsp"

    @property
    def crl_url(self) -> str:
        return f"{self.base_url}/pki/crl"

    def leaf(
        self,
        *,
        email: str = "alice@example.org",
        not_before: timedelta = timedelta(days=-1),
        not_after: timedelta = timedelta(days=365),
        issuer: Issued | None = None,
        ocsp_url: str | None = "default",
        crl_url: str | None = "default",
        eku: list[x509.ObjectIdentifier] | None = None,
        digital_signature: bool = True,
    ) -> Issued:
        now = self.clock()
        return make_leaf(
            issuer or self.ca,
            email=email,
            not_before=now + not_before,
            not_after=now + not_after,
            eku=eku,
            ocsp_url=self.ocsp_url if ocsp_url == "default" else ocsp_url,
            crl_url=self.crl_url if crl_url == "default" else crl_url,
            digital_signature=digital_signature,
        )

    def revoke(self, serial: int, reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise):
        self.revoked[serial] = (self.clock() - timedelta(minutes=1), reason)

    async def handle_ocsp(self, request: web.Request) -> web.Response:
        self.ocsp_requests += 1
        if self.ocsp_mode == "error":
            return web.Response(status=503)
        req = ocsp.load_der_ocsp_request(await request.read())
        now = self.clock()
        this_update = now - timedelta(minutes=1)
        next_update = now + self.ocsp_validity
        if self.ocsp_mode == "stale":
            this_update, next_update = now - timedelta(hours=2), now - timedelta(hours=1)
        revoked = self.revoked.get(req.serial_number)
        signer = self.ocsp_signer or self.responder
        resp = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                req.issuer_name_hash,
                req.issuer_key_hash,
                req.serial_number,
                req.hash_algorithm,
                ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
                this_update,
                next_update,
                revoked[0] if revoked else None,
                revoked[1] if revoked else None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
            .certificates([signer.cert])
            .sign(signer.key, hashes.SHA256())
        )
        return web.Response(
            body=resp.public_bytes(serialization.Encoding.DER),
            content_type="application/ocsp-response",
        )

    async def handle_crl(self, request: web.Request) -> web.Response:
        self.crl_requests += 1
        if self.crl_mode == "error":
            return web.Response(status=503)
        now = self.clock()
        last, nxt = now - timedelta(minutes=1), now + self.crl_validity
        if self.crl_mode == "stale":
            last, nxt = now - timedelta(days=2), now - timedelta(days=1)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca.cert.subject)
            .last_update(last)
            .next_update(nxt)
        )
        for serial, (when, reason) in self.revoked.items():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(when)
                .add_extension(x509.CRLReason(reason), critical=False)
                .build()
            )
        crl = builder.sign(self.ca.key, hashes.SHA256())
        return web.Response(
            body=crl.public_bytes(serialization.Encoding.DER), content_type="application/pkix-crl"
        )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def pki(clock: Clock) -> AsyncIterator[Pki]:
    root = make_ca("Test Gateway Root CA", clock)
    ca = make_ca("Test Citizen CA", clock, root)
    pki = Pki(clock, root, ca, make_ocsp_signer(ca, clock))
    app = web.Application()
    app.router.add_post("/pki/ocsp", pki.handle_ocsp)
    app.router.add_get("/pki/crl", pki.handle_crl)
    async with serving(app, access_log=None) as pki.base_url:
        yield pki


@pytest.fixture
def dead_url() -> str:
    """An address nothing listens on: an unreachable responder."""
    return f"http://127.0.0.1:{free_port()}/pki/ocsp"


CheckerFactory = Callable[..., RevocationChecker]


@pytest.fixture
async def make_checker(clock: Clock) -> AsyncIterator[CheckerFactory]:
    made: list[RevocationChecker] = []

    def make(*, fail_open: bool = False, timeout: float = 2.0) -> RevocationChecker:
        checker = RevocationChecker(timeout=timeout, fail_open=fail_open, clock=clock)
        made.append(checker)
        return checker

    yield make
    for checker in made:
        await checker.aclose()


@pytest.fixture
def make_validator(pki: Pki, make_checker: CheckerFactory, clock: Clock):
    def make(*, fail_open: bool = False) -> CertificateValidator:
        return CertificateValidator(
            [pki.root.cert, pki.ca.cert], make_checker(fail_open=fail_open), clock
        )

    return make


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    await upgrade_async(url)
    database = Database.open(url)
    yield database
    await database.aclose()


async def register_certificate(db: Database, user_id: str, issued: Issued) -> None:
    """Create the citizen (if new) and register the certificate to them."""
    if await citizens.find(db, user_id) is None:
        await citizens.register(
            db, user_id, "correct horse battery", enrol=[("LA-CTAX-VIEW", "Council", {"K": "1"})]
        )
    async with db.transaction() as session:
        session.add(
            CitizenCertificate(
                fingerprint=fingerprint(issued.der),
                user_id=user_id,
                serial=format(issued.cert.serial_number, "x"),
                subject=issued.cert.subject.rfc4514_string(),
                not_after=issued.cert.not_valid_after_utc,
                created_at=datetime.now(UTC),
            )
        )
