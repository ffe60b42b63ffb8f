"""Registration: Individuals, Organisations and Agents, with a password, a certificate or both.

The hub generates the User ID. Passwords are kept only as scrypt hashes (memory-hard), of the
clear form and of the GovTalk MD5 form (a verifier that is not the password). Certificates are
registered by the SHA-256 fingerprint of their DER; they are checked against the CA and for
revocation when used to authenticate, not here.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.clock import utcnow
from gateway.errors import ProblemError
from gateway.identity.passwords import hash_password
from gateway.store.engine import Database
from gateway.store.models import AGENT, INDIVIDUAL, ORGANISATION, Citizen, CitizenCertificate

KINDS = (INDIVIDUAL, ORGANISATION, AGENT)
USER_ID_LENGTH = 12
USER_ID_ALPHABET = string.ascii_uppercase + string.digits
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
MAX_DISPLAY_NAME = 128

Clock = Callable[[], datetime]


class RegistrationError(ProblemError):
    """A registration the hub refuses; the message says why (shown to the user)."""

    status = 400
    title = "Registration refused"

    def __init__(self, detail: str) -> None:
        super().__init__(type(self).status, type(self).title, detail)


class DuplicateCertificate(RegistrationError):
    """The certificate is already registered (to this or another user)."""

    status = 409
    title = "Conflict"


class UnknownUser(RegistrationError):
    status = 404


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    fingerprint: str  # sha256 of the DER, lower-case hex
    serial: str  # lower-case hex
    subject: str  # RFC 4514
    not_after: datetime


def new_user_id() -> str:
    """A Gateway User ID: 12 random upper-case alphanumerics, e.g. 8CK3SA26U1G4."""
    return "".join(secrets.choice(USER_ID_ALPHABET) for _ in range(USER_ID_LENGTH))


def certificate_fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def read_certificate(pem: bytes | str) -> CertificateInfo:
    """Parse one PEM certificate (not validated against any CA here)."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise RegistrationError(
            f"the certificate is not a readable PEM X.509 certificate: {exc}"
        ) from None
    der = cert.public_bytes(Encoding.DER)
    return CertificateInfo(
        fingerprint=certificate_fingerprint(der),
        serial=format(cert.serial_number, "x"),
        subject=cert.subject.rfc4514_string()[:512],
        not_after=cert.not_valid_after_utc.astimezone(UTC),
    )


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise RegistrationError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise RegistrationError(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")


async def register(
    db: Database,
    *,
    kind: str = INDIVIDUAL,
    display_name: str = "",
    password: str | None = None,
    certificate_pem: bytes | str | None = None,
    clock: Clock = utcnow,
) -> str:
    """Register a user with a password, a certificate or both; returns the new User ID."""
    if kind not in KINDS:
        raise RegistrationError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    display_name = " ".join(display_name.split())
    if len(display_name) > MAX_DISPLAY_NAME:
        raise RegistrationError(f"display_name must be at most {MAX_DISPLAY_NAME} characters")
    if password is None and certificate_pem is None:
        raise RegistrationError("give a password, a certificate or both")
    hashes: tuple[str | None, str | None] = (None, None)
    if password is not None:
        check_password(password)
        # scrypt is deliberately slow: keep it off the event loop.
        hashes = await asyncio.to_thread(hash_password, password)
    cert = read_certificate(certificate_pem) if certificate_pem is not None else None
    now = clock()
    for _ in range(5):
        user_id = new_user_id()
        try:
            async with db.transaction() as session:
                if cert is not None:
                    await _refuse_duplicate(session, cert)
                if await session.get(Citizen, user_id) is not None:
                    continue  # 36**12 IDs make this all but impossible; draw again
                session.add(
                    Citizen(
                        user_id=user_id,
                        kind=kind,
                        display_name=display_name,
                        password_hash=hashes[0],
                        md5_hash=hashes[1],
                        created_at=now,
                    )
                )
                await session.flush()
                if cert is not None:
                    session.add(_certificate_row(user_id, cert, now))
        except IntegrityError as exc:  # a concurrent registration of the same certificate
            raise DuplicateCertificate("this certificate is already registered") from exc
        return user_id
    raise RuntimeError("could not draw an unused User ID")


async def add_certificate(
    db: Database, user_id: str, certificate_pem: bytes | str, clock: Clock = utcnow
) -> CertificateInfo:
    """Register a further certificate to an existing user."""
    cert = read_certificate(certificate_pem)
    try:
        async with db.transaction() as session:
            if await session.get(Citizen, user_id) is None:
                raise UnknownUser(f"no user {user_id}")
            await _refuse_duplicate(session, cert)
            session.add(_certificate_row(user_id, cert, clock()))
    except IntegrityError as exc:  # a concurrent registration of the same certificate
        raise DuplicateCertificate("this certificate is already registered") from exc
    return cert


async def certificates(db: Database, user_id: str) -> list[CertificateInfo]:
    async with db.read() as session:
        rows = await session.scalars(
            select(CitizenCertificate).where(CitizenCertificate.user_id == user_id)
        )
        return [CertificateInfo(r.fingerprint, r.serial, r.subject, r.not_after) for r in rows]


async def _refuse_duplicate(session: AsyncSession, cert: CertificateInfo) -> None:
    if await session.get(CitizenCertificate, cert.fingerprint) is not None:
        raise DuplicateCertificate("this certificate is already registered")


def _certificate_row(user_id: str, cert: CertificateInfo, now: datetime) -> CitizenCertificate:
    return CitizenCertificate(
        fingerprint=cert.fingerprint,
        user_id=user_id,
        serial=cert.serial,
        subject=cert.subject,
        not_after=cert.not_after,
        created_at=now,
    )
