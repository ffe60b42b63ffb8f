"""Pure X.509 builders for the development PKI: no files, no clock."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

ORGANISATION = "Government Gateway (development)"
# Backdating covers small clock differences between the hub and its clients.
BACKDATE = timedelta(minutes=5)
CLIENT_KINDS = ("citizen", "council", "supplier")


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key: fast to make and accepted by every tool we test with."""
    return ec.generate_private_key(ec.SECP256R1())


def make_name(common_name: str, unit: str | None = None) -> x509.Name:
    """A subject name under the development organisation."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


@dataclass(frozen=True, slots=True)
class Signer:
    """The certificate and key that sign something."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _builder(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: Signer | None,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    issuer_public = issuer.cert.public_key() if issuer else public
    assert isinstance(issuer_public, ec.EllipticCurvePublicKey)
    return builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False
    )


def _sign(builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return builder.sign(key, hashes.SHA256())


def _lifetime(now: datetime, days: int) -> tuple[datetime, datetime]:
    """Valid from a little before now (BACKDATE) for `days`."""
    return now - BACKDATE, now + timedelta(days=days)


def _key_usage(*, ca: bool, key_agreement: bool = False) -> x509.KeyUsage:
    """Digital signatures always; a CA signs certificates and CRLs; ECDH with key_agreement."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _ca(builder: x509.CertificateBuilder, path_length: int) -> x509.CertificateBuilder:
    """A CA with at most `path_length` CAs below it."""
    return builder.add_extension(
        x509.BasicConstraints(ca=True, path_length=path_length), critical=True
    ).add_extension(_key_usage(ca=True), critical=True)


def _end_entity(
    builder: x509.CertificateBuilder, purpose: x509.ObjectIdentifier, *, key_agreement: bool = False
) -> x509.CertificateBuilder:
    """An end entity (not a CA) for one extended key usage."""
    return (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False, key_agreement=key_agreement), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
    )


def build_root(
    key: ec.EllipticCurvePrivateKey, now: datetime, days: int = 3650
) -> x509.Certificate:
    """The self-signed root CA."""
    name = make_name("Gateway Development Root CA")
    return _sign(_ca(_builder(name, key, None, *_lifetime(now, days)), path_length=1), key)


def build_issuing_ca(
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: Signer,
    now: datetime,
    days: int = 1825,
) -> x509.Certificate:
    """An issuing CA under the root; path length 0 so it can only sign end entities."""
    builder = _builder(make_name(common_name), key, issuer, *_lifetime(now, days))
    return _sign(_ca(builder, path_length=0), issuer.key)


def host_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """SAN entries for the server: loopback always, then the configured names, without repeats."""
    out: list[x509.GeneralName] = []
    for host in ("localhost", "127.0.0.1", "::1", *hosts):
        name: x509.GeneralName
        try:
            name = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            name = x509.DNSName(host)
        if name not in out:
            out.append(name)
    return out


def build_server(
    key: ec.EllipticCurvePrivateKey,
    issuer: Signer,
    hosts: Sequence[str],
    now: datetime,
    days: int = 825,
) -> x509.Certificate:
    """The hub's TLS server certificate."""
    builder = _builder(
        make_name("Gateway Development Hub", "servers"), key, issuer, *_lifetime(now, days)
    )
    builder = _end_entity(builder, ExtendedKeyUsageOID.SERVER_AUTH).add_extension(
        x509.SubjectAlternativeName(host_names(hosts)), critical=False
    )
    return _sign(builder, issuer.key)


def build_ocsp_responder(
    key: ec.EllipticCurvePrivateKey, issuer: Signer, now: datetime, days: int = 825
) -> x509.Certificate:
    """The delegated OCSP signer (RFC 6960 §4.2.2.2), issued by the CA whose status it reports."""
    builder = _builder(
        make_name("Gateway Development OCSP Responder", "ocsp"), key, issuer, *_lifetime(now, days)
    )
    # id-pkix-ocsp-nocheck: clients need not ask about the responder itself (no loop).
    builder = _end_entity(builder, ExtendedKeyUsageOID.OCSP_SIGNING).add_extension(
        x509.OCSPNoCheck(), critical=False
    )
    return _sign(builder, issuer.key)


def client_names(name: str, kind: str, email: str | None) -> list[x509.GeneralName]:
    """SAN entries for a client: an email (real or synthetic) and a stable URN of the holder."""
    mailbox = email or f"{name}@{kind}s.gateway.invalid"
    return [x509.RFC822Name(mailbox), x509.UniformResourceIdentifier(f"urn:gateway:{kind}:{name}")]


def build_client(
    key: ec.EllipticCurvePrivateKey,
    issuer: Signer,
    *,
    name: str,
    common_name: str,
    kind: str,
    email: str | None,
    base_url: str,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """A citizen, council or supplier certificate for TLS client authentication."""
    base = base_url.rstrip("/")
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(f"{base}/pki/ocsp"),
            ),
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(f"{base}/pki/citizen-ca.pem"),
            ),
        ]
    )
    crl_dp = x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(f"{base}/pki/crl")],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )
    builder = _builder(make_name(common_name, f"{kind}s"), key, issuer, not_before, not_after)
    builder = (
        # keyAgreement too: an EC key may do ECDH in a non-TLS protocol.
        _end_entity(builder, ExtendedKeyUsageOID.CLIENT_AUTH, key_agreement=True)
        .add_extension(x509.SubjectAlternativeName(client_names(name, kind, email)), critical=False)
        .add_extension(crl_dp, critical=False)
        .add_extension(aia, critical=False)
    )
    return _sign(builder, issuer.key)


@dataclass(frozen=True, slots=True)
class Revocation:
    """One CRL entry."""

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None


def build_crl(
    issuer: Signer, revoked: Iterable[Revocation], now: datetime, validity: timedelta
) -> x509.CertificateRevocationList:
    """A full CRL (RFC 5280 §5) for the issuer."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(now)
        .next_update(now + validity)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        # Seconds since the epoch increase with every CRL we issue without keeping a counter.
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
    )
    for entry in revoked:
        item = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        if entry.reason is not None:
            item = item.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(item.build())
    return builder.sign(issuer.key, hashes.SHA256())
