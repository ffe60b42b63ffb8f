"""Reply builders: every reply is what real clients dereference unconditionally (§2, §9)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import TypedDict

import pytest
from lxml import etree

from gateway.govtalk import replies
from gateway.govtalk.errors import GovTalkError, GovTalkFault
from gateway.govtalk.model import ERROR_RESPONSE_NS, Envelope
from gateway.govtalk.parse import parse
from gateway.govtalk.serialise import serialise

from .samples import ENV_NS, c14n

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

CID = "0123456789ABCDEF0123456789ABCDEF"
WHEN = datetime(2014, 4, 11, 15, 41, 39, 775_123, tzinfo=UTC)


class Common(TypedDict):
    transaction_id: str
    endpoint: str
    poll_interval: int
    timestamp: datetime


COMMON: Common = {
    "transaction_id": "20140411154139",
    "endpoint": "https://hub.example/submission/poll",
    "poll_interval": 10,
    "timestamp": WHEN,
}


def on_the_wire(env: Envelope) -> tuple[etree._Element, Envelope]:
    """The reply as a client sees it: raw tree and re-parsed (schema-validated) model."""
    data = serialise(env)
    return etree.fromstring(data), parse(data)


def assert_client_essentials(root: etree._Element, qualifier: str, function: str) -> None:
    md = root.find(f"{{{ENV_NS}}}Header/{{{ENV_NS}}}MessageDetails")
    assert md is not None
    assert md.findtext(f"{{{ENV_NS}}}Qualifier") == qualifier
    assert md.findtext(f"{{{ENV_NS}}}Function") == function
    assert md.findtext(f"{{{ENV_NS}}}TransactionID") == "20140411154139"
    assert md.find(f"{{{ENV_NS}}}CorrelationID") is not None
    endpoint = md.find(f"{{{ENV_NS}}}ResponseEndPoint")
    assert endpoint is not None
    assert endpoint.text == "https://hub.example/submission/poll"
    assert endpoint.get("PollInterval") == "10"
    assert md.findtext(f"{{{ENV_NS}}}GatewayTimestamp") == "2014-04-11T15:41:39.775"
    assert root.findtext(f"{{{ENV_NS}}}EnvelopeVersion") == "2.0"


def test_acknowledgement():
    env = replies.acknowledgement(class_="LA-CTAX-VIEW", correlation_id=CID, **COMMON)
    root, back = on_the_wire(env)
    assert_client_essentials(root, "acknowledgement", "submit")
    assert back.message.correlation_id == CID
    assert back.message.poll_interval == 10
    assert back.body is None
    assert back.message.gateway_test is False


def test_acknowledgement_in_test_mode():
    env = replies.acknowledgement(
        class_="LA-CTAX-VIEW", correlation_id=CID, gateway_test=True, **COMMON
    )
    assert parse(serialise(env)).message.gateway_test is True


def test_submission_response_with_element_body():
    body = etree.fromstring(
        b'<r:Reply xmlns:r="urn:example:ctax"><r:Balance>12.50</r:Balance></r:Reply>'
    )
    env = replies.submission_response(
        class_="LA-CTAX-VIEW", correlation_id=CID, body=body, **COMMON
    )
    root, back = on_the_wire(env)
    assert_client_essentials(root, "response", "submit")
    assert back.message.correlation_id == CID
    assert c14n(back.body) == c14n(body)


def test_submission_response_with_bytes_body():
    data = b'<?xml version="1.0"?><Reply xmlns="urn:example:ctax"><Balance>1</Balance></Reply>'
    env = replies.submission_response(
        class_="LA-CTAX-VIEW", correlation_id=CID, body=data, **COMMON
    )
    _, back = on_the_wire(env)
    assert back.body is not None
    assert back.body.findtext("{urn:example:ctax}Balance") == "1"


def test_submission_response_with_hostile_bytes_is_an_internal_failure():
    data = b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    with pytest.raises(GovTalkFault) as info:
        replies.submission_response(class_="LA-CTAX-VIEW", correlation_id=CID, body=data, **COMMON)
    assert info.value.first.number == 1000
    assert info.value.class_ == "LA-CTAX-VIEW"


def test_error_reply_before_the_class_is_known():
    env = replies.error_reply(
        class_=None,
        errors=[GovTalkError.of(1001, "The document is not well-formed XML")],
        correlation_id=None,
        **COMMON,
    )
    root, back = on_the_wire(env)
    assert_client_essentials(root, "error", "submit")
    assert back.message.class_ == "UndefinedClass"
    assert back.message.correlation_id is None
    first = root.find(f".//{{{ENV_NS}}}GovTalkErrors/{{{ENV_NS}}}Error")
    assert first is not None
    assert first.findtext(f"{{{ENV_NS}}}Number") == "1001"
    assert first.findtext(f"{{{ENV_NS}}}Type") == "fatal"
    assert first.findtext(f"{{{ENV_NS}}}Text") == "The document is not well-formed XML"
    assert first.findtext(f"{{{ENV_NS}}}RaisedBy") == "Gateway"


def test_business_error_reply_with_error_response_body():
    errors = [GovTalkError.of(3001, "Reference not known", locations=("/ViewRequest/Ref",))]
    body = replies.error_response_body(errors, "Exampleshire")
    env = replies.error_reply(
        class_="LA-CTAX-VIEW", errors=errors, correlation_id=CID, body=body, **COMMON
    )
    root, back = on_the_wire(env)
    assert_client_essentials(root, "error", "submit")
    assert back.errors == errors
    assert back.message.correlation_id == CID
    assert back.body is not None
    assert back.body.tag == f"{{{ERROR_RESPONSE_NS}}}ErrorResponse"


def test_error_reply_on_delete_keeps_the_function():
    env = replies.error_reply(
        class_="LA-CTAX-VIEW",
        errors=[GovTalkError.of(2000)],
        correlation_id=CID,
        function="delete",
        **COMMON,
    )
    root, _ = on_the_wire(env)
    assert_client_essentials(root, "error", "delete")


def test_error_reply_needs_errors():
    with pytest.raises(ValueError):
        replies.error_reply(class_=None, errors=[], correlation_id=None, **COMMON)


def test_delete_response():
    env = replies.delete_response(class_="LA-CTAX-VIEW", correlation_id=CID, **COMMON)
    root, back = on_the_wire(env)
    assert_client_essentials(root, "response", "delete")
    assert back.message.correlation_id == CID


def test_list_response_has_empty_correlation_id_and_the_report():
    report = etree.fromstring(
        b'<StatusReport xmlns="urn:test"><SenderID>U1</SenderID></StatusReport>'
    )
    env = replies.list_response(class_="LA-CTAX-VIEW", report=report, **COMMON)
    root, back = on_the_wire(env)
    assert_client_essentials(root, "response", "list")
    cid = root.find(f".//{{{ENV_NS}}}CorrelationID")
    assert cid is not None and not cid.text
    assert c14n(back.body) == c14n(report)


def test_error_response_body_shape():
    errors = [
        GovTalkError.of(3001, "Bill not found", locations=("/a", "/b")),
        GovTalkError.of(4010, "Ref must be numeric", locations=("/ViewRequest/Ref",)),
        GovTalkError.of(1046),
    ]
    body = replies.error_response_body(errors, "Exampleshire")
    ns = f"{{{ERROR_RESPONSE_NS}}}"
    assert body.tag == f"{ns}ErrorResponse"
    assert body[0].tag == f"{ns}Application" and body[0].text == "Exampleshire"
    first, second, third = body.findall(f"{ns}Error")
    assert [etree.QName(c).localname for c in first] == [
        "RaisedBy",
        "Number",
        "Type",
        "Text",
        "Location",
        "Location",
    ]
    assert first.findtext(f"{ns}RaisedBy") == "Department"
    assert first.findtext(f"{ns}Number") == "3001"
    assert first.findtext(f"{ns}Type") == "business"
    assert first.findtext(f"{ns}Text") == "Bill not found"
    assert second.findtext(f"{ns}Type") == "schema"
    assert second.findtext(f"{ns}Location") == "/ViewRequest/Ref"
    # Only business and schema exist in ErrorResponse.
    assert third.findtext(f"{ns}Type") == "business"


def test_format_timestamp():
    assert replies.format_timestamp(WHEN) == "2014-04-11T15:41:39.775"
    bst = timezone(timedelta(hours=1))
    assert replies.format_timestamp(datetime(2014, 4, 11, 16, 41, 39, tzinfo=bst)) == (
        "2014-04-11T15:41:39.000"
    )
    assert replies.format_timestamp(datetime(2014, 4, 11, 15, 41, 39, 999_999)) == (
        "2014-04-11T15:41:39.999"
    )


def test_new_correlation_id():
    ids = {replies.new_correlation_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9A-F]{32}", i) for i in ids)
