"""serialise(): schema order, declaration, and parse(serialise(env)) == env."""

from __future__ import annotations

import pytest
from lxml import etree

from gateway.govtalk.errors import GovTalkError
from gateway.govtalk.model import (
    Authentication,
    Channel,
    ChannelRouting,
    Envelope,
    Key,
    MessageDetails,
    SenderDetails,
)
from gateway.govtalk.parse import envelope_schema, parse
from gateway.govtalk.serialise import serialise

from .samples import DSIG, ENV_NS, assert_same_envelope, c14n, envelope

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass


def signature() -> etree._Element:
    sig = etree.Element(f"{{{DSIG}}}Signature", nsmap={"ds": DSIG})
    etree.SubElement(sig, f"{{{DSIG}}}SignatureValue").text = "c2ln"
    return sig


def full_envelope() -> Envelope:
    body = etree.fromstring(
        b'<c:ViewRequest xmlns:c="urn:example:ctax"><c:Ref a="1">42</c:Ref></c:ViewRequest>'
    )
    return Envelope(
        message=MessageDetails(
            class_="LA-CTAX-VIEW-TIL",
            qualifier="request",
            function="submit",
            transaction_id="0123",
            audit_id="audit-1",
            correlation_id="0123456789ABCDEF0123456789ABCDEF",
            response_end_point="https://hub.example/poll",
            poll_interval=10,
            transformation="XML",
            gateway_test=True,
            gateway_timestamp="2014-04-11T15:41:39.775",
        ),
        sender=SenderDetails(
            sender_id="8CK3SA26U1G4",
            authentications=[
                Authentication(method="clear", role="principal", value="pw"),
                Authentication(method="W3Csigned", role="principal", signature=signature()),
            ],
            x509_certificate="MIIB",
            email_address="someone@example.org",
        ),
        keys=[Key("UPRN", "100023336956"), Key("PostCode", "AB1 2CD")],
        organisations=["Exampleshire", "Otherborough"],
        channel_routing=[
            ChannelRouting(
                channel=Channel(uri="1234", product="Filer", version="4.2"),
                ids=[("vendor", "V-77"), ("build", "9")],
                timestamp="2014-04-11T15:41:00",
            ),
            ChannelRouting(channel=Channel(name="Portal")),
        ],
        errors=[
            GovTalkError(3001, "Reference not known", "Department", "business", ("/a/b", "/a/c")),
            GovTalkError(1046, "Not enrolled"),
        ],
        body=body,
        envelope_version="2.0",
    )


def test_full_round_trip():
    env = full_envelope()
    again = parse(serialise(env))
    assert_same_envelope(env, again)
    # The comparison helper really compares elements: a changed body must show.
    assert again.body is not None
    assert c14n(again.body) != c14n(
        etree.fromstring(b"<c:ViewRequest xmlns:c='urn:example:ctax'/>")
    )


def test_minimal_round_trip():
    env = Envelope(message=MessageDetails(class_="LA-CTAX-VIEW", qualifier="poll"))
    assert_same_envelope(env, parse(serialise(env)))


def test_round_trip_of_a_parsed_client_envelope():
    env = parse(envelope())
    assert_same_envelope(env, parse(serialise(env)))


def test_output_is_utf8_with_declaration_and_default_namespace():
    env = full_envelope()
    env.keys = [Key("Name", "Zoë £")]
    data = serialise(env)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert "Zoë £".encode() in data
    root = etree.fromstring(data)
    assert root.tag == f"{{{ENV_NS}}}GovTalkMessage"
    assert root.nsmap[None] == ENV_NS


def test_output_is_valid_against_the_schema_in_schema_order():
    data = serialise(full_envelope())
    assert envelope_schema().validate(etree.fromstring(data))
    md = etree.fromstring(data).find(f"{{{ENV_NS}}}Header/{{{ENV_NS}}}MessageDetails")
    assert md is not None
    assert [etree.QName(el).localname for el in md] == [
        "Class",
        "Qualifier",
        "Function",
        "TransactionID",
        "AuditID",
        "CorrelationID",
        "ResponseEndPoint",
        "Transformation",
        "GatewayTest",
        "GatewayTimestamp",
    ]


def test_poll_interval_attribute():
    data = serialise(full_envelope())
    endpoint = etree.fromstring(data).find(f".//{{{ENV_NS}}}ResponseEndPoint")
    assert endpoint is not None
    assert endpoint.get("PollInterval") == "10"
    assert endpoint.text == "https://hub.example/poll"


def test_error_shape():
    data = serialise(full_envelope())
    error = etree.fromstring(data).find(f".//{{{ENV_NS}}}GovTalkErrors/{{{ENV_NS}}}Error")
    assert error is not None
    assert [etree.QName(el).localname for el in error] == [
        "RaisedBy",
        "Number",
        "Type",
        "Text",
        "Location",
        "Location",
    ]


def test_serialise_does_not_move_the_callers_elements():
    env = full_envelope()
    body = env.body
    assert body is not None
    serialise(env)
    assert env.body is body
    assert body.getparent() is None
    assert env.sender is not None
    assert env.sender.authentications[1].signature is not None
    assert env.sender.authentications[1].signature.getparent() is None
