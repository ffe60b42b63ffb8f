"""Client certificate validation against the hub's own anchors, with reasons a person can act on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from sqlalchemy import select

from gateway.clock import utcnow
from gateway.identity.revocation import RevocationChecker, RevocationStatus
from gateway.store.engine import Database
from gateway.store.models import CitizenCertificate


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

    async def validate(
        self, cert_der: bytes, untrusted: Sequence[x509.Certificate] = ()
    ) -> ValidatedCertificate:
        """The validated leaf, or CertificateRefused with the reason."""
        try:
            leaf = x509.load_der_x509_certificate(cert_der)
        except ValueError:
            raise CertificateRefused("not a valid X.509 certificate") from None
        now = self._clock()
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
        status = await self._revocation.status(leaf, issuer)
        if not status.good:
            raise CertificateRefused(status.reason)
        der = leaf.public_bytes(serialization.Encoding.DER)
        return ValidatedCertificate(
            certificate=leaf,
            fingerprint=fingerprint(der),
            serial=format(leaf.serial_number, "x"),
            subject=leaf.subject.rfc4514_string(),
            not_after=leaf.not_valid_after_utc,
            issuer=issuer,
            revocation=status,
        )


async def registered_user(db: Database, cert_fingerprint: str) -> str | None:
    """The Gateway user a certificate is registered to, if any."""
    if db.direct is not None:  # every certificate-authenticated message asks: the hot path
        row = await db.direct.read(
            lambda conn: conn.execute(
                "SELECT user_id FROM citizen_certificates WHERE fingerprint = ?",
                (cert_fingerprint,),
            ).fetchone()
        )
        return None if row is None else str(row[0])
    async with db.read() as session:
        user_id: str | None = await session.scalar(
            select(CitizenCertificate.user_id).where(
                CitizenCertificate.fingerprint == cert_fingerprint
            )
        )
        return user_id
