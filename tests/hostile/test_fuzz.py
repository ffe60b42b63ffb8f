"""Property-based fuzzing (hypothesis) of the envelope parser and of the hub's HTTP endpoints.

The parser: arbitrary bytes, byte-level mutations of real envelopes and tree-level mutations (which
stay well-formed and so reach schema validation and the model) either parse or raise a
GovTalkFault whose every error is 1001 — never any other exception.

The endpoints, against ONE hub started for this module: never a 500, never an unhandled
exception (on the DSP that is a 1000 reply), always a well-formed GovTalk reply or JSON /
problem+json; every refusal is in the audit trail; /ready and a normal submission still work at
the end of each property.

The generators reach for what found defects before: compressed bodies in every encoding aiohttp
decodes, and corrupt ones; JSON nested thousands deep; integers of thousands of digits; ids too
long for a database integer; form bodies that are not UTF-8; ids the router cannot match.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.govtalk.errors import GovTalkFault
from gateway.govtalk.model import Envelope
from gateway.govtalk.parse import parse, parse_xml
from gateway.web.keys import AUDIT, DB
from tests.conftest import hub_database
from tests.hostile.corpus import SQL, XPATH, XPATH_UNION, as_citizen
from tests.hostile.harness import SED, SUN, VIEW, Answer, ThreadedHub, start_hub, view_submission
from tests.hub import wire

ENV = "http://www.govtalk.gov.uk/CM/envelope"
DSIG = "http://www.w3.org/2000/09/xmldsig#"

BASES: tuple[bytes, ...] = (
    view_submission(SUN).encode(),
    view_submission(SED, gateway_test=True, transaction_id="00AB").encode(),
    view_submission(SUN, method="MD5", password="c2VjcmV0c2VjcmV0c2VjcmV0PQ==").encode(),
    wire.poll(VIEW, "0123456789ABCDEF0123456789ABCDEF", with_body=True).encode(),
    wire.delete(VIEW, "0123456789abcdef0123456789abcdef").encode(),
    wire.data_request(VIEW, SUN.user_id, SUN.password,
                      "<StartDate>01/01/2024</StartDate><StartTime>00:00:00</StartTime>"
                      "<EndDate>31/12/2030</EndDate><EndTime>23:59:59</EndTime>"
                      "<IncludeIdentifiers>1</IncludeIdentifiers>").encode(),
    view_submission(SUN).replace(
        "<Transformation>", '<ResponseEndPoint PollInterval="10">https://x/</ResponseEndPoint>'
        "<Transformation>").replace(
        "</GovTalkDetails>", "<GovTalkErrors><Error><RaisedBy>c</RaisedBy><Number>3001</Number>"
        "<Type>business</Type><Text>a</Text><Text>b</Text><Location>/x</Location></Error>"
        "</GovTalkErrors></GovTalkDetails>").encode(),
)  # fmt: skip

TOKENS: tuple[bytes, ...] = (
    b"<", b">", b"</", b"/>", b"&", b"&amp;", b"&lt;", b"&#x41;", b"&#0;", b"&#x10FFFF;", b"&x;",
    b"<!DOCTYPE x>", b"<![CDATA[", b"]]>", b"<!--", b"-->", b"<?pi x?>", b'<?xml version="1.0"?>',
    b"\x00", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\xed\xa0\x80", b'"', b"'", b"=", b" ",
    b" xmlns='urn:x'", b' xmlns=""', b" xmlns:ds='" + DSIG.encode() + b"'",
    b"<Body>", b"</Body>", b"<Body/>", b"<Key Type='a'>", b"</Key>", b"<Keys/>",
    b"<CorrelationID>", b"</CorrelationID>", b"<Class>", b"<Qualifier>poll</Qualifier>",
    b"<Function>list</Function>", b"<Function>delete</Function>", b"<Method>W3Csigned</Method>",
    b"<ds:Signature xmlns:ds='" + DSIG.encode() + b"'/>", b"PollInterval='-1'", b"Id='Body'",
    b"<a>" * 70, b"</a>" * 70,
)  # fmt: skip

INTERESTING_TEXT: tuple[str, ...] = (
    "", " ", "0", "1", "-1", "+7", " 42 ", "99999999999999999999", "1e3", "0x10", "NaN",
    VIEW, "LA-CTAX-VIEW-TIL", "UndefinedClass", "request", "poll", "response", "error",
    "acknowledgement", "submit", "delete", "list", "read", "clear", "MD5", "W3Csigned",
    "principal", "0" * 32, "f" * 32, "A" * 33, "E08000024", "E07000188", "GW",
    SUN.user_id, SUN.password, SED.user_id, SQL, XPATH, XPATH_UNION,
    "01/01/2024", "31/02/2024", "32/13/2024", "25:61:61", "2024-13-45T99:99:99", "1.0", "2.0",
    "yes", "pass", "fatal", "business", "schema", "warning", "\u202e", "\u00e9", "\U0001f600",
)  # fmt: skip

ELEMENT_NAMES: tuple[str, ...] = (
    "Class", "Qualifier", "Function", "TransactionID", "CorrelationID", "ResponseEndPoint",
    "GatewayTest", "GatewayTimestamp", "SenderDetails", "IDAuthentication", "SenderID",
    "Authentication", "Method", "Role", "Value", "EmailAddress", "X509Certificate", "Keys", "Key",
    "TargetDetails", "Organisation", "ChannelRouting", "GovTalkErrors", "Error", "Number", "Body",
    "Header", "GovTalkDetails", "MessageDetails", "EnvelopeVersion", "StartDate", "EndTime",
)  # fmt: skip

xml_text = st.one_of(
    st.sampled_from(INTERESTING_TEXT),
    # Text lxml can hold: no controls but tab/newline, no surrogates or non-characters.
    st.text(st.characters(exclude_categories=("Cs", "Cc", "Cn", "Co")), max_size=40),
)


@st.composite
def byte_mutants(draw: st.DrawFn) -> bytes:
    """A real envelope with a few bytes deleted, inserted, replaced, duplicated or cut."""
    data = bytearray(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(("delete", "insert", "byte", "duplicate", "truncate")))
        if op == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif op == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=8)))
        elif op == "byte" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "duplicate":
            start = draw(st.integers(0, len(data)))
            data[at:at] = data[start : start + draw(st.integers(1, 300))]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


@st.composite
def tree_mutants(draw: st.DrawFn) -> bytes:
    """A real envelope changed as a tree: still well-formed, so it reaches the schema and model."""
    root = etree.fromstring(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        el = draw(st.sampled_from(elements))
        parent = el.getparent()
        op = draw(st.sampled_from(("text", "remove", "duplicate", "attribute", "child", "move")))
        try:
            if op == "text":
                el.text = draw(xml_text)
            elif op == "remove" and parent is not None:
                parent.remove(el)
            elif op == "duplicate" and parent is not None:
                el.addnext(etree.fromstring(etree.tostring(el)))
            elif op == "attribute":
                name = draw(st.sampled_from(("Type", "Id", "ID", "PollInterval", "Processed")))
                el.set(name, draw(xml_text))
            elif op == "child":
                ns = draw(st.sampled_from((ENV, ENV, DSIG, "urn:other", "")))
                tag = draw(st.sampled_from((*ELEMENT_NAMES, "Signature", "Object")))
                child = etree.SubElement(el, f"{{{ns}}}{tag}" if ns else tag)
                child.text = draw(xml_text)
            elif op == "move" and parent is not None:
                target = draw(st.sampled_from(elements))
                if el not in target.iterancestors() and target is not el:
                    target.append(el)
        except ValueError:
            pass  # lxml refused the value (not XML-compatible): that mutation is skipped
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


any_document = st.one_of(byte_mutants(), tree_mutants(), st.binary(max_size=600))


def parses_or_1001(data: bytes) -> None:
    try:
        envelope = parse(data)
    except GovTalkFault as fault:
        assert fault.errors, "a fault with no error"
        assert {e.number for e in fault.errors} == {1001}, fault.errors
        assert all(isinstance(e.text, str) and e.text for e in fault.errors)
        event("fault: " + fault.first.text.split(":")[0][:40])
    else:
        event("parsed")
        assert isinstance(envelope, Envelope)
        assert envelope.message.class_ is not None


# --- the parser --------------------------------------------------------------------------------

PARSER = settings(
    max_examples=2500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.no_database
@PARSER
@given(st.binary(max_size=2000))
def test_parse_arbitrary_bytes_is_an_envelope_or_a_1001(data: bytes) -> None:
    parses_or_1001(data)


@pytest.mark.no_database
@PARSER
@given(byte_mutants())
def test_parse_byte_mutated_envelopes_is_an_envelope_or_a_1001(data: bytes) -> None:
    parses_or_1001(data)


@pytest.mark.no_database
@PARSER
@given(tree_mutants())
def test_parse_tree_mutated_envelopes_is_an_envelope_or_a_1001(data: bytes) -> None:
    parses_or_1001(data)


@pytest.mark.no_database
@settings(PARSER, max_examples=1000)
@given(any_document)
def test_parse_xml_raises_nothing_but_govtalk_faults(data: bytes) -> None:
    try:
        tree = parse_xml(data)
    except GovTalkFault as fault:
        assert {e.number for e in fault.errors} == {1001}
    else:
        assert tree.getroot() is not None


@pytest.mark.no_database
@pytest.mark.parametrize("where", ["PollInterval", "Number"])
def test_parse_huge_schema_valid_integers_is_a_1001(where: str) -> None:
    huge = "9" * 4301
    if where == "PollInterval":
        data = BASES[6].replace(b'PollInterval="10"', f'PollInterval="{huge}"'.encode())
    else:
        data = BASES[6].replace(b"<Number>3001</Number>", f"<Number>{huge}</Number>".encode())
    assert data != BASES[6]
    with pytest.raises(GovTalkFault) as caught:
        parse(data)
    assert caught.value.first.number == 1001
    assert where in caught.value.first.text


# --- the HTTP endpoints, against one hub ----------------------------------------------------------

HTTP = settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedHub]:
    # Per-sender lockout off: thousands of wrong passwords for the demo citizens would lock them
    # out (correctly) and the closing health check files as one of them. Lockout is tested in
    # its own module.
    with hub_database() as database:
        started = start_hub(
            tmp_path_factory.mktemp("fuzz"),
            {
                "limits": {"auth_failures_per_sender": 0},
                "payments": {"api_tokens": {"E08000024": "fuzz-council-token"}},
                **database,
            },
        )
        try:
            yield started
        finally:
            started.stop()


@dataclass
class Refusals:
    """Refusals seen during a property, checked against the audit trail afterwards."""

    seen: list[tuple[str, str, Any]] = field(default_factory=list)  # (request id, event, value)
    sent: dict[str, str] = field(default_factory=dict)  # request id -> what was sent (for messages)

    def expect(self, answer: Answer, event: str, value: Any, sent: str = "") -> None:
        self.seen.append((answer.request_id, event, value))
        self.sent[answer.request_id] = sent

    def check(self, hub: ThreadedHub) -> None:
        from sqlalchemy import select

        from gateway.store.audit_models import AuditRecord

        async def recorded() -> set[tuple[str, str, Any]]:
            assert hub.app is not None
            await hub.app[AUDIT].drained()
            async with hub.app[DB].read() as session:
                rows = await session.scalars(
                    select(AuditRecord).where(AuditRecord.outcome == "refused")
                )
                found: set[tuple[str, str, Any]] = set()
                for r in rows:
                    value = (
                        r.detail.get("number")
                        if r.event == "dsp.refused"
                        else r.detail.get("status")
                    )
                    found.add((str(r.detail.get("request_id")), r.event, value))
                return found

        found = hub.run(recorded())
        missing = [(*s, self.sent[s[0]]) for s in self.seen if s not in found]
        assert not missing, (
            f"{len(missing)} refusals without their audit record, e.g. {missing[:3]}"
        )


def check_govtalk(answer: Answer, refusals: Refusals) -> None:
    assert answer.status == 200, (answer.status, answer.body[:300])
    assert answer.content_type == "text/xml", answer.headers
    reply = answer.govtalk()
    assert reply.qualifier in {"acknowledgement", "response", "error"}, reply.raw[:300]
    assert reply.function and reply.endpoint and reply.poll_interval >= 0
    event(f"{reply.qualifier} {reply.error_number or ''}")
    if reply.qualifier == "error":
        number = reply.error_number
        assert number is not None and number != 1000, reply.errors  # 1000: an unhandled exception
        refusals.expect(answer, "dsp.refused", number)


def encoded(body: bytes, encoding: str) -> bytes:
    """The body under a Content-Encoding; corrupt-gzip is a stream that is not gzip at all."""
    import brotli
    from backports import zstd

    coders = {
        "": lambda b: b,
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
        "zstd": zstd.compress,
        "corrupt-gzip": lambda b: b"\x1f\x8b\x08\x00" + b[:40],
    }
    return coders[encoding](body)


DSP_HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(
            ("text/xml", "application/xml", "application/octet-stream", "application/x-binary",
             "text/xml; charset=ISO-8859-1", "multipart/form-data; boundary=x", "")),
        "SOAPAction": st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
        "Transfer-Encoding": st.just("chunked"),
    },
)  # fmt: skip


def test_dsp_endpoints_answer_every_input_with_a_govtalk_reply(fuzz_hub: ThreadedHub) -> None:
    refusals = Refusals()

    @settings(HTTP, max_examples=400)
    @given(
        body=any_document,
        path=st.sampled_from(("/submission", "/poll")),
        headers=DSP_HEADERS,
        encoding=st.sampled_from(("", "", "gzip", "deflate", "br", "zstd", "corrupt-gzip")),
    )
    def prop(body: bytes, path: str, headers: dict[str, str], encoding: str) -> None:
        sent: Any = encoded(body, encoding)
        if encoding:
            headers = {**headers, "Content-Encoding": encoding.removeprefix("corrupt-")}
        if headers.pop("Transfer-Encoding", None):
            # A corrupt stream is refused at its first chunk and the connection closed; a
            # client still sending a second chunk would meet a broken pipe, as with any early
            # refusal. One chunk keeps the property about the answer, not that race.
            cut = len(sent) if encoding.startswith("corrupt") else len(sent) // 2
            sent = iter([sent[:cut], sent[cut:]])
        check_govtalk(fuzz_hub.request("POST", path, sent, headers), refusals)

    prop()
    refusals.check(fuzz_hub)
    fuzz_hub.assert_healthy()


# -- JSON APIs ------------------------------------------------------------------------------------

json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(INTERESTING_TEXT),
    st.text(max_size=30),
)  # fmt: skip
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def objects_with(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects using the endpoint's own field names (so validation is reached), plus noise."""
    return st.dictionaries(
        st.one_of(st.sampled_from(keys), st.text(max_size=12)), json_value, max_size=len(keys) + 2
    )


