"""Client certificate validation against the hub's own anchors, with reasons a person can act on."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from gateway.clock import utcnow
from gateway.identity.revocation import RevocationChecker, RevocationStatus
from gateway.store.engine import Database


class CertificateRefused(Exception):
    """A certificate the hub will not accept; reason says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ValidatedCertificate:
    """A leaf that chains to the hub's anchors, is in date, fit for clientAuth and not revoked."""

    certificate: x509.Certificate
    fingerprint: str  # sha256 hex of the DER: the CitizenCertificate key
    serial: str  # hex
    subject: str  # RFC 4514
    not_after: datetime
    issuer: x509.Certificate
    # How revocation was settled; under fail_open, reason records what could not be checked.
    revocation: RevocationStatus


def fingerprint(cert_der: bytes) -> str:
    """SHA-256 hex of a certificate's DER, as CitizenCertificate rows are keyed."""
    return hashlib.sha256(cert_der).hexdigest()


def _fmt(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_usage(cert: x509.Certificate) -> None:
    """KeyUsage digitalSignature and EKU clientAuth, refused with a precise reason."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateRefused("certificate has no key usage (digitalSignature needed)") from None
    if not ku.digital_signature:
        raise CertificateRefused("certificate key usage does not allow digitalSignature")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateRefused(
            "certificate has no extended key usage (clientAuth needed)"
        ) from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise CertificateRefused("certificate extended key usage does not include clientAuth")


@dataclass(frozen=True, slots=True)
class _Chained:
    """A leaf whose path to an anchor was built at `at`; it holds until the chain's first expiry."""

    leaf: x509.Certificate
    issuer: x509.Certificate
    at: datetime
    until: datetime

    def holds(self, now: datetime) -> bool:
        # Before `at` (a clock moved back) a certificate of the chain may not yet be valid.
        return self.at <= now < self.until


# Building the path costs ~0.2 ms of the event loop per message signed or sent over mutual TLS,
# and gives the same answer until a certificate of the chain expires: it is kept that long.
# Revocation is asked every time (gateway/identity/revocation.py keeps its own answers).
CHAIN_CACHE_SIZE = 1024


class CertificateValidator:
    """Validates citizens' certificates: chain to our anchors only, dates, usage, revocation."""

    def __init__(
        self,
        anchors: Sequence[x509.Certificate],
        revocation: RevocationChecker,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._roots = [a for a in anchors if _self_signed(a)]
        if not self._roots:
            raise ValueError("CertificateValidator needs at least one self-signed root anchor")
        # Intermediates the hub offers (the citizen CA) help build chains but are not roots:
        # trust still has to reach a self-signed anchor.
        self._intermediates = [a for a in anchors if not _self_signed(a)]
        self._store = Store(self._roots)
        self._revocation = revocation
        self._clock = clock
        self._chains: OrderedDict[tuple[bytes, ...], _Chained] = OrderedDict()

    async def validate(
        self, cert_der: bytes, untrusted: Sequence[x509.Certificate] = ()
    ) -> ValidatedCertificate:
        """The validated leaf, or CertificateRefused with the reason."""
        now = self._clock()
        key = (cert_der, *(c.public_bytes(serialization.Encoding.DER) for c in untrusted))
        chained = self._chains.get(key)
        if chained is not None and chained.holds(now):
            self._chains.move_to_end(key)
        else:
            chained = self._chain(cert_der, untrusted, now)
            self._chains[key] = chained
            if len(self._chains) > CHAIN_CACHE_SIZE:
                self._chains.popitem(last=False)
        leaf, issuer = chained.leaf, chained.issuer
        status = await self._revocation.status(leaf, issuer)
        if not status.good:
            raise CertificateRefused(status.reason)
        return ValidatedCertificate(
            certificate=leaf,
            fingerprint=fingerprint(cert_der),
            serial=format(leaf.serial_number, "x"),
            subject=leaf.subject.rfc4514_string(),
            not_after=leaf.not_valid_after_utc,
            issuer=issuer,
            revocation=status,
        )

    def _chain(
        self, cert_der: bytes, untrusted: Sequence[x509.Certificate], now: datetime
    ) -> _Chained:
        """The leaf checked for dates and usage, and its path to one of our anchors built."""
        try:
            leaf = x509.load_der_x509_certificate(cert_der)
        except ValueError:
            raise CertificateRefused("not a valid X.509 certificate") from None
        if leaf.not_valid_after_utc < now:
            raise CertificateRefused(f"certificate expired on {_fmt(leaf.not_valid_after_utc)}")
        if leaf.not_valid_before_utc > now:
            raise CertificateRefused(
                f"certificate not valid until {_fmt(leaf.not_valid_before_utc)}"
            )
        _check_usage(leaf)
        verifier = PolicyBuilder().store(self._store).time(now).build_client_verifier()
        try:
            verified = verifier.verify(leaf, [*self._intermediates, *untrusted])
        except VerificationError as exc:
            # "candidates exhausted" (no path to an anchor) tells a citizen nothing; other
            # policy failures (a missing subjectAltName, say) are worth passing on as they are.
            if "candidates exhausted" not in str(exc):
                raise CertificateRefused(f"certificate failed chain validation: {exc}") from None
            raise CertificateRefused(
                f"certificate issued by {leaf.issuer.rfc4514_string()} does not chain to a "
                "CA this hub trusts"
            ) from None
        issuer = verified.chain[1] if len(verified.chain) > 1 else verified.chain[0]
        until = min(c.not_valid_after_utc for c in verified.chain)
        return _Chained(leaf, issuer, now, until)


async def registered_user(db: Database, cert_fingerprint: str) -> str | None:
    """The Gateway user a certificate is registered to, if any."""
    # Every certificate-authenticated message asks: the hot path, off the ORM.
    if db.direct is not None:
        row = await db.direct.read(
            lambda conn: conn.execute(_REGISTERED.format("?"), (cert_fingerprint,)).fetchone()
        )
        return None if row is None else str(row[0])
    user_id = await db.pg_lane.read(
        lambda conn: conn.fetchval(_REGISTERED.format("$1"), cert_fingerprint)
    )
    return None if user_id is None else str(user_id)


_REGISTERED = "SELECT user_id FROM citizen_certificates WHERE fingerprint = {}"  # its placeholder
