"""Pure RFC 6960 responder logic: a DER request in, a signed DER response out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from gateway.pki.builders import Signer

Status = Literal["good", "revoked", "unknown"]
# A real request holds one CertID and perhaps a nonce: anything much bigger is not one.
MAX_REQUEST_BYTES = 16 * 1024
# RFC 8954 §2.1: a responder refuses nonces shorter or longer than this as malformed.
NONCE_LENGTHS = range(1, 33)

_STATUS = {
    "good": ocsp.OCSPCertStatus.GOOD,
    "revoked": ocsp.OCSPCertStatus.REVOKED,
    "unknown": ocsp.OCSPCertStatus.UNKNOWN,
}


class CertStatus(NamedTuple):
    """What the PKI knows of one serial number."""

    status: Status
    revoked_at: datetime | None = None
    reason: x509.ReasonFlags | None = None


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def issued_by(request: ocsp.OCSPRequest, issuer: x509.Certificate) -> bool:
    """Whether the request's CertID names this issuer (name hash and key hash, RFC 6960 §4.1.1)."""
    public = issuer.public_key()
    # The key hash covers the subjectPublicKey BIT STRING's value: for EC, the X9.62 point.
    assert isinstance(public, ec.EllipticCurvePublicKey)
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    algorithm = request.hash_algorithm
    return request.issuer_name_hash == _digest(
        algorithm, issuer.subject.public_bytes()
    ) and request.issuer_key_hash == _digest(algorithm, point)


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned error response (malformedRequest, unauthorized, internalError...)."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )


def respond(
    request_der: bytes,
    *,
    issuer: x509.Certificate,
    responder: Signer,
    lookup: Callable[[int], CertStatus],
    now: datetime,
    validity: timedelta,
) -> bytes:
    """Answer one OCSP request for certificates of issuer, signed by the delegated responder."""
    if len(request_der) > MAX_REQUEST_BYTES:
        return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        hash_algorithm = request.hash_algorithm
        serial = request.serial_number
        nonce = _nonce(request)
    except Exception:
        # Any parse failure is the client's: bad DER, several CertIDs (we do not batch), an
        # unsupported hash algorithm or extension.
        return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    # DER parses a negative serial, which no certificate has (RFC 5280 §4.1.2.2) and no
    # response can carry.
    if serial < 0 or (nonce is not None and len(nonce) not in NONCE_LENGTHS):
        return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    if not issued_by(request, issuer):
        return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    status = lookup(serial)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=serial,
            algorithm=hash_algorithm,
            cert_status=_STATUS[status.status],
            this_update=now,
            next_update=now + validity,
            revocation_time=status.revoked_at if status.status == "revoked" else None,
            revocation_reason=status.reason if status.status == "revoked" else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder.cert)
        .certificates([responder.cert])
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    response = builder.sign(responder.key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


def _nonce(request: ocsp.OCSPRequest) -> bytes | None:
    try:
        ext = request.extensions.get_extension_for_class(x509.OCSPNonce)
    except x509.ExtensionNotFound:
        return None
    return ext.value.nonce
