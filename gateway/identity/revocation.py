"""Is a certificate revoked? OCSP first, the CRL as fallback, each answer verified and cached.

cryptography parses OCSP responses but verifies nothing in them, so the responder's authority,
its signature, the serial and the freshness are all checked here.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import aiohttp
import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from gateway.clock import utcnow

log = structlog.get_logger("gateway.revocation")

Source = Literal["ocsp", "crl", "none"]

# Responders and CA clocks drift a little; a response "from the future" by less than this is fine.
CLOCK_SKEW = timedelta(minutes=5)
# Without a nextUpdate a response says nothing about how long it holds: reuse it only briefly.
NO_NEXT_UPDATE_TTL = timedelta(minutes=5)
MAX_OCSP_BYTES = 64 * 1024
MAX_CRL_BYTES = 8 * 1024 * 1024
_CRL_KEY_TYPES = (
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
)


@dataclass(frozen=True, slots=True)
class RevocationStatus:
    """One revocation answer: good or not, where it came from, why, and until when it holds."""

    good: bool
    source: Source
    reason: str
    next_update: datetime | None = None


class _Unavailable(Exception):
    """A status source could not give a usable answer (unreachable, invalid, stale)."""


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 hex of the certificate's DER."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _fmt(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    """The OCSP responder URLs named in the certificate's AIA extension."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


def crl_urls(cert: x509.Certificate) -> list[str]:
    """The HTTP(S) CRL distribution point URLs named in the certificate."""
    try:
        dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [
        name.value
        for dp in dps
        for name in dp.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
        and name.value.lower().startswith(("http://", "https://"))
    ]


def verify_signature(
    key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> None:
    """Verify a signature by a certificate's public key; raises InvalidSignature."""
    if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
        key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, data)
    else:
        raise InvalidSignature(f"unsupported key type {type(key).__name__}")


def _has_ocsp_signing(cert: x509.Certificate) -> bool:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in eku


def _key_hash(cert: x509.Certificate) -> bytes:
    """SHA-1 of the subjectPublicKey bits: how an OCSP ResponderID byKey names a responder."""
    # RFC 5280's key identifier method 1 is exactly this hash.
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


