"""The corpus of attacks on the hub, each with the refusal it must get.

One entry: a name, a category, how to build the request (from a `Context` that can sign
envelopes, sign in to the hub's OpenID provider, send mail and take payments, all over the hub's
own HTTP interfaces), and the refusal expected. The refusal names the audit event that must be
written for it: `dsp.refused` for GovTalk errors, `api.refused` for problem+json, `sso.refused`
for OAuth errors.

A defect found and not yet fixed carries `bug="BUG: ..."`: its test is a strict xfail, so the fix
shows up as a pass that must have the marker removed.

What is deliberately not here, because tests elsewhere already send it to a running hub:
tests/hub/test_hostile.py (internal-subset XXE, 4-level entity expansion, 300-deep Body, not XML,
empty, wrong namespace, invalid UTF-8 in TransactionID, oversized and chunked bodies, gzip bomb),
tests/hub/test_identity_e2e.py (an identical signed envelope replayed, a tampered signed Body,
Value with W3Csigned), tests/sso/test_oidc.py (tokens at /sso/userinfo: tampered, alg none,
HS256 keyed with the public key, foreign kid, stranger's signature under the hub's kid, ID token,
other audience, expired by the clock; code and client-assertion replay).
"""

from __future__ import annotations

import base64
import copy
import functools
import gzip
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree
from lxml import html as lxml_html

from gateway.demo import SEDGEMOOR, SUNDERLAND, certificate_paths, citizens_list
from gateway.identity.signing import sign_envelope
from gateway.web.keys import SSO
from tests.hostile.harness import SED, SUN, VIEW, Answer, ThreadedHub, view_submission
from tests.hub import wire

MOV = citizens_list()[2]
assert MOV.user_id == "DEMO0MOV0001"

ENV = "http://www.govtalk.gov.uk/CM/envelope"
E = f"{{{ENV}}}"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
REDIRECT_URI = "http://127.0.0.1:9/callback"
COUNCIL_TOKENS = {SUNDERLAND: "hostile-sunderland-token", SEDGEMOOR: "hostile-sedgemoor-token"}
# The hub the corpus runs against: small enough a body cap that oversized bodies stay cheap.
MAX_BODY = 256 * 1024
CONFIG: dict[str, Any] = {
    "server": {"max_body_bytes": MAX_BODY},
    "payments": {"api_tokens": COUNCIL_TOKENS},
}

SQL = "' OR '1'='1' --"
SQL_UNION = "x' UNION SELECT user_id, password_hash FROM citizens --"
SQL_STACKED = "1; DROP TABLE submissions; --"
XPATH = "' or 1=1 or ''='"
XPATH_UNION = '"] | //* | foo["'

# What no refusal may ever carry unless the request itself did.
SECRETS = (
    "root:x:0:0",
    "PRIVATE KEY",
    "Traceback",
    "sqlite3.",
    "OperationalError",
    "password_hash",
    *(c.password for c in citizens_list()),
    *(e.account_ref for e in SED.enrolments),
    *(e.account_ref for e in MOV.enrolments),
)


# --- requests and refusals -------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GovTalkRefusal:
    """HTTP 200, a GovTalk error reply with this first Number, and `dsp.refused` with it."""

    number: int
    text: str = ""  # a fragment the first Error/Text must contain (case-insensitive)
    audit_event: str = "dsp.refused"

    def check(self, answer: Answer) -> None:
        assert answer.status == 200, (answer.status, answer.body[:300])
        assert answer.content_type == "text/xml", answer.headers
        reply = answer.govtalk()
        assert reply.qualifier == "error", reply.raw[:500]
        assert reply.error_number == self.number, reply.errors
        first = reply.errors[0]
        assert first["raised_by"] and first["type"], first
        assert self.text.lower() in first["text"].lower(), first["text"]
        # Real clients dereference these on every reply (reference §9).
        assert reply.function and reply.endpoint and reply.poll_interval >= 0

    def check_audit(self, records: Sequence[Mapping[str, Any]]) -> None:
        refused = [r for r in records if r["event"] == self.audit_event]
        assert refused, records
        assert refused[0]["outcome"] == "refused"
        assert refused[0]["detail"]["number"] == self.number, refused
        assert not [r for r in records if r["event"] == "dsp.received"], records

    def describe(self) -> str:
        return f"GovTalk {self.number}"


@dataclass(frozen=True)
class ProblemRefusal:
    """A problem+json 4xx (RFC 9457) with this status, and `api.refused` with it."""

    status: int
    detail: str = ""
    audit_event: str = "api.refused"

    def check(self, answer: Answer) -> None:
        assert answer.status == self.status, (answer.status, answer.body[:300])
        assert answer.content_type == "application/problem+json", answer.headers
        body = answer.json()
        assert body["status"] == self.status and body["title"], body
        assert self.detail.lower() in str(body.get("detail", "")).lower(), body

    def check_audit(self, records: Sequence[Mapping[str, Any]]) -> None:
        refused = [r for r in records if r["event"] == self.audit_event]
        assert refused, records
        assert refused[0]["outcome"] == "refused"
        assert refused[0]["detail"]["status"] == self.status, refused

    def describe(self) -> str:
        return f"problem+json {self.status}"


@dataclass(frozen=True)
class OAuthRefusal:
    """An RFC 6749/6750 error answer (JSON `error`), and `sso.refused` with it."""

    status: int
    error: str
    description: str = ""
    audit_event: str = "sso.refused"

    def check(self, answer: Answer) -> None:
        assert answer.status == self.status, (answer.status, answer.body[:300])
        assert answer.content_type == "application/json", answer.headers
        body = answer.json()
        assert body["error"] == self.error, body
        assert self.description.lower() in body["error_description"].lower(), body
        assert answer.headers.get("Cache-Control") == "no-store"
        if self.error == "invalid_token":
            assert answer.headers.get("WWW-Authenticate", "").startswith("Bearer "), answer.headers

    def check_audit(self, records: Sequence[Mapping[str, Any]]) -> None:
        refused = [r for r in records if r["event"] == self.audit_event]
        assert refused, records
        assert refused[0]["outcome"] == "refused"
        assert refused[0]["detail"]["error"] == self.error, refused
        assert refused[0]["detail"]["status"] == self.status, refused

    def describe(self) -> str:
        return f"{self.status} {self.error}"


@dataclass(frozen=True)
class PageRefusal:
    """An HTML page refusal (the hosted payment page), audited as a refusal of some kind."""

    status: int

    def check(self, answer: Answer) -> None:
        assert answer.status == self.status, (answer.status, answer.body[:300])
        assert answer.content_type == "text/html", answer.headers

    def check_audit(self, records: Sequence[Mapping[str, Any]]) -> None:
        assert [r for r in records if r["outcome"] == "refused"], records

    def describe(self) -> str:
        return f"HTML {self.status}"

    @property
    def audit_event(self) -> str:
        return "(any refusal)"


Refusal = GovTalkRefusal | ProblemRefusal | OAuthRefusal | PageRefusal


@dataclass(frozen=True)
class Attack:
    name: str
    category: str
    build: Callable[[Context], Request]
    expect: Refusal
    bug: str | None = None  # "BUG: ..." marks a strict xfail: the hub does not do this yet
    extra: Callable[[Answer], None] | None = None  # a further check on the answer


