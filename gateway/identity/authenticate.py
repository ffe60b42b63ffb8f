"""Who sent this envelope? Pluggable backends by IDAuthentication Method, one answer: an Identity.

Password methods (clear, MD5) are served here; W3Csigned is SignedEnvelopeBackend
(gateway.identity.signatures); a TLS client certificate is authenticated by
ClientCertificateAuthenticator, reached through Authenticator.authenticate_tls.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from connectors.protocol import Identity
from gateway.govtalk.errors import GovTalkFault
from gateway.govtalk.model import Authentication, AuthMethod, Envelope
from gateway.identity import citizens
from gateway.identity.certificates import CertificateRefused, CertificateValidator, registered_user
from gateway.identity.passwords import dummy_hash, verify_secret
from gateway.identity.single_flight import SingleFlight
from gateway.store.engine import Database


class AuthBackend(Protocol):
    """Authenticates one IDAuthentication/Authentication of a given Method."""

    methods: frozenset[str]

    async def authenticate(self, envelope: Envelope, auth: Authentication, class_: str) -> Identity:
        """Return the identity, or raise GovTalkFault with the right number."""


@dataclass(slots=True)
class VerifiedCache:
    """Remembers recently verified credentials so a burst of submissions costs one scrypt each."""

    ttl: float = 300
    size: int = 4096
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _seen: OrderedDict[bytes, float] = field(default_factory=OrderedDict)

    def digest(self, *parts: str) -> bytes:
        """What the cache keys by: never the secret itself."""
        return hmac.new(self._key, "\0".join(parts).encode("utf-8"), hashlib.sha256).digest()

    def hit(self, *parts: str) -> bool:
        digest = self.digest(*parts)
        expires = self._seen.get(digest)
        if expires is None or expires < time.monotonic():
            self._seen.pop(digest, None)
            return False
        return True

    def add(self, *parts: str) -> None:
        self._seen[self.digest(*parts)] = time.monotonic() + self.ttl
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)


class PasswordBackend:
    """User ID + password, sent clear or as the GovTalk MD5 form."""

    methods = frozenset({AuthMethod.CLEAR.value, AuthMethod.MD5.value})

    def __init__(self, db: Database, *, allow_md5: bool = True) -> None:
        self._db = db
        self._allow_md5 = allow_md5
        self._cache = VerifiedCache()
        # Checks under way, by what they check: 32 clients of one citizen starting at once wait
        # for one scrypt instead of running 32 (a few seconds of CPU).
        self._checking: SingleFlight[bytes, bool] = SingleFlight()

    async def authenticate(self, envelope: Envelope, auth: Authentication, class_: str) -> Identity:
        if auth.signature is not None or auth.value is None or not auth.value.strip():
            raise GovTalkFault.of(
                1040, f"Method {auth.method} requires a Value and no Signature", class_=class_
            )
        if auth.method == AuthMethod.MD5 and not self._allow_md5:
            raise GovTalkFault.of(1047, class_=class_)
        sender_id = envelope.sender_id
        if not sender_id:
            raise GovTalkFault.of(
                1046, "SenderID is required with password authentication", class_=class_
            )
        known = await citizens.lookup(self._db, sender_id)
        stored = None
        if known is not None:
            stored = known.md5_hash if auth.method == AuthMethod.MD5 else known.password_hash
        if not await self._verify(sender_id, auth, stored) or known is None:
            raise GovTalkFault.of(
                1046,
                "Authentication failure: the user ID or password was not recognised",
                class_=class_,
            )
        return Identity(
            user_id=sender_id,
            auth_method=auth.method,
            auth_level=1,
            enrolments=known.enrolments,
        )

    async def _verify(self, sender_id: str, auth: Authentication, stored: str | None) -> bool:
        value = auth.value or ""
        if auth.method == AuthMethod.MD5:
            value = value.strip()
        if stored is None:
            # No such User ID, or no password of this form: the same scrypt as a wrong password,
            # so the time a 1046 takes does not tell which User IDs exist.
            await asyncio.to_thread(lambda: verify_secret(value, dummy_hash()))
            return False
        parts = (sender_id, str(auth.method), value, stored)
        if self._cache.hit(*parts):
            return True
        # scrypt is deliberately slow: keep it off the event loop.
        ok = await self._checking.run(
            self._cache.digest(*parts), lambda: asyncio.to_thread(verify_secret, value, stored)
        )
        if ok:
            self._cache.add(*parts)
        return ok


def check_sender(envelope: Envelope, user_id: str, certificate: str, class_: str) -> None:
    """A SenderID, if the envelope gives one, must be the user the (`certificate`: client or
    signing) certificate is registered to; fault 1046 if not."""
    sender_id = envelope.sender_id
    if sender_id and sender_id != user_id:
        raise GovTalkFault.of(
            1046,
            f"SenderID {sender_id} is not the user the {certificate} certificate is registered to",
            class_=class_,
        )


class ClientCertificateAuthenticator:
    """A TLS client certificate as the credential: valid, not revoked, registered to a user."""

    def __init__(self, db: Database, validator: CertificateValidator) -> None:
        self._db = db
        self._validator = validator

    async def user_for(self, cert_der: bytes) -> str:
        """The user the certificate is registered to, or CertificateRefused saying why not."""
        try:
            cert = await self._validator.validate(cert_der)
        except CertificateRefused as exc:
            raise CertificateRefused(f"client certificate refused: {exc.reason}") from None
        user_id = await registered_user(self._db, cert.fingerprint)
        if user_id is None:
            raise CertificateRefused("certificate not registered to any Gateway user")
        return user_id

    async def authenticate(self, cert_der: bytes, envelope: Envelope, class_: str) -> Identity:
        try:
            user_id = await self.user_for(cert_der)
        except CertificateRefused as exc:
            raise GovTalkFault.of(1046, exc.reason, class_=class_) from None
        check_sender(envelope, user_id, "client", class_)
        return Identity(
            user_id=user_id,
            auth_method="certificate",
            auth_level=2,
            enrolments=await citizens.enrolments(self._db, user_id),
        )


class Authenticator:
    """Picks the backend for the envelope's Method; no credentials gives None (anonymous)."""

    def __init__(
        self,
        backends: list[AuthBackend],
        *,
        client_certificates: ClientCertificateAuthenticator | None = None,
    ) -> None:
        self._by_method = {m: b for b in backends for m in b.methods}
        self._client_certificates = client_certificates

    async def authenticate_tls(self, cert_der: bytes, envelope: Envelope, class_: str) -> Identity:
        """Authenticate by the TLS client certificate presented on the connection."""
        if self._client_certificates is None:
            raise GovTalkFault.of(
                1046, "client certificates are not accepted by this hub", class_=class_
            )
        return await self._client_certificates.authenticate(cert_der, envelope, class_)

    async def authenticate(self, envelope: Envelope, class_: str) -> Identity | None:
        sender = envelope.sender
        if sender is None or not sender.authentications:
            return None
        auth = sender.authentications[0]
        backend = self._by_method.get(auth.method)
        if backend is None:
            raise GovTalkFault.of(
                1046, f"Authentication Method '{auth.method}' is not supported", class_=class_
            )
        return await backend.authenticate(envelope, auth, class_)
