"""W3Csigned: envelopes authenticated by an XML signature over their Body.

Only what the signature covers is trusted. Reference-by-Id is open to signature wrapping (the
signed Body moved elsewhere, a forged Body in its place), so the referenced element must be THE
envelope Body, unique by Id, and the content signxml verified must equal the Body the hub reads.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Callable
from datetime import datetime

import structlog
from cryptography import x509
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from connectors.protocol import Identity
from gateway.clock import utcnow
from gateway.govtalk.errors import GovTalkFault
from gateway.govtalk.model import DSIG_NS, ENVELOPE_NS, Authentication, AuthMethod, Envelope
from gateway.identity import citizens
from gateway.identity.authenticate import check_sender
from gateway.identity.certificates import (
    CertificateRefused,
    CertificateValidator,
    ValidatedCertificate,
    registered_user,
)
from gateway.identity.replay import ReplayStore
from gateway.store.engine import Database

log = structlog.get_logger("gateway.signatures")

# Verifying a large document costs ~100 ms of CPU per MB: above this it leaves the event loop.
THREAD_THRESHOLD = 64 * 1024
BODY_ID = "Body"
_E = f"{{{ENVELOPE_NS}}}"
_DS = {"ds": DSIG_NS}
# Where the one Signature the hub acts on must sit; signxml is pinned to this location too.
SIGNATURE_PARENT = f"./{_E}Header/{_E}SenderDetails/{_E}IDAuthentication/{_E}Authentication/"
_ID_XPATH = etree.XPath(
    "//*[@*[local-name()='Id' or local-name()='ID' or local-name()='id'] = $id]"
)


class _NotVerified(Exception):
    """signxml refused the signature; the message says why."""


def _never(_class: str) -> bool:
    return False


def _c14n(el: etree._Element) -> bytes:
    """Exclusive canonical form without comments: equal bytes mean equal signed content."""
    return etree.tostring(el, method="c14n", exclusive=True, with_comments=False)


def _is_sha1(algorithm: str | None) -> bool:
    return algorithm is not None and "sha1" in algorithm.lower()


class SignedEnvelopeBackend:
    """Authenticates W3Csigned envelopes: a valid signature over the Body by a registered cert."""

    methods = frozenset({AuthMethod.W3CSIGNED.value})

    def __init__(
        self,
        db: Database,
        validator: CertificateValidator,
        replay: ReplayStore,
        *,
        allow_sha1: Callable[[str], bool] = _never,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._validator = validator
        self._replay = replay
        self._allow_sha1 = allow_sha1
        self._clock = clock

    async def authenticate(self, envelope: Envelope, auth: Authentication, class_: str) -> Identity:
        if (auth.value is not None and auth.value.strip()) or auth.signature is None:
            raise GovTalkFault.of(
                1040, "Method W3Csigned requires a Signature and no Value", class_=class_
            )
        signature = auth.signature

        def refuse(reason: str) -> GovTalkFault:
            return GovTalkFault.of(1002, f"Authentication failure: {reason}", class_=class_)

        if envelope.document is None:
            raise refuse("the envelope was not received as a document")
        root = envelope.document.getroot()
        if root.find(SIGNATURE_PARENT + "ds:Signature", _DS) is not signature:
            raise refuse("the Signature is not the first one in IDAuthentication/Authentication")
        uri, sha1 = self._inspect(signature, class_, refuse)
        body = self._the_body(root, envelope, uri, refuse)
        leaf_der, untrusted = _certificates(signature, refuse)
        try:
            signer = await self._validator.validate(leaf_der, untrusted)
        except CertificateRefused as exc:
            raise refuse(f"signer certificate refused: {exc.reason}") from None

        data = etree.tostring(root)
        try:
            if len(data) > THREAD_THRESHOLD:
                signed = await asyncio.to_thread(self._verify, data, signer, sha1)
            else:
                signed = self._verify(data, signer, sha1)
        except _NotVerified as exc:
            raise refuse(f"the signature does not verify ({exc})") from None
        covered = signed if uri else signed.find(f"{_E}Body")
        body_c14n = _c14n(body)
        if covered is None or _c14n(covered) != body_c14n:
            raise refuse("signature does not cover the envelope Body")
        if sha1:
            log.warning("sha1_signature_accepted", class_=class_, signer=signer.subject)

        user_id = await registered_user(self._db, signer.fingerprint)
        if user_id is None:
            raise GovTalkFault.of(
                1046, "certificate not registered to any Gateway user", class_=class_
            )
        check_sender(envelope, user_id, "signing", class_)
        value = signature.findtext("ds:SignatureValue", namespaces=_DS) or ""
        digests = [
            hashlib.sha256("".join(value.split()).encode("ascii", "replace")).hexdigest(),
            hashlib.sha256(body_c14n).hexdigest(),
        ]
        # Recorded last, so a refused envelope cannot spend the digests of a genuine one.
        if await self._replay.seen_or_record(digests):
            raise refuse("signature replayed")
        return Identity(
            user_id=user_id,
            auth_method=AuthMethod.W3CSIGNED.value,
            auth_level=2,
            enrolments=await citizens.enrolments(self._db, user_id),
        )

    def _inspect(
        self, signature: etree._Element, class_: str, refuse: Callable[[str], GovTalkFault]
    ) -> tuple[str, bool]:
        """The single Reference URI and whether SHA-1 is used (refused unless allowed)."""
        refs = signature.findall("ds:SignedInfo/ds:Reference", _DS)
        if len(refs) != 1:
            raise refuse(f"the signature must have exactly one Reference, found {len(refs)}")
        uri = refs[0].get("URI")
        if uri not in (f"#{BODY_ID}", ""):
            raise refuse(f'the signature Reference must be "#{BODY_ID}" or "", not {uri!r}')
        algorithms = [
            signature.find("ds:SignedInfo/ds:SignatureMethod", _DS),
            refs[0].find("ds:DigestMethod", _DS),
        ]
        sha1 = any(_is_sha1(el.get("Algorithm")) for el in algorithms if el is not None)
        if sha1 and not self._allow_sha1(class_):
            raise refuse(f"SHA-1 signatures are not accepted for class {class_}")
        return uri, sha1

    @staticmethod
    def _the_body(
        root: etree._Element,
        envelope: Envelope,
        uri: str,
        refuse: Callable[[str], GovTalkFault],
    ) -> etree._Element:
        """The envelope Body, checked to be the element the Reference names and the hub reads."""
        bodies = list(root.iterchildren(f"{_E}Body"))
        if len(bodies) != 1:
            raise refuse("the envelope must have exactly one Body")
        body = bodies[0]
        if uri:
            named = _ID_XPATH(root, id=BODY_ID)
            if not isinstance(named, list) or named != [body]:
                raise refuse(
                    "signature does not cover the envelope Body "
                    f'(Id "{BODY_ID}" must name the envelope Body and nothing else)'
                )
        payload = envelope.body
        if payload is not None and payload is not body and payload.getparent() is not body:
            raise refuse("signature does not cover the envelope Body")
        return body

    def _verify(self, data: bytes, signer: ValidatedCertificate, sha1: bool) -> etree._Element:
        """signxml's signed_xml: the content the signature covers, and only that."""
        methods = frozenset(
            m
            for m in SignatureMethod
            if not m.name.startswith("HMAC") and (sha1 or "SHA1" not in m.name)
        )
        digests = frozenset(d for d in DigestAlgorithm if sha1 or "SHA1" not in d.name)
        config = SignatureConfiguration(
            location=SIGNATURE_PARENT,
            expect_references=1,
            signature_methods=methods,
            digest_algorithms=digests,
            verification_time=self._clock(),
        )
        try:
            # x509_cert pins the certificate CertificateValidator already checked against OUR
            # anchors: signxml then neither builds a chain nor consults the system store.
            result = XMLVerifier().verify(data, x509_cert=signer.certificate, expect_config=config)
        except (SignXMLException, etree.LxmlError, ValueError) as exc:
            raise _NotVerified(str(exc) or type(exc).__name__) from None
        if not isinstance(result, VerifyResult) or result.signed_xml is None:
            raise _NotVerified("the signed content is not XML")
        signed: etree._Element = result.signed_xml
        return signed


def _certificates(
    signature: etree._Element, refuse: Callable[[str], GovTalkFault]
) -> tuple[bytes, list[x509.Certificate]]:
    """The signer's DER (the first X509Certificate) and any further certificates sent along."""
    texts = [
        el.text or "" for el in signature.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _DS)
    ]
    if not texts:
        raise refuse("the signature carries no KeyInfo/X509Data/X509Certificate")
    try:
        ders = [base64.b64decode("".join(t.split()), validate=True) for t in texts]
        untrusted = [x509.load_der_x509_certificate(d) for d in ders[1:]]
    except (binascii.Error, ValueError):
        raise refuse("the signature's X509Certificate is not a valid certificate") from None
    return ders[0], untrusted
