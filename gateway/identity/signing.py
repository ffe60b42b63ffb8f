"""Sign a GovTalk envelope the W3Csigned way, for the hub's own tooling and tests."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import XMLSigner

from gateway.govtalk.model import DSIG_NS, ENVELOPE_NS, AuthMethod
from gateway.govtalk.parse import parse_xml

_E = f"{{{ENVELOPE_NS}}}"


class _LegacySigner(XMLSigner):
    """signxml refuses to create SHA-1 signatures; tests of the SHA-1 policy need them."""

    def check_deprecated_methods(self) -> None:
        return None


def _child(parent: etree._Element, name: str, *, after: tuple[str, ...] = ()) -> etree._Element:
    """The envelope-namespace child, created after the named siblings if missing."""
    found = parent.find(_E + name)
    if found is not None:
        return found
    el = etree.Element(_E + name)
    index = 0
    for i, sibling in enumerate(parent):
        if isinstance(sibling.tag, str) and etree.QName(sibling).localname in after:
            index = i + 1
    parent.insert(index, el)
    return el


def sign_envelope(
    envelope_xml: bytes, cert_pem: bytes, key_pem: bytes, *, sha1: bool = False
) -> bytes:
    """The envelope with Id="Body" on its Body and a W3Csigned Authentication signing it."""
    root = parse_xml(envelope_xml, what="envelope")
    body = root.getroot().find(_E + "Body")
    if body is None:
        raise ValueError("the envelope has no Body to sign")
    body.set("Id", "Body")

    header = _child(root.getroot(), "Header", after=("EnvelopeVersion",))
    sender = _child(header, "SenderDetails", after=("MessageDetails",))
    id_auth = _child(sender, "IDAuthentication")
    auth = _child(id_auth, "Authentication", after=("SenderID",))
    _child(auth, "Method").text = AuthMethod.W3CSIGNED.value
    for el in list(auth):
        if el.tag == _E + "Value" or (
            isinstance(el.tag, str) and etree.QName(el).namespace == DSIG_NS
        ):
            auth.remove(el)

    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        method = SignatureMethod.ECDSA_SHA1 if sha1 else SignatureMethod.ECDSA_SHA256
    elif isinstance(key, rsa.RSAPrivateKey):
        method = SignatureMethod.RSA_SHA1 if sha1 else SignatureMethod.RSA_SHA256
    else:
        raise ValueError(f"unsupported signing key type {type(key).__name__}")
    signer_cls = _LegacySigner if sha1 else XMLSigner
    signer = signer_cls(
        method=SignatureConstructionMethod.detached,
        signature_algorithm=method,
        digest_algorithm=DigestAlgorithm.SHA1 if sha1 else DigestAlgorithm.SHA256,
        # Exclusive c14n: the detached Signature's SignedInfo canonicalises the same once it
        # sits inside the envelope, whose default namespace inclusive c14n would pull in.
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    kwargs: dict[str, Any] = {"key": key, "cert": [cert], "reference_uri": "#Body"}
    signature = signer.sign(root.getroot(), **kwargs)
    auth.append(signature)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