def json_bodies(keys: tuple[str, ...]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        objects_with(keys).map(lambda o: json.dumps(o).encode()),
        json_value.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
        st.sampled_from((b"", b"{", b"null", b"[]", b'{"a": NaN}', b'{"a": Infinity}',
                         b'{"a": 1e999}', b'{"kind": "\xff"}', b"\xef\xbb\xbf{}",
                         b'{"amount": ' + b"9" * 5000 + b"}")),
        # Nested deeper than the interpreter's stack, yet far under the size cap.
        st.integers(500, 30_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(500, 30_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    )  # fmt: skip


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


def basic_header(user: str, password: str) -> str:
    raw = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


authorization = st.one_of(
    st.none(),
    header_text,
    st.builds(basic_header, st.text(max_size=20), st.text(max_size=20)),
    st.just(as_citizen(SUN)["Authorization"]),
    st.just(basic_header(SUN.user_id, "wrong")),
    header_text.map(lambda t: f"Bearer {t}"),
    st.sampled_from(("Bearer", "Basic", "Basic ", "Bearer eyJhbGciOiJub25lIn0.e30.",
                     "Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "Digest x")),
)  # fmt: skip


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: st.SearchStrategy[str]
    body: st.SearchStrategy[bytes] | None
    content_type: str = "application/json"
    oauth: bool = False  # refusals are RFC 6749 JSON (sso.refused), not problem+json


ENDPOINTS: dict[str, Endpoint] = {
    "POST /api/registrations": Endpoint(
        "POST", st.just("/api/registrations"),
        json_bodies(("kind", "display_name", "password", "certificate_pem"))),
    "POST /api/enrolments": Endpoint(
        "POST", st.just("/api/enrolments"), json_bodies(("class", "organisation", "facts"))),
    "GET /api/enrolments": Endpoint("GET", st.just("/api/enrolments"), None),
    "POST /api/payments": Endpoint(
        "POST", st.just("/api/payments"),
        json_bodies(("amount", "reference", "council", "description", "return_url", "metadata",
                     "email", "language"))),
    "GET /api/payments/{id}": Endpoint(
        "GET", st.text(st.characters(min_codepoint=33, max_codepoint=126,
                                     exclude_characters="/?#%"), min_size=1, max_size=40)
        .map(lambda s: f"/api/payments/{s}"), None),
    "POST /api/enrolments/{id}/activation": Endpoint(
        "POST", st.one_of(st.integers(-(2**80), 2**80).map(str), st.text("0123456789", max_size=40))
        .map(lambda s: f"/api/enrolments/{s}/activation"), json_bodies(("pin",))),
    "POST /sso/token": Endpoint(
        "POST", st.just("/sso/token"),
        st.one_of(
            st.dictionaries(st.sampled_from(("grant_type", "code", "redirect_uri", "code_verifier",
                                             "client_id", "client_secret", "client_assertion",
                                             "client_assertion_type")),
                            st.text(max_size=40), max_size=6)
            .map(lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode()),
            st.text(max_size=100).map(str.encode),
            st.binary(max_size=100)),
        content_type="application/x-www-form-urlencoded", oauth=True),
}  # fmt: skip


def check_json_answer(
    endpoint: Endpoint, answer: Answer, refusals: Refusals, sent: str = ""
) -> None:
    assert answer.status < 500, (answer.status, answer.body[:300])
    event(f"HTTP {answer.status}")
    if answer.status < 400:
        assert answer.content_type in ("application/json", "application/problem+json")
        json.loads(answer.body)
        return
    body = json.loads(answer.body)
    if answer.content_type == "application/problem+json":
        assert body["status"] == answer.status and body["title"], body
        refusals.expect(answer, "api.refused", answer.status, sent)
    else:
        # OAuth errors (token endpoint, or a bearer token at the API): RFC 6749 / 6750 JSON.
        assert answer.content_type == "application/json", answer.headers
        assert isinstance(body["error"], str) and isinstance(body["error_description"], str)
        refusals.expect(answer, "sso.refused", answer.status, sent)


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_json_endpoints_never_fail_and_refuse_with_problem_json(
    fuzz_hub: ThreadedHub, name: str
) -> None:
    endpoint = ENDPOINTS[name]
    refusals = Refusals()

    @settings(HTTP, max_examples=150)
    @given(
        path=endpoint.path,
        body=endpoint.body if endpoint.body is not None else st.just(b""),
        auth=authorization,
        idempotency=st.one_of(st.none(), header_text),
        content_type=st.sampled_from((endpoint.content_type, endpoint.content_type, "text/plain",
                                      "application/json; charset=latin-1", "")),
    )  # fmt: skip
    def prop(path: str, body: bytes, auth: str | None, idempotency: str | None,
             content_type: str) -> None:  # fmt: skip
        headers = {"Content-Type": content_type} if body else {}
        if auth is not None:
            headers["Authorization"] = auth
        if idempotency is not None and name == "POST /api/payments":
            headers["Idempotency-Key"] = idempotency
        answer = fuzz_hub.request(endpoint.method, path, body or None, headers)
        check_json_answer(
            endpoint, answer, refusals, f"{endpoint.method} {path} {headers} {body!r:.200}"
        )

    prop()
    refusals.check(fuzz_hub)
    fuzz_hub.assert_healthy()