class RevocationChecker:
    """Revocation status of a leaf certificate, by OCSP then CRL, fail-closed unless fail_open."""

    def __init__(
        self,
        session_factory: Callable[[], aiohttp.ClientSession] = aiohttp.ClientSession,
        *,
        timeout: float = 2.0,
        fail_open: bool = False,
        clock: Callable[[], datetime] = utcnow,
        revocations_changed: Callable[[], object] | None = None,
    ) -> None:
        self._session_factory = session_factory
        # A CA that shares this machine can say when its revocations changed (the hub's own PKI
        # rewrites its index): cached answers are dropped then, so a certificate revoked
        # mid-session is refused on its next use rather than at the next nextUpdate.
        self._revocations_changed = revocations_changed
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._fail_open = fail_open
        self._clock = clock
        self._revocations_token = self._current_revocations()
        self._ocsp_cache: dict[tuple[str, int], RevocationStatus] = {}
        self._obtained: dict[tuple[str, int], datetime] = {}  # when each answer was cached
        self._crl_cache: dict[str, x509.CertificateRevocationList] = {}
        self._crl_locks: dict[str, asyncio.Lock] = {}

    def _current_revocations(self) -> object:
        """The hub's revocation index token (None when the checker is not told of changes)."""
        return self._revocations_changed() if self._revocations_changed is not None else None

    def _forget_if_revocations_changed(self) -> None:
        token = self._current_revocations()
        if token != self._revocations_token:
            self._revocations_token = token
            self._ocsp_cache.clear()
            self._crl_cache.clear()

    def _still_current(self, asked_at: object) -> bool:
        """Whether an answer sought when the revocations were `asked_at` may be kept."""
        # One obtained before a revocation may arrive after the cache was cleared for it:
        # kept, it would vouch for a revoked certificate until its nextUpdate.
        return self._current_revocations() == asked_at

    async def aclose(self) -> None:
        """Close the HTTP session this checker opened, if any."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def status(self, cert: x509.Certificate, issuer: x509.Certificate) -> RevocationStatus:
        """The leaf's status per OCSP, else the CRL; unobtainable refuses unless fail_open."""
        self._forget_if_revocations_changed()
        now = self._clock()
        key = (fingerprint(issuer), cert.serial_number)
        cached = self._ocsp_cache.get(key)
        if cached is not None and cached.next_update is not None and now <= cached.next_update:
            return cached
        self._ocsp_cache.pop(key, None)

        asked_at = self._current_revocations()
        failures: list[str] = []
        sources = (
            ("OCSP responder", ocsp_urls, self._ocsp, "no OCSP responder"),
            ("CRL", crl_urls, self._crl_status, "no CRL distribution point"),
        )
        for label, named_in, ask, none_named in sources:
            urls = named_in(cert)
            for url in urls:
                try:
                    answer = await ask(url, cert, issuer)
                except _Unavailable as exc:
                    failures.append(f"{label} {url} {exc}")
                    continue
                if self._still_current(asked_at):
                    self._remember(key, answer)
                return answer
            if not urls:
                failures.append(f"{none_named} named in the certificate")

        reason = "revocation status unavailable: " + "; ".join(failures)
        if self._fail_open:
            log.warning(
                "revocation_fail_open", serial=format(cert.serial_number, "x"), reason=reason
            )
            return RevocationStatus(True, "none", f"accepted (fail_open): {reason}")
        return RevocationStatus(False, "none", reason)

    def _remember(self, key: tuple[str, int], answer: RevocationStatus) -> None:
        if answer.next_update is None:
            answer = RevocationStatus(
                answer.good, answer.source, answer.reason, self._clock() + NO_NEXT_UPDATE_TTL
            )
        self._ocsp_cache[key] = answer
        self._obtained[key] = self._clock()

    def cached_ages(self) -> list[float]:
        """Seconds since each cached status answer still within its nextUpdate was obtained."""
        self._forget_if_revocations_changed()
        now = self._clock()
        return [
            (now - self._obtained[key]).total_seconds()
            for key, answer in list(self._ocsp_cache.items())
            if key in self._obtained
            and answer.next_update is not None
            and now <= answer.next_update
        ]

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._session_factory()
        return self._session

    async def _fetch(self, method: str, url: str, data: bytes | None, limit: int) -> bytes:
        """The response body of one HTTP exchange, size-capped; any failure is _Unavailable."""
        headers = {"Content-Type": "application/ocsp-request"} if data is not None else {}
        try:
            async with self._http().request(
                method, url, data=data, headers=headers, timeout=self._timeout
            ) as resp:
                if resp.status != 200:
                    raise _Unavailable(f"answered HTTP {resp.status}")
                body = await resp.content.read(limit + 1)
        except TimeoutError:
            raise _Unavailable(f"unreachable (no answer within {self._timeout.total}s)") from None
        except (aiohttp.ClientConnectionError, OSError):
            raise _Unavailable("unreachable (connection failed)") from None
        except aiohttp.ClientError as exc:
            raise _Unavailable(f"unreachable ({type(exc).__name__})") from None
        if len(body) > limit:
            raise _Unavailable(f"answer larger than {limit} bytes")
        return body

    async def _ocsp(
        self, url: str, cert: x509.Certificate, issuer: x509.Certificate
    ) -> RevocationStatus:
        """Ask one responder and verify its answer completely."""
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
        body = await self._fetch(
            "POST", url, request.public_bytes(serialization.Encoding.DER), MAX_OCSP_BYTES
        )
        try:
            response = ocsp.load_der_ocsp_response(body)
        except ValueError:
            raise _Unavailable("sent an answer that is not an OCSP response") from None
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise _Unavailable(f"answered {response.response_status.name}")
        self._check_responder(response, issuer)
        single = next(
            (
                r
                for r in response.responses
                if r.serial_number == cert.serial_number
                and r.issuer_key_hash == request.issuer_key_hash
                and r.issuer_name_hash == request.issuer_name_hash
            ),
            None,
        )
        if single is None:
            raise _Unavailable("answered for a different certificate")
        now = self._clock()
        next_update = single.next_update_utc
        if single.this_update_utc > now + CLOCK_SKEW:
            raise _Unavailable(f"answer not valid until {_fmt(single.this_update_utc)}")
        if next_update is not None and next_update < now:
            raise _Unavailable(f"answer stale since {_fmt(next_update)}")
        serial = format(cert.serial_number, "x")
        status = single.certificate_status
        if status == ocsp.OCSPCertStatus.GOOD:
            return RevocationStatus(True, "ocsp", "good, per OCSP", next_update)
        if status == ocsp.OCSPCertStatus.REVOKED:
            when = single.revocation_time_utc
            why = single.revocation_reason
            reason = f"certificate serial {serial} revoked"
            if why is not None:
                reason += f" ({why.value})"
            if when is not None:
                reason += f" at {_fmt(when)}"
            return RevocationStatus(False, "ocsp", reason + ", per OCSP", next_update)
        # The issuing CA's own responder does not know the serial: the CA never issued it.
        return RevocationStatus(
            False, "ocsp", f"certificate serial {serial} unknown to the OCSP responder", next_update
        )

    def _check_responder(self, response: ocsp.OCSPResponse, issuer: x509.Certificate) -> None:
        """The response is signed by the issuer or by an OCSP signer the issuer delegated to."""
        candidates = [*response.certificates, issuer]
        responder = next(
            (
                c
                for c in candidates
                if (response.responder_name is not None and c.subject == response.responder_name)
                or (
                    response.responder_key_hash is not None
                    and _key_hash(c) == response.responder_key_hash
                )
            ),
            None,
        )
        if responder is None:
            raise _Unavailable("answer signed by an unknown responder")
        if responder != issuer:
            try:
                responder.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                raise _Unavailable(
                    f"answer signed by {responder.subject.rfc4514_string()}, "
                    "not issued by the certificate's CA"
                ) from None
            if not _has_ocsp_signing(responder):
                raise _Unavailable("responder certificate lacks the OCSPSigning usage")
            now = self._clock()
            if not responder.not_valid_before_utc <= now <= responder.not_valid_after_utc:
                raise _Unavailable("responder certificate is outside its validity period")
        try:
            verify_signature(
                responder.public_key(),
                response.signature,
                response.tbs_response_bytes,
                response.signature_hash_algorithm,
            )
        except (InvalidSignature, UnsupportedAlgorithm):
            raise _Unavailable("answer signature is invalid") from None

    async def _crl_status(
        self, url: str, cert: x509.Certificate, issuer: x509.Certificate
    ) -> RevocationStatus:
        """The leaf's status per one CRL (fetched and verified, or reused until its nextUpdate)."""
        crl = await self._crl(url, issuer)
        serial = format(cert.serial_number, "x")
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is None:
            return RevocationStatus(True, "crl", "good, per CRL", crl.next_update_utc)
        reason = f"certificate serial {serial} revoked"
        try:
            flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            reason += f" ({flag.value})"
        except x509.ExtensionNotFound:
            pass
        reason += f" at {_fmt(entry.revocation_date_utc)}, per CRL"
        return RevocationStatus(False, "crl", reason, crl.next_update_utc)

    async def _crl(self, url: str, issuer: x509.Certificate) -> x509.CertificateRevocationList:
        # One download per URL at a time: a burst of submissions must not fetch the CRL N times.
        lock = self._crl_locks.setdefault(url, asyncio.Lock())
        async with lock:
            now = self._clock()
            cached = self._crl_cache.get(url)
            if cached is not None and _crl_fresh(cached, now):
                return cached
            self._crl_cache.pop(url, None)
            asked_at = self._current_revocations()
            body = await self._fetch("GET", url, None, MAX_CRL_BYTES)
            try:
                crl = (
                    x509.load_pem_x509_crl(body)
                    if body.lstrip().startswith(b"-----BEGIN")
                    else x509.load_der_x509_crl(body)
                )
            except ValueError:
                raise _Unavailable("is not a CRL") from None
            key = issuer.public_key()
            if (
                crl.issuer != issuer.subject
                or not isinstance(key, _CRL_KEY_TYPES)
                or not crl.is_signature_valid(key)
            ):
                raise _Unavailable("is not signed by the certificate's CA")
            if crl.last_update_utc > now + CLOCK_SKEW:
                raise _Unavailable(f"not valid until {_fmt(crl.last_update_utc)}")
            if crl.next_update_utc is None:
                raise _Unavailable("has no nextUpdate")
            if crl.next_update_utc < now:
                raise _Unavailable(f"stale since {_fmt(crl.next_update_utc)}")
            if self._still_current(asked_at):
                self._crl_cache[url] = crl
            return crl


def _crl_fresh(crl: x509.CertificateRevocationList, now: datetime) -> bool:
    return crl.next_update_utc is not None and now <= crl.next_update_utc
