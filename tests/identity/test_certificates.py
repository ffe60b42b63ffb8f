"""Certificate validation and revocation against a real OCSP responder and CRL over HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.identity.certificates import CertificateRefused, fingerprint
from tests.identity.conftest import Clock, Pki, make_ca


async def test_valid_certificate_accepted(pki: Pki, make_validator):
    leaf = pki.leaf()
    checked = await make_validator().validate(leaf.der)
    assert checked.fingerprint == fingerprint(leaf.der)
    assert checked.serial == format(leaf.cert.serial_number, "x")
    assert checked.subject == "CN=alice@example.org"
    assert checked.issuer == pki.ca.cert
    assert pki.ocsp_requests == 1


async def test_expired_refused(pki: Pki, make_validator):
    leaf = pki.leaf(not_before=timedelta(days=-30), not_after=timedelta(days=-1))
    with pytest.raises(CertificateRefused, match="expired on"):
        await make_validator().validate(leaf.der)


async def test_not_yet_valid_refused(pki: Pki, make_validator):
    leaf = pki.leaf(not_before=timedelta(days=2))
    with pytest.raises(CertificateRefused, match="not valid until"):
        await make_validator().validate(leaf.der)


async def test_an_accepted_certificate_is_refused_once_it_expires(
    pki: Pki, make_validator, clock: Clock
):
    # The validator keeps the chain it built; it must not keep it past the leaf's expiry.
    leaf = pki.leaf(not_before=timedelta(days=-1), not_after=timedelta(hours=1))
    validator = make_validator()
    await validator.validate(leaf.der)
    await validator.validate(leaf.der)
    clock.advance(timedelta(hours=2))
    with pytest.raises(CertificateRefused, match="expired on"):
        await validator.validate(leaf.der)


async def test_an_accepted_certificate_is_refused_with_the_clock_moved_before_it(
    pki: Pki, make_validator, clock: Clock
):
    leaf = pki.leaf(not_before=timedelta(hours=-1))
    validator = make_validator()
    await validator.validate(leaf.der)
    clock.advance(timedelta(hours=-2))
    with pytest.raises(CertificateRefused, match="not valid until"):
        await validator.validate(leaf.der)


async def test_an_accepted_certificate_is_refused_once_revoked(pki: Pki, make_validator, clock):
    leaf = pki.leaf()
    validator = make_validator()
    await validator.validate(leaf.der)
    pki.revoke(leaf.cert.serial_number)
    # The OCSP answer is kept until its nextUpdate; the chain kept does not outlive that.
    clock.advance(timedelta(days=2))
    with pytest.raises(CertificateRefused, match="revoked"):
        await validator.validate(leaf.der)


async def test_foreign_ca_refused(pki: Pki, make_validator, clock: Clock):
    foreign = make_ca("Foreign Root", clock)
    leaf = pki.leaf(issuer=foreign)
    with pytest.raises(CertificateRefused, match="does not chain to a CA this hub trusts"):
        await make_validator().validate(leaf.der)
    # Sending the foreign root along as an "intermediate" does not make it trusted.
    with pytest.raises(CertificateRefused, match="does not chain"):
        await make_validator().validate(leaf.der, [foreign.cert])


async def test_no_client_auth_refused(pki: Pki, make_validator):
    leaf = pki.leaf(eku=[ExtendedKeyUsageOID.EMAIL_PROTECTION])
    with pytest.raises(CertificateRefused, match="does not include clientAuth"):
        await make_validator().validate(leaf.der)


async def test_no_digital_signature_refused(pki: Pki, make_validator):
    leaf = pki.leaf(digital_signature=False)
    with pytest.raises(CertificateRefused, match="digitalSignature"):
        await make_validator().validate(leaf.der)


async def test_garbage_refused(make_validator):
    with pytest.raises(CertificateRefused, match=r"not a valid X\.509"):
        await make_validator().validate(b"\x30\x03junk")


async def test_revoked_via_ocsp(pki: Pki, make_validator):
    leaf = pki.leaf()
    pki.revoke(leaf.cert.serial_number)
    with pytest.raises(CertificateRefused) as info:
        await make_validator().validate(leaf.der)
    serial = format(leaf.cert.serial_number, "x")
    assert f"certificate serial {serial} revoked (keyCompromise) at " in info.value.reason
    assert info.value.reason.endswith("per OCSP")
    assert pki.crl_requests == 0


async def test_revoked_via_crl_when_ocsp_down(pki: Pki, make_validator):
    leaf = pki.leaf()
    pki.revoke(leaf.cert.serial_number, x509.ReasonFlags.superseded)
    pki.ocsp_mode = "error"
    with pytest.raises(CertificateRefused, match=r"revoked \(superseded\) at .*per CRL"):
        await make_validator().validate(leaf.der)
    assert pki.ocsp_requests == 1 and pki.crl_requests == 1


async def test_good_via_crl_when_ocsp_unreachable(pki: Pki, make_validator, dead_url: str):
    leaf = pki.leaf(ocsp_url=dead_url)
    assert (await make_validator().validate(leaf.der)).subject
    assert pki.crl_requests == 1


async def test_ocsp_response_from_unauthorised_signer_ignored(pki: Pki, make_validator, clock):
    # A responder certificate from another CA, with OCSPSigning, must not vouch for our leaves.
    from tests.identity.conftest import make_ocsp_signer

    pki.ocsp_signer = make_ocsp_signer(make_ca("Rogue CA", clock), clock)
    pki.crl_mode = "error"
    leaf = pki.leaf()
    with pytest.raises(CertificateRefused, match="not issued by the certificate's CA"):
        await make_validator().validate(leaf.der)


@pytest.mark.parametrize("how", ["stale", "unreachable"])
async def test_no_fresh_status_fails_closed_or_open(
    pki: Pki, make_validator, dead_url: str, how: str
):
    if how == "stale":
        pki.ocsp_mode = pki.crl_mode = "stale"
        leaf = pki.leaf()
        expect = ["answer stale since", "stale since"]
    else:
        leaf = pki.leaf(ocsp_url=dead_url, crl_url=dead_url.replace("ocsp", "crl"))
        expect = [f"OCSP responder {dead_url} unreachable", "unreachable"]
    with pytest.raises(CertificateRefused) as info:
        await make_validator().validate(leaf.der)
    assert info.value.reason.startswith("revocation status unavailable: OCSP responder")
    for text in expect:
        assert text in info.value.reason
    assert "; CRL " in info.value.reason

    checked = await make_validator(fail_open=True).validate(leaf.der)
    assert checked.fingerprint == fingerprint(leaf.der)
    assert checked.revocation.source == "none"
    assert checked.revocation.reason.startswith("accepted (fail_open): revocation status")


async def test_answers_cached_until_next_update(pki: Pki, make_validator, clock: Clock):
    validator = make_validator()
    leaf = pki.leaf()
    await validator.validate(leaf.der)
    await validator.validate(leaf.der)
    assert pki.ocsp_requests == 1

    pki.ocsp_mode = "error"
    other = pki.leaf(email="bob@example.org")
    await validator.validate(other.der)
    await validator.validate(other.der)  # the CRL's answer for this serial is cached too
    assert (pki.ocsp_requests, pki.crl_requests) == (2, 1)
    third = pki.leaf(email="carol@example.org")
    await validator.validate(third.der)
    # OCSP is tried again (its failure is not cached); the CRL is reused per URL.
    assert (pki.ocsp_requests, pki.crl_requests) == (3, 1)


async def test_revoked_between_uses_refused_once_cache_expires(
    pki: Pki, make_validator, clock: Clock
):
    pki.ocsp_validity = timedelta(minutes=10)
    validator = make_validator()
    leaf = pki.leaf()
    await validator.validate(leaf.der)
    pki.revoke(leaf.cert.serial_number)
    await validator.validate(leaf.der)  # still within the cached answer's nextUpdate
    assert pki.ocsp_requests == 1
    clock.advance(timedelta(minutes=11))
    with pytest.raises(CertificateRefused, match="revoked"):
        await validator.validate(leaf.der)
    assert pki.ocsp_requests == 2
