"""W3Csigned envelopes: sign_envelope → parse → SignedEnvelopeBackend, and the attacks on it."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from lxml import etree

from gateway.govtalk.errors import GovTalkFault
from gateway.govtalk.model import Envelope
from gateway.govtalk.parse import parse
from gateway.identity.authenticate import Authenticator, ClientCertificateAuthenticator
from gateway.identity.replay import ReplayStore
from gateway.identity.signatures import SignedEnvelopeBackend
from gateway.identity.signing import sign_envelope
from gateway.store.engine import Database
from tests.govtalk.samples import DEFAULT_BODY, ENV_NS, envelope
from tests.identity.conftest import Clock, Issued, Pki, make_ca, register_certificate

E = f"{{{ENV_NS}}}"
CLASS = "LA-CTAX-VIEW"
W3C_SENDER = """
    <SenderDetails>
      <IDAuthentication>
        <SenderID>alice</SenderID>
        <Authentication>
          <Method>W3Csigned</Method>
          <Role>principal</Role>
        </Authentication>
      </IDAuthentication>
    </SenderDetails>"""


def unsigned(*, sender: str = W3C_SENDER, body: str | None = None) -> bytes:
    if body is None:
        return envelope(sender=sender)
    return envelope(sender=sender, body=body)


@pytest.fixture
async def backend_factory(db: Database, make_validator, clock: Clock):
    def make(*, allow_sha1: bool = False) -> SignedEnvelopeBackend:
        return SignedEnvelopeBackend(
            db,
            make_validator(),
            ReplayStore(db, timedelta(days=1), clock),
            allow_sha1=lambda class_: allow_sha1,
            clock=clock,
        )

    return make


@pytest.fixture
async def alice(pki: Pki, db: Database) -> Issued:
    leaf = pki.leaf()
    await register_certificate(db, "alice", leaf)
    return leaf


async def authenticate(backend: SignedEnvelopeBackend, data: bytes, class_: str = CLASS):
    env = parse(data)
    assert env.sender is not None
    return await backend.authenticate(env, env.sender.authentications[0], class_)


async def refused(backend: SignedEnvelopeBackend, data: bytes) -> GovTalkFault:
    with pytest.raises(GovTalkFault) as info:
        await authenticate(backend, data)
    return info.value


async def test_signed_envelope_accepted(backend_factory, alice: Issued):
    signed = sign_envelope(unsigned(), alice.cert_pem, alice.key_pem)
    env = parse(signed)
    body = env.body.getparent() if env.body is not None else None
    assert body is not None and body.get("Id") == "Body"
    identity = await authenticate(backend_factory(), signed)
    assert identity.user_id == "alice"
    assert identity.auth_method == "W3Csigned"
    assert identity.auth_level == 2
    assert [e.class_ for e in identity.enrolments] == [CLASS]


async def test_sign_replaces_value_and_creates_sender(alice: Issued):
    signed = sign_envelope(envelope(), alice.cert_pem, alice.key_pem)  # a clear-password sender
    env = parse(signed)
    auth = env.sender.authentications[0] if env.sender else None
    assert auth is not None and auth.method == "W3Csigned" and auth.value is None
    assert auth.signature is not None
    bare = parse(sign_envelope(envelope(sender=""), alice.cert_pem, alice.key_pem))
    assert bare.sender is not None and bare.sender.authentications[0].signature is not None


async def test_large_envelope_verified_off_loop(backend_factory, alice: Issued):
    big = "".join(f"<Line>{i:08d} {'x' * 60}</Line>" for i in range(1500))
    body = f'<Body><Lines xmlns="urn:example:big">{big}</Lines></Body>'
    signed = sign_envelope(unsigned(body=body), alice.cert_pem, alice.key_pem)
    assert len(signed) > 64 * 1024
    assert (await authenticate(backend_factory(), signed)).user_id == "alice"


async def test_tampered_body_refused(backend_factory, alice: Issued):
    signed = sign_envelope(unsigned(), alice.cert_pem, alice.key_pem)
    tampered = signed.replace(
        b"100023336956</PropertyReference>", b"999999999999</PropertyReference>"
    )
    assert tampered != signed
    fault = await refused(backend_factory(), tampered)
    assert fault.first.number == 1002
    assert "does not verify" in fault.first.text


def _wrap(signed: bytes, where: str) -> bytes:
    """Move the signed Body elsewhere and put a forged Body where the hub reads it."""
    root = etree.fromstring(signed)
    body = root.find(E + "Body")
    assert body is not None
    forged = copy.deepcopy(body)
    reference = forged.find(".//{urn:example:ctax}PropertyReference")
    details = root.find(E + "GovTalkDetails")
    assert reference is not None and details is not None
    reference.text = "666"
    moved = copy.deepcopy(body)
    root.remove(body)
    if where == "gateway-additions":
        etree.SubElement(details, E + "GatewayAdditions").append(moved)
        forged.attrib.pop("Id")
    elif where == "same-id":
        # Both carry Id="Body": signxml must see an ambiguous reference, we a duplicate Id.
        etree.SubElement(details, E + "GatewayAdditions").append(moved)
    elif where == "inside-forged":
        forged.attrib.pop("Id")
        wrapper = etree.SubElement(forged[0], "{urn:example:ctax}Extra")
        wrapper.append(moved)
    root.append(forged)
    return etree.tostring(root)


@pytest.mark.parametrize("where", ["gateway-additions", "same-id", "inside-forged"])
async def test_signature_wrapping_refused(backend_factory, alice: Issued, where: str):
    signed = sign_envelope(unsigned(), alice.cert_pem, alice.key_pem)
    wrapped = _wrap(signed, where)
    try:
        env = parse(wrapped)
    except GovTalkFault:
        pytest.skip("the envelope schema already refuses this shape")
    assert env.body is not None
    assert env.body.findtext("{urn:example:ctax}PropertyReference") == "666"
    fault = await refused(backend_factory(), wrapped)
    assert fault.first.number == 1002
    assert "signature does not cover the envelope Body" in fault.first.text


async def test_foreign_signer_refused(backend_factory, pki: Pki, db: Database, clock: Clock):
    foreign = pki.leaf(issuer=make_ca("Foreign Root", clock))
    await register_certificate(db, "alice", foreign)  # registration cannot create trust
    signed = sign_envelope(unsigned(), foreign.cert_pem, foreign.key_pem)
    fault = await refused(backend_factory(), signed)
    assert fault.first.number == 1002
    assert "does not chain to a CA this hub trusts" in fault.first.text


async def test_revoked_signer_refused(backend_factory, pki: Pki, alice: Issued):
    pki.revoke(alice.cert.serial_number)
    fault = await refused(
        backend_factory(), sign_envelope(unsigned(), alice.cert_pem, alice.key_pem)
    )
    assert fault.first.number == 1002 and "revoked (keyCompromise)" in fault.first.text


async def test_replay_refused(backend_factory, alice: Issued):
    backend = backend_factory()
    signed = sign_envelope(unsigned(), alice.cert_pem, alice.key_pem)
    await authenticate(backend, signed)
    fault = await refused(backend, signed)
    assert fault.first.number == 1002 and "signature replayed" in fault.first.text
    # Re-signing the same Body gives a new SignatureValue, but the signed Body is the same.
    again = sign_envelope(unsigned(), alice.cert_pem, alice.key_pem)
    assert (await refused(backend, again)).first.text.endswith("signature replayed")


async def test_concurrent_replays_let_exactly_one_through(backend_factory, alice: Issued):
    # The replay store's writes are group-committed with others: a batch that meets a replay
    # is retried write by write, so the other envelopes in it are still accepted.
    import asyncio

    backend = backend_factory()
    twice = sign_envelope(unsigned(), alice.cert_pem, alice.key_pem)
    others = [
        sign_envelope(
            unsigned(body=DEFAULT_BODY.replace("100023336956", f"10002333695{n}")),
            alice.cert_pem,
            alice.key_pem,
        )
        for n in range(4)
    ]
    results = await asyncio.gather(
        *(authenticate(backend, data) for data in [twice, *others, twice, twice]),
        return_exceptions=True,
    )
    outcomes = [r.user_id if not isinstance(r, BaseException) else r for r in results]
    assert outcomes[1:5] == ["alice"] * 4
    duplicates = [outcomes[0], *outcomes[5:]]
    assert duplicates.count("alice") == 1
    refusals = [r for r in duplicates if isinstance(r, GovTalkFault)]
    assert len(refusals) == 2 and all(r.first.number == 1002 for r in refusals)


async def test_replay_window_expires(backend_factory, alice: Issued, clock: Clock):
    backend = backend_factory()
    signed = sign_envelope(unsigned(), alice.cert_pem, alice.key_pem)
    await authenticate(backend, signed)
    clock.advance(timedelta(days=1, seconds=1))
    assert (await authenticate(backend, signed)).user_id == "alice"


async def test_value_with_w3csigned_is_1040(backend_factory, alice: Issued):
    signed = sign_envelope(unsigned(), alice.cert_pem, alice.key_pem)
    # Role sits between Method and Value in the schema.
    with_value = signed.replace(
        b"<Role>principal</Role>", b"<Role>principal</Role><Value>x</Value>", 1
    )
    assert (await refused(backend_factory(), with_value)).first.number == 1040
    fault = await refused(backend_factory(), unsigned())
    assert fault.first.number == 1040


async def test_unregistered_signer_is_1046(backend_factory, pki: Pki):
    stranger = pki.leaf(email="stranger@example.org")
    fault = await refused(
        backend_factory(), sign_envelope(unsigned(), stranger.cert_pem, stranger.key_pem)
    )
    assert fault.first.number == 1046
    assert fault.first.text == "certificate not registered to any Gateway user"


async def test_sender_id_must_match(backend_factory, alice: Issued):
    data = unsigned(sender=W3C_SENDER.replace("<SenderID>alice", "<SenderID>mallory"))
    fault = await refused(backend_factory(), sign_envelope(data, alice.cert_pem, alice.key_pem))
    assert fault.first.number == 1046 and "mallory" in fault.first.text


async def test_sha1_refused_unless_allowed(backend_factory, alice: Issued):
    signed = sign_envelope(unsigned(), alice.cert_pem, alice.key_pem, sha1=True)
    assert b"sha1" in signed
    fault = await refused(backend_factory(), signed)
    assert fault.first.number == 1002 and "SHA-1" in fault.first.text
    identity = await authenticate(backend_factory(allow_sha1=True), signed)
    assert identity.user_id == "alice"


@pytest.mark.parametrize(
    ("uri", "c14n"),
    [
        ("", "http://www.w3.org/2001/10/xml-exc-c14n#"),
        ("", "http://www.w3.org/2006/12/xml-c14n11"),
        ("#Body", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"),
    ],
)
async def test_signed_in_place_accepted(backend_factory, alice: Issued, uri: str, c14n: str):
    """Signed in place as client software does (URI="" covers everything), any c14n."""
    from signxml.algorithms import SignatureMethod
    from signxml.signer import XMLSigner

    from gateway.govtalk.model import DSIG_NS

    root = etree.fromstring(unsigned(body=DEFAULT_BODY.replace("<Body>", '<Body Id="Body">')))
    auth = root.find(f"{E}Header/{E}SenderDetails/{E}IDAuthentication/{E}Authentication")
    assert auth is not None
    etree.SubElement(auth, f"{{{DSIG_NS}}}Signature", Id="placeholder")
    signer = XMLSigner(signature_algorithm=SignatureMethod.ECDSA_SHA256, c14n_algorithm=c14n)
    signed_root = signer.sign(
        root, key=alice.key_pem, cert=alice.cert_pem.decode(), reference_uri=uri or None
    )
    data = etree.tostring(signed_root)
    assert (await authenticate(backend_factory(), data)).user_id == "alice"
    tampered = data.replace(b"<Qualifier>request", b"<Qualifier>poll")
    if uri == "":
        fault = await refused(backend_factory(), tampered)
        assert fault.first.number == 1002 and "does not verify" in fault.first.text


async def test_authenticator_tls_entry_point(db: Database, make_validator, pki: Pki, alice: Issued):
    env: Envelope = parse(unsigned())
    authenticator = Authenticator(
        [], client_certificates=ClientCertificateAuthenticator(db, make_validator())
    )
    identity = await authenticator.authenticate_tls(alice.der, env, CLASS)
    assert (identity.user_id, identity.auth_method, identity.auth_level) == (
        "alice",
        "certificate",
        2,
    )
    stranger = pki.leaf(email="stranger@example.org")
    with pytest.raises(GovTalkFault) as info:
        await authenticator.authenticate_tls(stranger.der, env, CLASS)
    assert info.value.first.number == 1046
    expired = pki.leaf(not_before=timedelta(days=-9), not_after=timedelta(days=-2))
    with pytest.raises(GovTalkFault) as info:
        await authenticator.authenticate_tls(expired.der, env, CLASS)
    assert info.value.first.number == 1046
    assert info.value.first.text.startswith("client certificate refused: certificate expired on")
    with pytest.raises(GovTalkFault) as info:
        await Authenticator([]).authenticate_tls(alice.der, env, CLASS)
    assert info.value.first.number == 1046