# --- the context: real identifiers, signatures and tokens, obtained over HTTP ----------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def basic(user_id: str, password: str) -> dict[str, str]:
    raw = f"{user_id}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def as_citizen(citizen: Any) -> dict[str, str]:
    return basic(citizen.user_id, citizen.password)


class Context:
    """What attacks are built from, fetched from the running hub the way a client would."""

    def __init__(self, hub: ThreadedHub) -> None:
        self.hub = hub
        self._unique = itertools.count(1)

    # -- signed envelopes ---------------------------------------------------------------------

    def unique(self) -> int:
        return next(self._unique)

    def unsigned(self, citizen: Any = SUN, *, sender: str | None = None) -> bytes:
        """A View submission without credentials, its Body made unique (a fresh document: the
        example body is the same every time, and a signed Body is remembered against replay)."""
        n = self.unique()
        xml = view_submission(citizen, user=sender, password="", transaction_id=f"{n:04X}")
        return xml.replace("<Body>", "<Body>" + "\n" + " " * n, 1).encode()

    def sign(self, xml: bytes, signer: Any = SUN, *, sha1: bool = False) -> bytes:
        assert self.hub.config is not None
        cert, key = certificate_paths(self.hub.config, signer.user_id)
        return sign_envelope(xml, cert.read_bytes(), key.read_bytes(), sha1=sha1)

    def signed(self, citizen: Any = SUN, **kw: Any) -> bytes:
        return self.sign(self.unsigned(citizen), **kw)

    def certificate_der(self, citizen: Any) -> bytes:
        assert self.hub.config is not None
        cert, _ = certificate_paths(self.hub.config, citizen.user_id)
        pem = x509.load_pem_x509_certificate(cert.read_bytes())
        return pem.public_bytes(serialization.Encoding.DER)

    def accepted_signed(self) -> bytes:
        """A signed envelope the hub has just accepted (so its signature is on record)."""
        signed = self.signed()
        reply = self.hub.dsp(signed)
        assert reply.qualifier == "acknowledgement", reply.errors
        return signed

    # -- submissions --------------------------------------------------------------------------

    @functools.cached_property
    def correlation_id(self) -> str:
        """A real, acknowledged CorrelationID of the citizen SUN's."""
        reply = self.hub.dsp(view_submission(SUN, transaction_id="C0FFEE"))
        assert reply.qualifier == "acknowledgement" and reply.correlation_id, reply.errors
        return reply.correlation_id

    # -- single sign-on -----------------------------------------------------------------------

    @functools.cached_property
    def portal(self) -> tuple[str, str]:
        """A council portal registered through the admin API: (client_id, client_secret)."""
        body = {
            "client_name": "Hostile corpus portal",
            "organisation": SUNDERLAND,
            "redirect_uris": [REDIRECT_URI],
            "token_endpoint_auth_method": "client_secret_basic",
        }
        answer = self.hub.request(
            "POST", "/admin/sso/clients", json.dumps(body), {"Content-Type": "application/json"}
        )
        assert answer.status == 201, answer.body
        data = answer.json()
        return data["client_id"], data["client_secret"]

    def sign_in(self, citizen: Any = SUN, scope: str = "openid profile gateway") -> dict[str, Any]:
        """Sign in at /sso/authorize with a password and exchange the code: the token answer."""
        client_id, secret = self.portal
        verifier = secrets.token_urlsafe(48)
        params = {
            "client_id": client_id,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": scope,
            "state": "s",
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
            "prompt": "login",
        }
        with httpx.Client(base_url=self.hub.url, follow_redirects=False, timeout=30) as http:
            page = http.get("/sso/authorize", params=params)
            assert page.status_code == 200, page.text
            form = lxml_html.fromstring(page.text).get_element_by_id("password-form")
            data = {i.get("name"): i.get("value") or "" for i in form.inputs if i.get("name")}
            data.update(user_id=citizen.user_id, password=citizen.password)
            signed_in = http.post("/sso/authorize", data=data)
            assert signed_in.status_code == 303, signed_in.text
            code = parse_qs(urlsplit(signed_in.headers["Location"]).query)["code"][0]
            answer = http.post(
                "/sso/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": verifier,
                },
                auth=(client_id, secret),
            )
            assert answer.status_code == 200, answer.text
            tokens: dict[str, Any] = answer.json()
        if "gateway" not in scope.split():
            return tokens
        # The genuine token works at the API: what the forgeries below are refused against.
        works = self.hub.request(
            "GET", "/api/enrolments", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert works.status == 200 and works.json()["user_id"] == citizen.user_id, works.body
        return tokens

    @functools.cached_property
    def tokens(self) -> dict[str, Any]:
        return self.sign_in()

    @property
    def access_claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            self.tokens["access_token"], options={"verify_signature": False}
        )
        return claims

    @property
    def hub_kid(self) -> str:
        return str(jwt.get_unverified_header(self.tokens["access_token"])["kid"])

    def hub_public_pem(self) -> bytes:
        """The hub's published signing key (from /sso/jwks), as PEM."""
        keys = self.hub.request("GET", "/sso/jwks").json()["keys"]
        jwk = next(k for k in keys if k["kid"] == self.hub_kid)
        public = jwt.PyJWK(jwk).key
        return bytes(
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def hub_signed(self, **changes: Any) -> str:
        """The genuine access token's claims, changed, signed with the hub's own key."""
        assert self.hub.app is not None
        claims = dict(self.access_claims, **changes)
        return str(self.hub.app[SSO].keyring.sign(claims, "at+jwt"))

    def stranger_signed(self, **header: Any) -> str:
        stranger = ec.generate_private_key(ec.SECP256R1())
        return jwt.encode(self.access_claims, stranger, algorithm="ES256", headers=header)

    # -- mail, payments, enrolments, journeys ----------------------------------------------

    def mail_to(self, citizen: Any) -> str:
        """A message a council sends the citizen; the id is checked to be in their mailbox."""
        enrolment = citizen.enrolments[0]
        body = {
            "class": VIEW,
            "key_type": "CTaxAccountRef",
            "key_value": enrolment.account_ref,
            "subject": "Your Council Tax bill",
            "body": f"Private to {citizen.user_id}: account {enrolment.account_ref}.",
            "sender_message_id": f"hostile-{secrets.token_hex(6)}",
        }
        sent = self.hub.request(
            "POST",
            "/api/council/mail",
            json.dumps(body),
            {"Content-Type": "application/json", "X-Council": enrolment.organisation},
        )
        assert sent.status == 201, sent.body
        message_id = str(sent.json()["id"])
        box = self.hub.request("GET", "/api/mail", headers=as_citizen(citizen))
        assert message_id in {m["id"] for m in box.json()["messages"]}, box.body
        return message_id

    def payment(self, council: str) -> str:
        body = {
            "amount": 12345,
            "reference": "CTAX-HOSTILE",
            "council": council,
            "description": "Council Tax",
            "return_url": "https://council.example/paid",
        }
        made = self.hub.request(
            "POST",
            "/api/payments",
            json.dumps(body),
            {
                "Content-Type": "application/json",
                "Authorization": f"Bearer {COUNCIL_TOKENS[council]}",
            },
        )
        assert made.status == 201, made.body
        payment_id = str(made.json()["payment_id"])
        own = self.hub.request(
            "GET",
            f"/api/payments/{payment_id}",
            headers={"Authorization": f"Bearer {COUNCIL_TOKENS[council]}"},
        )
        assert own.status == 200, own.body
        return payment_id

    def enrolment_ids(self, citizen: Any) -> list[int]:
        mine = self.hub.request("GET", "/api/enrolments", headers=as_citizen(citizen))
        assert mine.status == 200, mine.body
        return [int(e["id"]) for e in mine.json()["enrolments"]]

    @functools.cached_property
    def movers_journey(self) -> str:
        """A change-of-address journey the citizen MOV started; MOV can read it."""
        from tests.journeys.test_change_of_address import request as move_request

        started = self.hub.request(
            "POST",
            "/api/journeys/change-of-address",
            json.dumps(move_request()),
            {"Content-Type": "application/json", **as_citizen(MOV)},
        )
        assert started.status == 202, started.body
        journey_id = str(started.json()["id"])
        own = self.hub.request("GET", f"/api/journeys/{journey_id}", headers=as_citizen(MOV))
        assert own.status == 200, own.body
        return journey_id


# --- builders ----------------------------------------------------------------------------------


def xml_post(xml: str | bytes | Callable[[Context], str | bytes], path: str = "/submission",
             **headers: str) -> Callable[[Context], Request]:  # fmt: skip
    def build(ctx: Context) -> Request:
        data = xml(ctx) if callable(xml) else xml
        body = data.encode("utf-8") if isinstance(data, str) else data
        return Request("POST", path, body, {"Content-Type": "text/xml", **headers})

    return build


def call(method: str, path: str | Callable[[Context], str], body: Any = None,
         headers: Mapping[str, str] | Callable[[Context], Mapping[str, str]] | None = None,
         *, raw: bytes | None = None, content_type: str = "application/json",
         ) -> Callable[[Context], Request]:  # fmt: skip
    def build(ctx: Context) -> Request:
        sent = {"Content-Type": content_type} if (body is not None or raw is not None) else {}
        sent.update(headers(ctx) if callable(headers) else (headers or {}))
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        return Request(method, path(ctx) if callable(path) else path, data, sent)

    return build


def bearer(token: Callable[[Context], str]) -> Callable[[Context], Mapping[str, str]]:
    return lambda ctx: {"Authorization": f"Bearer {token(ctx)}"}


def prolog_free(xml: str) -> str:
    return xml.split("?>", 1)[1]


def view(**overrides: Any) -> str:
    return view_submission(SUN, **overrides)


def with_pre_root(pre: str) -> str:
    return '<?xml version="1.0"?>' + pre + prolog_free(view())


def deep(depth: int, where: str = "<Body>") -> str:
    return (
        view()
        .replace(where, where + "<n>" * depth, 1)
        .replace("</Body>", "</n>" * depth + "</Body>")
    )


def body_bytes(transform: Callable[[bytes], bytes]) -> Callable[[Context], bytes]:
    return lambda ctx: transform(view().encode())


def role(value: bytes) -> Callable[[Context], bytes]:
    return body_bytes(lambda b: b.replace(b"<Role>principal", b"<Role>" + value + b"principal", 1))


# -- signature wrapping and replay -------------------------------------------------------------


def tree_edit(edit: Callable[[etree._Element, Context], None]) -> Callable[[Context], bytes]:
    def build(ctx: Context) -> bytes:
        root = etree.fromstring(ctx.signed())
        edit(root, ctx)
        return etree.tostring(root)

    return build


def _signature(root: etree._Element) -> etree._Element:
    found = root.find(f".//{DS}Signature")
    assert found is not None
    return found


def wrap_into_gateway_additions(root: etree._Element, ctx: Context) -> None:
    """The signed Body moved into GatewayAdditions, a forged Body (no Id) where the hub reads."""
    body = root.find(E + "Body")
    details = root.find(E + "GovTalkDetails")
    assert body is not None and details is not None
    forged = copy.deepcopy(body)
    forged.attrib.pop("Id")
    account = forged.find(".//{urn:govtalk-hub:la:ctax:view:v1}AccountRef")
    assert account is not None
    account.text = SED.enrolments[0].account_ref
    etree.SubElement(details, E + "GatewayAdditions").append(copy.deepcopy(body))
    root.remove(body)
    root.append(forged)


def second_id_inside_payload(root: etree._Element, ctx: Context) -> None:
    body = root.find(E + "Body")
    assert body is not None
    body[0].set("Id", "Body")


def two_references(root: etree._Element, ctx: Context) -> None:
    reference = _signature(root).find(f"{DS}SignedInfo/{DS}Reference")
    assert reference is not None
    reference.addnext(copy.deepcopy(reference))


def reference_uri(uri: str) -> Callable[[etree._Element, Context], None]:
    def edit(root: etree._Element, ctx: Context) -> None:
        reference = _signature(root).find(f"{DS}SignedInfo/{DS}Reference")
        assert reference is not None
        reference.set("URI", uri)

    return edit


def signature_out_of_authentication(root: etree._Element, ctx: Context) -> None:
    signature = _signature(root)
    parent = signature.getparent()
    details = root.find(E + "GovTalkDetails")
    assert parent is not None and details is not None
    parent.remove(signature)
    etree.SubElement(details, E + "GatewayAdditions").append(signature)


def certificate(der: Callable[[Context], bytes] | bytes | None):  # type: ignore[no-untyped-def]
    """Replace the signer's X509Certificate (None: drop KeyInfo altogether)."""

    def edit(root: etree._Element, ctx: Context) -> None:
        signature = _signature(root)
        key_info = signature.find(f"{DS}KeyInfo")
        assert key_info is not None
        if der is None:
            signature.remove(key_info)
            return
        value = der(ctx) if callable(der) else der
        cert = key_info.find(f"{DS}X509Data/{DS}X509Certificate")
        assert cert is not None
        cert.text = base64.b64encode(value).decode() if value else "!!not base64!!"

    return edit


def sender_id(user_id: str) -> Callable[[etree._Element, Context], None]:
    def edit(root: etree._Element, ctx: Context) -> None:
        id_auth = root.find(f"{E}Header/{E}SenderDetails/{E}IDAuthentication")
        assert id_auth is not None
        sender = etree.Element(E + "SenderID")
        sender.text = user_id
        id_auth.insert(0, sender)

    return edit


def transplanted(ctx: Context) -> bytes:
    """An accepted signature and its Body under a new header (new TransactionID, GatewayTest)."""
    signed = ctx.accepted_signed()
    out = re.sub(
        rb"<TransactionID>[0-9A-F]*</TransactionID>", b"<TransactionID>BEEF</TransactionID>", signed
    )
    assert out != signed
    return out


def grafted_onto_another_body(ctx: Context) -> bytes:
    """A valid signature block lifted from one envelope onto another citizen's Body."""
    donor = _signature(etree.fromstring(ctx.signed()))
    root = etree.fromstring(ctx.unsigned(SED))
    body = root.find(E + "Body")
    header = root.find(E + "Header")
    assert body is not None and header is not None
    body.set("Id", "Body")
    auth = etree.SubElement(
        etree.SubElement(etree.SubElement(header, E + "SenderDetails"), E + "IDAuthentication"),
        E + "Authentication",
    )
    etree.SubElement(auth, E + "Method").text = "W3Csigned"
    etree.SubElement(auth, E + "Role").text = "principal"
    auth.append(copy.deepcopy(donor))
    return etree.tostring(root)


@functools.cache
def self_signed_certificate() -> tuple[bytes, bytes]:
    """A certificate no CA issued, naming a demo citizen: (cert PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SUN.user_id)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def self_signed(ctx: Context) -> bytes:
    cert, key = self_signed_certificate()
    return sign_envelope(ctx.unsigned(), cert, key)


# -- tokens ---------------------------------------------------------------------------------------


def alg_none(alg: str) -> Callable[[Context], str]:
    def token(ctx: Context) -> str:
        head = {"alg": alg, "typ": "at+jwt", "kid": ctx.hub_kid}
        body = json.dumps(ctx.access_claims).encode()
        return f"{b64url(json.dumps(head).encode())}.{b64url(body)}."

    return token


def hs256_with_public_key(ctx: Context) -> str:
    head = b64url(json.dumps({"alg": "HS256", "typ": "at+jwt", "kid": ctx.hub_kid}).encode())
    body = b64url(json.dumps(ctx.access_claims).encode())
    mac = hmac.new(ctx.hub_public_pem(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(mac)}"


def after_sign_out(ctx: Context) -> str:
    """A genuine access token whose sign-in has since ended (the portal asked, by id_token_hint)."""
    tokens = ctx.sign_in()
    out = ctx.hub.request("GET", f"/sso/logout?id_token_hint={tokens['id_token']}")
    assert out.status == 200, out.body
    return str(tokens["access_token"])


def size_stated_is_over_the_cap(answer: Answer) -> None:
    """A 2001 that names the document's size must name one over the cap."""
    text = answer.govtalk().errors[0]["text"]
    stated = re.search(r"\((\d+) bytes\)", text)
    assert stated is None or int(stated.group(1)) > MAX_BODY, text


def now() -> int:
    return int(time.time())


# --- the corpus ------------------------------------------------------------------------------

_DOCTYPE = "A DOCTYPE is not allowed"
_API_PATHS = ("/api/enrolments", "/api/mail", "/sso/userinfo")


def _corpus() -> list[Attack]:
    a: list[Attack] = []

    def add(name: str, category: str, build: Callable[[Context], Request], expect: Refusal,
            bug: str | None = None, extra: Callable[[Answer], None] | None = None,
            ) -> None:  # fmt: skip
        a.append(Attack(name, category, build, expect, bug, extra))

    # -- XXE, external DTDs, DOCTYPE in any form ---------------------------------------------
    cat = "doctype"
    add(
        "external_dtd_system",
        cat,
        xml_post(with_pre_root('<!DOCTYPE GovTalkMessage SYSTEM "http://127.0.0.1:9/evil.dtd">')),
        GovTalkRefusal(1001, _DOCTYPE),
    )
    add(
        "external_dtd_public",
        cat,
        xml_post(
            with_pre_root(
                '<!DOCTYPE GovTalkMessage PUBLIC "-//Evil//DTD//EN" "file:///etc/passwd">'
            )
        ),
        GovTalkRefusal(1001, _DOCTYPE),
    )
    add(
        "xxe_parameter_entity",
        cat,
        xml_post(with_pre_root('<!DOCTYPE g [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>')),
        GovTalkRefusal(1001, _DOCTYPE),
    )
    add(
        "xxe_in_body_payload",
        cat,
        xml_post(
            '<?xml version="1.0"?><!DOCTYPE GovTalkMessage [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            + prolog_free(view()).replace("<AccountRef>", "<AccountRef>&x;")
        ),
        GovTalkRefusal(1001, _DOCTYPE),
    )
    add(
        "doctype_bare",
        cat,
        xml_post(with_pre_root("<!DOCTYPE GovTalkMessage>")),
        GovTalkRefusal(1001, _DOCTYPE),
    )
    add(
        "doctype_after_utf8_bom",
        cat,
        xml_post(b"\xef\xbb\xbf<!DOCTYPE GovTalkMessage>" + prolog_free(view()).encode()),
        GovTalkRefusal(1001, _DOCTYPE),
    )
    add(
        "doctype_behind_prolog_comment",
        cat,
        xml_post(
            with_pre_root('<!-- <a --><!DOCTYPE g [<!ENTITY x SYSTEM "file:///etc/passwd">]>')
        ),
        GovTalkRefusal(1001, _DOCTYPE),
    )
    add(
        "doctype_in_utf16",
        cat,
        xml_post(
            (
                '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE GovTalkMessage>'
                + prolog_free(view())
            ).encode("utf-16")
        ),
        GovTalkRefusal(1001, _DOCTYPE),
    )
    add(
        "doctype_lowercase",
        cat,
        xml_post(with_pre_root("<!doctype GovTalkMessage>")),
        GovTalkRefusal(1001, "not well-formed"),
    )
    add(
        "doctype_after_root",
        cat,
        xml_post(view() + "<!DOCTYPE x>"),
        GovTalkRefusal(1001, "not well-formed"),
    )
    add(
        "xinclude_of_a_local_file",
        cat,
        xml_post(
            view().replace(
                "<EnvelopeVersion>2.0</EnvelopeVersion>",
                '<EnvelopeVersion><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
                'href="file:///etc/passwd" parse="text"/></EnvelopeVersion>',
            )
        ),
        GovTalkRefusal(1001, "schema"),
    )

    # -- entity expansion ------------------------------------------------------------------------
    cat = "entities"
    add(
        "quadratic_blowup",
        cat,
        xml_post(
            with_pre_root('<!DOCTYPE g [<!ENTITY a "' + "x" * 50_000 + '">]>').replace(
                "<Role>principal", "<Role>" + "&a;" * 2000 + "principal"
            )
        ),
        GovTalkRefusal(1001, _DOCTYPE),
    )
    add(
        "billion_laughs_lol9",
        cat,
        xml_post(
            with_pre_root(
                "<!DOCTYPE g ["
                + '<!ENTITY l0 "lol">'
                + "".join(
                    f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
                )
                + "]>"
            ).replace("<Role>principal", "<Role>&l9;principal")
        ),
        GovTalkRefusal(1001, _DOCTYPE),
    )
    add(
        "undeclared_entity_reference",
        cat,
        xml_post(view().replace("<Role>principal", "<Role>&undeclared;principal")),
        GovTalkRefusal(1001, "not well-formed"),
    )

    # -- nesting ------------------------------------------------------------------------------------
    cat = "nesting"
    add("deep_10000_in_body", cat, xml_post(deep(10_000)), GovTalkRefusal(1001, "depth"))
    add(
        "deep_10000_bare",
        cat,
        xml_post("<a>" * 10_000 + "</a>" * 10_000),
        GovTalkRefusal(1001, "depth"),
    )
    add("deep_10000_unclosed", cat, xml_post("<a>" * 10_000), GovTalkRefusal(1001))
    add(
        "deep_64_inside_body",
        cat,
        xml_post(deep(64)),
        GovTalkRefusal(1001, "nested deeper than 64"),
    )

    # -- encodings ---------------------------------------------------------------------------------
    cat = "encoding"
    add(
        "utf8_overlong_slash",
        cat,
        xml_post(role(b"\xc0\xaf")),
        GovTalkRefusal(1001, "not well-formed"),
    )
    add(
        "utf8_lone_surrogate",
        cat,
        xml_post(role(b"\xed\xa0\x80")),
        GovTalkRefusal(1001, "not well-formed"),
    )
    add(
        "utf8_truncated_sequence",
        cat,
        xml_post(role(b"\xe2\x82")),
        GovTalkRefusal(1001, "not well-formed"),
    )
    add("nul_byte", cat, xml_post(role(b"\x00")), GovTalkRefusal(1001, "not well-formed"))
    add(
        "control_character_reference",
        cat,
        xml_post(role(b"&#1;")),
        GovTalkRefusal(1001, "not well-formed"),
    )
    add(
        "control_character_reference_xml11",
        cat,
        xml_post(
            view()
            .replace('version="1.0"', 'version="1.1"')
            .replace("<Role>principal", "<Role>&#1;principal")
        ),
        GovTalkRefusal(1001, "not well-formed"),
    )
    add(
        "declared_utf16_sent_utf8",
        cat,
        xml_post(view().replace('encoding="UTF-8"', 'encoding="UTF-16"')),
        GovTalkRefusal(1001, "not well-formed"),
    )
    add(
        "declared_unknown_encoding",
        cat,
        xml_post(view().replace('encoding="UTF-8"', 'encoding="x-no-such-charset"')),
        GovTalkRefusal(1001, "encoding"),
    )
    add(
        "declared_ebcdic",
        cat,
        xml_post(view().replace('encoding="UTF-8"', 'encoding="EBCDIC-US"')),
        GovTalkRefusal(1001, "encoding"),
    )
    add(
        "utf8_then_latin1_halfway",
        cat,
        xml_post(
            body_bytes(
                lambda b: b.replace(b"<Role>principal", "<Role>princip\u00e9l".encode("latin-1"))
            )
        ),
        GovTalkRefusal(1001, "not well-formed"),
    )

    # -- compression and size ---------------------------------------------------------------------
    cat = "size"
    add(
        "deflate_bomb",
        cat,
        lambda ctx: Request(
            "POST", "/submission", zlib.compress(b" " * 3_000_000), {"Content-Encoding": "deflate"}
        ),
        GovTalkRefusal(2001, f"larger than the {MAX_BODY} bytes"),
    )
    add(
        "gzip_bomb_text_states_a_size_over_the_limit",
        cat,
        lambda ctx: Request(
            "POST", "/submission", gzip.compress(b" " * 3_000_000), {"Content-Encoding": "gzip"}
        ),
        GovTalkRefusal(2001, "larger than"),
        extra=size_stated_is_over_the_cap,
    )
    add(
        "gzip_corrupt_stream",
        cat,
        lambda ctx: Request(
            "POST",
            "/submission",
            b"this is not gzip at all",
            {"Content-Encoding": "gzip", "Content-Type": "text/xml"},
        ),
        GovTalkRefusal(1001),
    )
    add(
        "gzip_truncated_stream",
        cat,
        lambda ctx: Request(
            "POST",
            "/submission",
            gzip.compress(view().encode())[:-12],
            {"Content-Encoding": "gzip", "Content-Type": "text/xml"},
        ),
        GovTalkRefusal(1001),
    )
    add(
        "brotli_unsupported_encoding",
        cat,
        lambda ctx: Request(
            "POST",
            "/submission",
            b"\x0b\x02\x80not really brotli",
            {"Content-Encoding": "br", "Content-Type": "text/xml"},
        ),
        GovTalkRefusal(1001),
    )
    add(
        "content_length_claims_100GB",
        cat,
        lambda ctx: Request("POST", "/submission", b"<", {"Content-Length": str(100 * 2**30)}),
        GovTalkRefusal(2001, f"larger than the {MAX_BODY} bytes"),
    )
    add(
        "poll_url_oversized",
        cat,
        xml_post(view().replace("</Body>", "<!--" + "x" * MAX_BODY + "--></Body>"), "/poll"),
        GovTalkRefusal(2001, "larger than"),
    )
    add(
        "json_registration_oversized",
        cat,
        call("POST", "/api/registrations", raw=b'{"password": "' + b"x" * MAX_BODY + b'"}'),
        ProblemRefusal(413),
    )
    add(
        "json_gzip_bomb",
        cat,
        call(
            "POST",
            "/api/payments",
            raw=gzip.compress(b'{"a": "' + b"x" * 3_000_000 + b'"}'),
            headers={"Content-Encoding": "gzip"},
        ),
        ProblemRefusal(413),
    )
    add(
        "token_form_oversized",
        cat,
        call(
            "POST",
            "/sso/token",
            raw=b"grant_type=" + b"x" * MAX_BODY,
            content_type="application/x-www-form-urlencoded",
        ),
        ProblemRefusal(413),
    )

    # -- namespaces and duplicates ---------------------------------------------------------------
    cat = "namespace"
    add(
        "missing_namespace",
        cat,
        xml_post(view().replace(' xmlns="http://www.govtalk.gov.uk/CM/envelope"', "")),
        GovTalkRefusal(1001, "no namespace"),
    )
    add(
        "header_in_a_foreign_namespace",
        cat,
        xml_post(view().replace("<Header>", '<Header xmlns="urn:evil">', 1)),
        GovTalkRefusal(1001, "schema"),
    )
    add(
        "envelope_namespace_with_trailing_slash",
        cat,
        xml_post(view().replace(ENV, ENV + "/", 1)),
        GovTalkRefusal(1001, "namespace"),
    )
    add(
        "dsig_element_that_is_not_a_signature",
        cat,
        xml_post(
            view().replace(
                "</Value></Authentication>",
                '</Value><ds:Object xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></Authentication>',
            )
        ),
        GovTalkRefusal(1001, "dsig"),
    )
    cat = "duplicates"
    add(
        "two_bodies",
        cat,
        xml_post(
            view().replace("</GovTalkMessage>", "<Body><X xmlns='urn:x'/></Body></GovTalkMessage>")
        ),
        GovTalkRefusal(1001, "Body"),
    )
    add(
        "two_headers",
        cat,
        xml_post(
            view().replace(
                "<GovTalkDetails>",
                "<Header><MessageDetails><Class>LA-CTAX-SPD</Class>"
                "<Qualifier>request</Qualifier></MessageDetails></Header><GovTalkDetails>",
            )
        ),
        GovTalkRefusal(1001, "Header"),
    )
    add(
        "two_classes",
        cat,
        xml_post(view().replace("<Qualifier>", "<Class>LA-CTAX-SPD</Class><Qualifier>")),
        GovTalkRefusal(1001, "Class"),
    )
    add(
        "two_correlation_ids",
        cat,
        xml_post(
            view().replace(
                "<CorrelationID></CorrelationID>",
                "<CorrelationID></CorrelationID><CorrelationID>" + "0" * 32 + "</CorrelationID>",
            )
        ),
        GovTalkRefusal(1001, "CorrelationID"),
    )
    add(
        "two_sender_ids",
        cat,
        xml_post(view().replace("<SenderID>", f"<SenderID>{SED.user_id}</SenderID><SenderID>")),
        GovTalkRefusal(1001, "SenderID"),
    )
    add(
        "two_payload_roots_in_body",
        cat,
        xml_post(
            view().replace(
                "</Body>", "<CTaxViewRequest xmlns='urn:govtalk-hub:la:ctax:view:v1'/></Body>"
            )
        ),
        GovTalkRefusal(1001, "single payload element"),
    )
    add(
        "poll_interval_of_5000_digits",
        cat,
        xml_post(
            view().replace(
                "<Transformation>",
                '<ResponseEndPoint PollInterval="'
                + "9" * 5000
                + '">x</ResponseEndPoint><Transformation>',
            )
        ),
        GovTalkRefusal(1001),
    )
    add(
        "error_number_of_5000_digits",
        cat,
        xml_post(
            view().replace(
                "</GovTalkDetails>",
                "<GovTalkErrors><Error><RaisedBy>x</RaisedBy><Number>"
                + "9" * 5000
                + "</Number><Type>fatal</Type></Error></GovTalkErrors></GovTalkDetails>",
            )
        ),
        GovTalkRefusal(1001),
    )

    # -- signature wrapping, replay, signer confusion ------------------------------------------
    cat = "signature"
    add(
        "signature_transplanted_under_a_new_header",
        cat,
        xml_post(transplanted),
        GovTalkRefusal(1002, "replayed"),
    )
    add(
        "signature_grafted_onto_another_body",
        cat,
        xml_post(grafted_onto_another_body),
        GovTalkRefusal(1002, "does not verify"),
    )
    add(
        "signed_body_wrapped_in_gateway_additions",
        cat,
        xml_post(tree_edit(wrap_into_gateway_additions)),
        GovTalkRefusal(1002, "does not cover the envelope Body"),
    )
    add(
        "second_id_body_inside_the_payload",
        cat,
        xml_post(tree_edit(second_id_inside_payload)),
        GovTalkRefusal(1002, "must name the envelope Body and nothing else"),
    )
    add(
        "id_attribute_on_a_header_element",
        cat,
        xml_post(
            lambda ctx: ctx.signed().replace(b"<GovTalkDetails>", b'<GovTalkDetails Id="Body">')
        ),
        GovTalkRefusal(1001, "attribute 'Id'"),
    )
    add(
        "two_references",
        cat,
        xml_post(tree_edit(two_references)),
        GovTalkRefusal(1002, "exactly one Reference"),
    )
    add(
        "reference_to_another_id",
        cat,
        xml_post(tree_edit(reference_uri("#Other"))),
        GovTalkRefusal(1002, 'must be "#Body"'),
    )
    add(
        "reference_to_a_local_file",
        cat,
        xml_post(tree_edit(reference_uri("file:///etc/passwd"))),
        GovTalkRefusal(1002, 'must be "#Body"'),
    )
    add(
        "reference_by_xpointer",
        cat,
        xml_post(tree_edit(reference_uri("#xpointer(/)"))),
        GovTalkRefusal(1002, 'must be "#Body"'),
    )
    add(
        "signature_moved_out_of_authentication",
        cat,
        xml_post(tree_edit(signature_out_of_authentication)),
        GovTalkRefusal(1040, "requires a Signature"),
    )
    add(
        "certificate_swapped_for_another_citizens",
        cat,
        xml_post(tree_edit(certificate(lambda ctx: ctx.certificate_der(SED)))),
        GovTalkRefusal(1002, "does not verify"),
    )
    add(
        "certificate_not_base64",
        cat,
        xml_post(tree_edit(certificate(b""))),
        GovTalkRefusal(1002, "not a valid certificate"),
    )
    add(
        "keyinfo_removed",
        cat,
        xml_post(tree_edit(certificate(None))),
        GovTalkRefusal(1002, "no KeyInfo"),
    )
    add(
        "self_signed_certificate",
        cat,
        xml_post(self_signed),
        GovTalkRefusal(1002, "signer certificate refused"),
    )
    add(
        "sha1_signature",
        cat,
        xml_post(lambda ctx: ctx.signed(sha1=True)),
        GovTalkRefusal(1002, "SHA-1"),
    )
    add(
        "signed_by_one_citizen_sender_id_of_another",
        cat,
        xml_post(tree_edit(sender_id(SED.user_id))),
        GovTalkRefusal(1046, "not the user the signing certificate"),
    )
    add(
        "signed_by_one_citizen_for_anothers_keys",
        cat,
        xml_post(lambda ctx: ctx.sign(ctx.unsigned(SED), SUN)),
        GovTalkRefusal(1046, "not enrolled"),
    )

    # -- tokens at the JSON API and /sso/userinfo ------------------------------------------------
    cat = "token"
    forged: dict[str, tuple[Callable[[Context], str], str]] = {
        "alg_none": (alg_none("none"), "ES256 only"),
        "alg_None_mixed_case": (alg_none("None"), "ES256 only"),
        "hs256_keyed_with_the_public_key": (hs256_with_public_key, "ES256 only"),
        "foreign_kid": (
            lambda ctx: ctx.stranger_signed(kid="foreign", typ="at+jwt"),
            "key the hub does not hold",
        ),
        "kid_path_traversal": (
            lambda ctx: ctx.stranger_signed(kid="../../../../dev/null", typ="at+jwt"),
            "key the hub does not hold",
        ),
        "kid_sql_injection": (
            lambda ctx: ctx.stranger_signed(kid=SQL, typ="at+jwt"),
            "key the hub does not hold",
        ),
        "jku_pointing_elsewhere": (
            lambda ctx: ctx.stranger_signed(
                kid="attacker", jku="http://127.0.0.1:9/jwks.json", typ="at+jwt"
            ),
            "key the hub does not hold",
        ),
        "hub_kid_strangers_signature": (
            lambda ctx: ctx.stranger_signed(kid=ctx.hub_kid, typ="at+jwt"),
            "refused",
        ),
        "expired": (lambda ctx: ctx.hub_signed(iat=now() - 7200, exp=now() - 3600), "expired"),
        "not_yet_valid": (lambda ctx: ctx.hub_signed(nbf=now() + 3600), "not yet valid"),
        "id_token_as_access_token": (lambda ctx: str(ctx.tokens["id_token"]), "not of type"),
        "replayed_after_sign_out": (after_sign_out, "has ended"),
    }
    for name, (token, why) in forged.items():
        add(
            f"{name}_at_api_enrolments",
            cat,
            call("GET", "/api/enrolments", headers=bearer(token)),
            OAuthRefusal(401, "invalid_token", why),
        )
    # The JSON API's other citizen paths, and /sso/userinfo where test_oidc.py leaves gaps.
    add(
        "alg_none_at_api_mail",
        cat,
        call("GET", "/api/mail", headers=bearer(alg_none("none"))),
        OAuthRefusal(401, "invalid_token", "ES256 only"),
    )
    add(
        "expired_at_api_journeys",
        cat,
        call(
            "GET",
            "/api/journeys/" + "A" * 32,
            headers=bearer(lambda ctx: ctx.hub_signed(iat=now() - 7200, exp=now() - 3600)),
        ),
        OAuthRefusal(401, "invalid_token", "expired"),
    )
    add(
        "not_yet_valid_at_userinfo",
        cat,
        call("GET", "/sso/userinfo", headers=bearer(lambda ctx: ctx.hub_signed(nbf=now() + 3600))),
        OAuthRefusal(401, "invalid_token", "not yet valid"),
    )
    add(
        "form_body_not_utf8_at_token",
        cat,
        call(
            "POST",
            "/sso/token",
            raw=b"grant_type=\x80\xff",
            content_type="application/x-www-form-urlencoded",
        ),
        OAuthRefusal(400, "invalid_request"),
    )
    add(
        "form_body_not_utf8_at_userinfo",
        cat,
        call(
            "POST",
            "/sso/userinfo",
            raw=b"access_token=\x80",
            content_type="application/x-www-form-urlencoded",
        ),
        OAuthRefusal(400, "invalid_request"),
    )
    add(
        "nbf_not_a_number_at_userinfo",
        cat,
        call("GET", "/sso/userinfo", headers=bearer(lambda ctx: ctx.hub_signed(nbf="tomorrow"))),
        OAuthRefusal(401, "invalid_token"),
    )
    add(
        "replayed_after_sign_out_at_userinfo",
        cat,
        call("GET", "/sso/userinfo", headers=bearer(after_sign_out)),
        OAuthRefusal(401, "invalid_token", "has ended"),
    )
    add(
        "token_without_the_gateway_scope_at_api",
        cat,
        call(
            "GET",
            "/api/enrolments",
            headers=bearer(lambda ctx: str(ctx.sign_in(scope="openid profile")["access_token"])),
        ),
        OAuthRefusal(401, "invalid_token", "'gateway' scope"),
    )
    add(
        "token_by_post_without_form_at_userinfo",
        cat,
        call("POST", "/sso/userinfo", raw=b'{"access_token": "x"}'),
        OAuthRefusal(400, "invalid_request", "x-www-form-urlencoded"),
    )

    # -- SQL and XPath injection in Keys and identifiers ---------------------------------------
    cat = "injection"
    for label, value in (
        ("sql", SQL),
        ("sql_union", SQL_UNION),
        ("sql_stacked", SQL_STACKED),
        ("xpath", XPATH),
        ("xpath_union", XPATH_UNION),
    ):
        add(
            f"{label}_in_key_value",
            cat,
            xml_post(view(keys={"CTaxAccountRef": value})),
            GovTalkRefusal(1046, "not enrolled"),
        )
        add(
            f"{label}_in_sender_id",
            cat,
            xml_post(view(user=value)),
            GovTalkRefusal(1046, "not recognised"),
        )
        add(
            f"{label}_in_basic_auth_user_id",
            cat,
            call("GET", "/api/enrolments", headers=basic(value, "x")),
            ProblemRefusal(401, "not recognised"),
        )
        add(
            f"{label}_in_mail_id",
            cat,
            call("GET", "/api/mail/" + quote(value, safe=""), headers=as_citizen(SUN)),
            ProblemRefusal(404, "no such message"),
        )
    add(
        "sql_in_key_type",
        cat,
        xml_post(view(keys={SQL: "1"})),
        GovTalkRefusal(1046, "not enrolled"),
    )
    add(
        "sql_in_password", cat, xml_post(view(password=SQL)), GovTalkRefusal(1046, "not recognised")
    )
    add(
        "sql_in_organisation",
        cat,
        xml_post(view(organisation=SQL.replace("<", ""))),
        GovTalkRefusal(1001, "does not offer"),
    )
    add(
        "sql_in_class",
        cat,
        xml_post(view().replace(f"<Class>{VIEW}", f"<Class>{SQL}")),
        GovTalkRefusal(1001, "Class"),
    )
    add(
        "sql_in_correlation_id_on_poll",
        cat,
        xml_post(wire.poll(VIEW, SQL), "/poll"),
        GovTalkRefusal(1001, "CorrelationID"),
    )
    add(
        "sql_in_correlation_id_on_delete",
        cat,
        xml_post(wire.delete(VIEW, SQL_STACKED)),
        GovTalkRefusal(1001, "CorrelationID"),
    )
    add(
        "sql_in_data_request_sender",
        cat,
        xml_post(wire.data_request(VIEW, SQL, SQL)),
        GovTalkRefusal(1046, "not recognised"),
    )
    add(
        "sql_in_basic_auth_password",
        cat,
        call("GET", "/api/enrolments", headers=basic(SUN.user_id, SQL)),
        ProblemRefusal(401, "not recognised"),
    )
    add(
        "nul_in_basic_auth_user_id",
        cat,
        call("GET", "/api/enrolments", headers=basic(SUN.user_id + "\x00", SUN.password)),
        ProblemRefusal(401, "not valid HTTP Basic"),
    )
    # PostgreSQL cannot store NUL in text (SQLite can): refused alike on both, before any query.
    add(
        "nul_in_json_facts",
        cat,
        call("POST", "/api/enrolments",
             {"class": VIEW, "organisation": SUNDERLAND, "facts": {"Surname": "Robson\x00"}},
             as_citizen(SUN)),
        ProblemRefusal(400, "NUL"),
    )  # fmt: skip
    add("nul_in_url_path", cat, call("GET", "/api/payments/abc%00def"), ProblemRefusal(400, "NUL"))
    add(
        "nul_in_query",
        cat,
        call("GET", "/api/payments/reports/E08000024.csv?from=2024-01-01%00&to=2024-12-31"),
        ProblemRefusal(400, "NUL"),
    )
    add(
        "nul_in_token_form",
        cat,
        call("POST", "/sso/token", raw=b"grant_type=authorization_code&code=%00",
             content_type="application/x-www-form-urlencoded"),
        OAuthRefusal(400, "invalid_request", "NUL"),
    )  # fmt: skip
    add(
        "sql_in_journey_id",
        cat,
        call("GET", "/api/journeys/" + quote(SQL, safe=""), headers=as_citizen(SUN)),
        ProblemRefusal(404),
    )
    add(
        "sql_in_payment_id",
        cat,
        call("GET", "/api/payments/" + quote(SQL_UNION, safe="")),
        ProblemRefusal(404, "no such payment"),
    )
    add(
        "sql_in_enrolment_id",
        cat,
        call(
            "POST",
            "/api/enrolments/" + quote("1 OR 1=1", safe="") + "/activation",
            {"pin": "x"},
            as_citizen(SUN),
        ),
        ProblemRefusal(404),
    )
    add(
        "enrolment_id_beyond_64_bits",
        cat,
        call("POST", "/api/enrolments/" + "9" * 30 + "/activation", {"pin": "x"}, as_citizen(SUN)),
        ProblemRefusal(404),
    )
    add(
        "sql_in_enrolment_class_and_facts",
        cat,
        call(
            "POST",
            "/api/enrolments",
            {"class": SQL, "organisation": SQL, "facts": {SQL: XPATH}},
            as_citizen(SUN),
        ),
        ProblemRefusal(422),
    )
    add(
        "sql_in_registration_kind",
        cat,
        call("POST", "/api/registrations", {"kind": SQL_UNION, "password": "a-long-password-1"}),
        ProblemRefusal(400, "kind must be one of"),
    )
    add(
        "sql_in_council_mail_identifier",
        cat,
        call(
            "POST",
            "/api/council/mail",
            {
                "class": VIEW,
                "key_type": "CTaxAccountRef",
                "key_value": SQL,
                "subject": "s",
                "body": "b",
                "sender_message_id": "inject-1",
            },
            {"X-Council": SUNDERLAND},
        ),
        ProblemRefusal(422),
    )
    add(
        "sql_in_council_header",
        cat,
        call("POST", "/api/council/mail", {"class": VIEW}, {"X-Council": SQL}),
        ProblemRefusal(403),
    )

    # -- JSON bodies --------------------------------------------------------------------------
    cat = "json"
    add(
        "json_nested_20000_deep",
        cat,
        call("POST", "/api/registrations", raw=b"[" * 20_000 + b"]" * 20_000),
        ProblemRefusal(400),
    )
    add(
        "json_nested_deep_at_journeys",
        cat,
        call(
            "POST",
            "/api/journeys/change-of-address",
            raw=b"[" * 20_000 + b"]" * 20_000,
            headers=as_citizen(MOV),
        ),
        ProblemRefusal(400),
    )
    add(
        "json_invalid_utf8",
        cat,
        call("POST", "/api/registrations", raw=b'{"kind": "\xff\xfe"}'),
        ProblemRefusal(400, "JSON object"),
    )
    add(
        "json_not_an_object",
        cat,
        call("POST", "/api/payments", raw=b'["amount", 1]'),
        ProblemRefusal(400, "JSON object"),
    )
    add(
        "json_nan_amount",
        cat,
        call(
            "POST",
            "/api/payments",
            raw=b'{"amount": NaN, "reference": "R", "council": "'
            + SUNDERLAND.encode()
            + b'", "description": "d", "return_url": "https://x.example/"}',
        ),
        ProblemRefusal(422, "amount"),
    )
    add(
        "idempotency_key_over_255",
        cat,
        call("POST", "/api/payments", {"amount": 1}, {"Idempotency-Key": "k" * 256}),
        ProblemRefusal(400, "Idempotency-Key"),
    )

    # -- path traversal in identifiers that name files or downloads ----------------------------
    cat = "traversal"
    add(
        "mail_id_dot_dot",
        cat,
        call("GET", "/api/mail/..%2F..%2F..%2Fetc%2Fpasswd", headers=as_citizen(SUN)),
        ProblemRefusal(404, "no such message"),
    )
    add(
        "payment_report_council_dot_dot",
        cat,
        call(
            "GET", "/api/payments/reports/..%2F..%2Fetc%2Fpasswd.csv?from=2024-01-01&to=2024-12-31"
        ),
        ProblemRefusal(404),
    )
    add(
        "payment_report_council_crlf",
        cat,
        call(
            "GET",
            "/api/payments/reports/x%0D%0ASet-Cookie:%20gw_sso=evil.csv?from=2024-01-01&to=2024-12-31",
        ),
        ProblemRefusal(404),
    )

    # -- one citizen (or council) reaching another's things by guessing identifiers -----------
    cat = "cross-tenant"
    add(
        "citizen_reads_anothers_mail",
        cat,
        call("GET", lambda ctx: f"/api/mail/{ctx.mail_to(SED)}", headers=as_citizen(SUN)),
        ProblemRefusal(404, "no such message"),
    )
    add(
        "citizen_deletes_anothers_mail",
        cat,
        call("DELETE", lambda ctx: f"/api/mail/{ctx.mail_to(SED)}", headers=as_citizen(SUN)),
        ProblemRefusal(404, "no such message"),
    )
    add(
        "citizen_replies_to_anothers_mail",
        cat,
        call(
            "POST",
            lambda ctx: f"/api/mail/{ctx.mail_to(SED)}/reply",
            {"body": "mine now"},
            as_citizen(SUN),
        ),
        ProblemRefusal(404, "no such message"),
    )
    add(
        "citizen_reads_anothers_mail_by_sso_token",
        cat,
        call(
            "GET",
            lambda ctx: f"/api/mail/{ctx.mail_to(SED)}",
            headers=bearer(lambda ctx: str(ctx.tokens["access_token"])),
        ),
        ProblemRefusal(404, "no such message"),
    )
    add(
        "citizen_activates_anothers_enrolment",
        cat,
        call(
            "POST",
            lambda ctx: f"/api/enrolments/{ctx.enrolment_ids(SED)[0]}/activation",
            {"pin": "000000"},
            as_citizen(SUN),
        ),
        ProblemRefusal(404),
    )
    add(
        "citizen_reads_anothers_journey",
        cat,
        call("GET", lambda ctx: f"/api/journeys/{ctx.movers_journey}", headers=as_citizen(SUN)),
        ProblemRefusal(404, "no journey"),
    )
    add(
        "citizen_guesses_a_journey_id",
        cat,
        call("GET", "/api/journeys/" + secrets.token_hex(16).upper(), headers=as_citizen(SUN)),
        ProblemRefusal(404, "no journey"),
    )
    add(
        "council_reads_another_councils_payment",
        cat,
        call(
            "GET",
            lambda ctx: f"/api/payments/{ctx.payment(SUNDERLAND)}",
            headers={"Authorization": f"Bearer {COUNCIL_TOKENS[SEDGEMOOR]}"},
        ),
        ProblemRefusal(404, "no such payment"),
    )
    add(
        "council_cancels_another_councils_payment",
        cat,
        call(
            "POST",
            lambda ctx: f"/api/payments/{ctx.payment(SUNDERLAND)}/cancel",
            headers={"Authorization": f"Bearer {COUNCIL_TOKENS[SEDGEMOOR]}"},
        ),
        ProblemRefusal(404, "no such payment"),
    )
    add(
        "council_refunds_another_councils_payment",
        cat,
        call(
            "POST",
            lambda ctx: f"/api/payments/{ctx.payment(SUNDERLAND)}/refunds",
            {"amount": 1},
            {"Authorization": f"Bearer {COUNCIL_TOKENS[SEDGEMOOR]}"},
        ),
        ProblemRefusal(404, "no such payment"),
    )
    add(
        "council_reads_another_councils_report",
        cat,
        call(
            "GET",
            f"/api/payments/reports/{SUNDERLAND}.csv?from=2024-01-01&to=2030-12-31",
            headers={"Authorization": f"Bearer {COUNCIL_TOKENS[SEDGEMOOR]}"},
        ),
        ProblemRefusal(403),
    )
    add(
        "council_guesses_a_payment_id",
        cat,
        call(
            "GET",
            "/api/payments/" + secrets.token_hex(13),
            headers={"Authorization": f"Bearer {COUNCIL_TOKENS[SEDGEMOOR]}"},
        ),
        ProblemRefusal(404, "no such payment"),
    )
    add(
        "wrong_council_bearer_token",
        cat,
        call(
            "GET",
            "/api/payments/" + secrets.token_hex(13),
            headers={"Authorization": "Bearer " + COUNCIL_TOKENS[SUNDERLAND][:-1]},
        ),
        ProblemRefusal(401, "bearer token"),
    )
    add("guessed_payment_page", cat, call("GET", "/pay/" + secrets.token_hex(13)), PageRefusal(404))
    add(
        "guessed_correlation_id_neighbour_poll",
        cat,
        xml_post(lambda ctx: wire.poll(VIEW, f"{int(ctx.correlation_id, 16) + 1:032X}"), "/poll"),
        GovTalkRefusal(2000, "No record"),
    )
    add(
        "guessed_correlation_id_neighbour_delete",
        cat,
        xml_post(lambda ctx: wire.delete(VIEW, f"{int(ctx.correlation_id, 16) - 1:032X}")),
        GovTalkRefusal(2000, "No record"),
    )
    add(
        "guessed_correlation_id_all_zero",
        cat,
        xml_post(wire.poll(VIEW, "0" * 32), "/poll"),
        GovTalkRefusal(2000, "No record"),
    )
    add(
        "real_correlation_id_other_class",
        cat,
        xml_post(lambda ctx: wire.poll("LA-CTAX-SPD", ctx.correlation_id), "/poll"),
        GovTalkRefusal(1001, "does not match"),
    )
    add(
        "submit_with_anothers_keys",
        cat,
        xml_post(view(keys=SED.enrolments[0].keys, organisation=SED.enrolments[0].organisation)),
        GovTalkRefusal(1046, "not enrolled"),
    )
    add(
        "data_request_with_anothers_user_id",
        cat,
        xml_post(wire.data_request(VIEW, SED.user_id, SUN.password)),
        GovTalkRefusal(1046, "not recognised"),
    )
    return a


CORPUS: list[Attack] = _corpus()
assert len({a.name for a in CORPUS}) == len(CORPUS), "attack names must be unique"
