"""Parsing valid envelopes, the leniencies of reference §9, and schema failures."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from lxml import etree

from gateway.govtalk.errors import GovTalkFault
from gateway.govtalk.model import DSIG_NS
from gateway.govtalk.parse import parse

from .samples import DSIG, ENV_NS, envelope, poll

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

CLEAR_WITH_ROLE = """
    <SenderDetails><IDAuthentication><SenderID>U1</SenderID>
      <Authentication><Method>clear</Method><Role>{role}</Role><Value>pw</Value></Authentication>
    </IDAuthentication></SenderDetails>"""


DEFAULT_SIGNED_BODY = """
  <Body Id="Body">
    <ViewRequest xmlns="urn:example:ctax"><PropertyReference>1</PropertyReference></ViewRequest>
  </Body>"""


def fault_of(data: bytes) -> GovTalkFault:
    with pytest.raises(GovTalkFault) as info:
        parse(data)
    return info.value


# -- a full submission -----------------------------------------------------------------------


def test_submission_fills_every_field():
    data = envelope(
        extra_details="""
      <ResponseEndPoint PollInterval="10">https://hub.example/poll</ResponseEndPoint>
      <Transformation>XML</Transformation>
      <GatewayTest>1</GatewayTest>
      <GatewayTimestamp>2014-04-11T15:41:39.775</GatewayTimestamp>""",
        govtalk_details="""
    <Keys><Key Type="UPRN">100023336956</Key><Key Type="PostCode">AB1 2CD</Key></Keys>
    <TargetDetails><Organisation>Exampleshire</Organisation></TargetDetails>
    <ChannelRouting>
      <Channel><URI>1234</URI><Product>CouncilFiler</Product><Version>4.2</Version></Channel>
      <ID Type="vendor">V-77</ID>
      <Timestamp>2014-04-11T15:41:00</Timestamp>
    </ChannelRouting>""",
    )
    env = parse(data)
    md = env.message
    assert (md.class_, md.qualifier, md.function) == ("LA-CTAX-VIEW", "request", "submit")
    assert md.transaction_id == "20140411154139"
    assert md.correlation_id is None
    assert md.response_end_point == "https://hub.example/poll"
    assert md.poll_interval == 10
    assert md.transformation == "XML"
    assert md.gateway_test is True
    assert md.gateway_timestamp == "2014-04-11T15:41:39.775"
    assert env.envelope_version == "2.0"
    assert env.sender is not None
    assert env.sender.sender_id == "8CK3SA26U1G4"
    assert env.sender.email_address == "someone@example.org"
    (auth,) = env.sender.authentications
    assert (auth.method, auth.role, auth.value, auth.signature) == (
        "clear",
        "principal",
        "secret password",
        None,
    )
    assert env.keys_dict == {"UPRN": "100023336956", "PostCode": "AB1 2CD"}
    assert env.organisation == "Exampleshire"
    (routing,) = env.channel_routing
    assert routing.channel.uri == "1234"
    assert routing.channel.product == "CouncilFiler"
    assert routing.channel.version == "4.2"
    assert routing.ids == [("vendor", "V-77")]
    assert routing.timestamp == "2014-04-11T15:41:00"
    assert env.body is not None
    assert env.body.tag == "{urn:example:ctax}ViewRequest"
    assert env.body.findtext("{urn:example:ctax}PropertyReference") == "100023336956"
    # The document is the tree the body belongs to, kept for signatures and IRmark.
    assert env.document is not None
    assert env.body.getroottree().getroot() is env.document.getroot()


def test_gateway_test_zero_and_absent_are_live():
    assert (
        parse(envelope(extra_details="<GatewayTest>0</GatewayTest>")).message.gateway_test is False
    )
    assert parse(envelope()).message.gateway_test is False


def test_govtalk_errors_are_parsed_into_values():
    data = envelope(
        qualifier="error",
        govtalk_details="""
    <GovTalkErrors>
      <Error>
        <RaisedBy>Department</RaisedBy><Number>3001</Number><Type>business</Type>
        <Text>Reference not known</Text><Text>Check the bill</Text>
        <Location>/ViewRequest/PropertyReference</Location>
      </Error>
      <Error><RaisedBy>Gateway</RaisedBy><Number>1046</Number><Type>fatal</Type></Error>
    </GovTalkErrors>""",
        body="",
    )
    first, second = parse(data).errors
    assert first.number == 3001
    assert first.raised_by == "Department"
    assert first.type == "business"
    assert first.text == "Reference not known Check the bill"
    assert first.locations == ("/ViewRequest/PropertyReference",)
    assert (second.number, second.type, second.text, second.locations) == (1046, "fatal", "", ())


def test_correlation_id_is_upper_cased():
    env = parse(poll("0123456789abcdef0123456789abcdef"))
    assert env.message.correlation_id == "0123456789ABCDEF0123456789ABCDEF"


def test_whitespace_only_body_is_no_body():
    env = parse(envelope(body="<Body>\n   \n</Body>"))
    assert env.body is None


def test_comments_inside_values_are_ignored():
    env = parse(envelope(class_="LA-<!-- view -->CTAX-VIEW"))
    assert env.message.class_ == "LA-CTAX-VIEW"


def test_parse_leaves_the_document_exactly_as_received():
    data = envelope(
        sender="""
    <SenderDetails><IDAuthentication>
      <SenderID>U1</SenderID>
      <EmailAddress>first@example.org</EmailAddress>
      <Authentication><Method>clear</Method><Value>pw</Value></Authentication>
      <EmailAddress>second@example.org</EmailAddress>
    </IDAuthentication></SenderDetails>"""
    )
    env = parse(data)
    assert env.document is not None
    reference = etree.fromstring(data).getroottree()
    assert etree.tostring(env.document) == etree.tostring(reference)


# -- the leniencies of reference §9 ------------------------------------------------------------


def test_email_address_inside_id_authentication_is_tolerated():
    env = parse(
        envelope(
            sender="""
    <SenderDetails>
      <IDAuthentication>
        <SenderID>8CK3SA26U1G4</SenderID>
        <Authentication><Method>clear</Method><Role>principal</Role><Value>pw</Value></Authentication>
        <EmailAddress>misplaced@example.org</EmailAddress>
      </IDAuthentication>
    </SenderDetails>"""
        )
    )
    assert env.sender is not None
    assert env.sender.email_address == "misplaced@example.org"
    assert env.sender.authentications[0].value == "pw"
    # It stays where the client put it in the kept document.
    assert env.document is not None
    assert (
        env.document.find(f".//{{{ENV_NS}}}IDAuthentication/{{{ENV_NS}}}EmailAddress") is not None
    )


def test_email_address_in_its_proper_place_wins_over_the_misplaced_one():
    env = parse(
        envelope(
            sender="""
    <SenderDetails>
      <IDAuthentication>
        <Authentication><Method>clear</Method><Value>pw</Value></Authentication>
        <EmailAddress>misplaced@example.org</EmailAddress>
      </IDAuthentication>
      <EmailAddress>proper@example.org</EmailAddress>
    </SenderDetails>"""
        )
    )
    assert env.sender is not None
    assert env.sender.email_address == "proper@example.org"


@pytest.mark.parametrize(
    "correlation",
    ["<CorrelationID/>", "<CorrelationID></CorrelationID>", "", "<CorrelationID> </CorrelationID>"],
)
def test_empty_or_absent_correlation_id_is_none(correlation):
    assert parse(envelope(correlation=correlation)).message.correlation_id is None


def test_poll_without_sender_details_or_body():
    env = parse(poll())
    assert env.message.qualifier == "poll"
    assert env.message.correlation_id == "0123456789ABCDEF0123456789ABCDEF"
    assert env.sender is None
    assert env.body is None
    assert env.keys == []


def test_poll_with_full_sender_details():
    data = envelope(
        qualifier="poll",
        correlation="<CorrelationID>0123456789ABCDEF0123456789ABCDEF</CorrelationID>",
        body="",
    )
    env = parse(data)
    assert env.sender is not None and env.sender.sender_id == "8CK3SA26U1G4"


def test_digit_only_transaction_id():
    assert parse(envelope(transaction_id="0000123456789")).message.transaction_id == "0000123456789"


def test_role_in_any_case():
    env = parse(envelope(sender=CLEAR_WITH_ROLE.format(role="PRINCIPAL")))
    assert env.sender is not None
    assert env.sender.authentications[0].role == "PRINCIPAL"


def test_envelope_version_1_0():
    assert parse(envelope(version="1.0")).envelope_version == "1.0"


# -- W3Csigned ---------------------------------------------------------------------------------

SIGNED_SENDER = f"""
    <SenderDetails>
      <IDAuthentication>
        <SenderID>8CK3SA26U1G4</SenderID>
        <Authentication>
          <Method>W3Csigned</Method>
          <Role>principal</Role>
          <ds:Signature xmlns:ds="{DSIG}">
            <ds:SignedInfo>
              <ds:Reference URI="#Body"><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference>
            </ds:SignedInfo>
            <ds:SignatureValue>c2lnbmF0dXJl</ds:SignatureValue>
          </ds:Signature>
        </Authentication>
      </IDAuthentication>
    </SenderDetails>"""


def test_w3csigned_signature_element_is_preserved():
    data = envelope(sender=SIGNED_SENDER, body=DEFAULT_SIGNED_BODY)
    env = parse(data)
    assert env.sender is not None
    (auth,) = env.sender.authentications
    assert auth.method == "W3Csigned"
    assert auth.value is None
    sig = auth.signature
    assert sig is not None
    assert sig.tag == f"{{{DSIG_NS}}}Signature"
    assert sig.findtext(f"{{{DSIG_NS}}}SignatureValue") == "c2lnbmF0dXJl"
    # The very element in the received tree, not a copy: verification needs its context.
    assert env.document is not None
    assert sig.getroottree().getroot() is env.document.getroot()
    assert env.body is not None
    body_el = env.body.getparent()
    assert body_el is not None
    assert body_el.get("Id") == "Body"


def test_other_dsig_element_in_authentication_is_refused():
    sender = SIGNED_SENDER.replace("ds:Signature", "ds:KeyInfo")
    fault = fault_of(envelope(sender=sender))
    assert fault.first.number == 1001
    assert "KeyInfo" in fault.first.text
    assert fault.class_ == "LA-CTAX-VIEW"


# -- schema failures -----------------------------------------------------------------------------


def test_bad_qualifier():
    fault = fault_of(envelope(qualifier="submit"))
    assert fault.first.number == 1001
    assert fault.class_ == "LA-CTAX-VIEW"
    assert "Qualifier" in fault.first.text
    assert fault.first.locations == ("/GovTalkMessage/Header/MessageDetails/Qualifier",)


def test_class_too_short():
    fault = fault_of(envelope(class_="ABC"))
    assert fault.first.number == 1001
    assert fault.class_ == "ABC"
    assert "Class" in fault.first.text
    assert fault.first.locations == ("/GovTalkMessage/Header/MessageDetails/Class",)


def test_class_with_forbidden_characters():
    fault = fault_of(envelope(class_="LA CTAX/VIEW"))
    assert fault.first.number == 1001
    assert fault.first.locations == ("/GovTalkMessage/Header/MessageDetails/Class",)


@pytest.mark.parametrize("tid", ["12G4", "abc123", "0" * 33])
def test_bad_transaction_id(tid):
    fault = fault_of(envelope(transaction_id=tid))
    assert fault.first.number == 1001
    assert fault.class_ == "LA-CTAX-VIEW"
    assert "TransactionID" in fault.first.text
    assert fault.first.locations == ("/GovTalkMessage/Header/MessageDetails/TransactionID",)


def test_bad_correlation_id():
    fault = fault_of(poll("NOT-A-CORRELATION-ID"))
    assert fault.first.number == 1001
    assert fault.first.locations == ("/GovTalkMessage/Header/MessageDetails/CorrelationID",)


def test_bad_function_and_envelope_version():
    assert fault_of(envelope(function="send")).first.number == 1001
    assert fault_of(envelope(version="3.0")).first.locations == ("/GovTalkMessage/EnvelopeVersion",)


def test_missing_qualifier_names_the_element():
    data = envelope().replace(b"<Qualifier>request</Qualifier>", b"")
    fault = fault_of(data)
    assert fault.first.number == 1001
    assert "Qualifier" in fault.first.text


def test_key_without_type_has_an_indexed_location():
    fault = fault_of(envelope(govtalk_details="<Keys><Key Type='A'>1</Key><Key>2</Key></Keys>"))
    assert fault.first.locations == ("/GovTalkMessage/GovTalkDetails/Keys/Key[2]",)


def test_several_schema_errors_are_all_reported():
    fault = fault_of(envelope(qualifier="bogus", transaction_id="xyz"))
    texts = " ".join(e.text for e in fault.errors)
    assert len(fault.errors) >= 2
    assert "Qualifier" in texts and "TransactionID" in texts
    assert all(e.number == 1001 for e in fault.errors)


def test_class_too_long_is_not_echoed():
    fault = fault_of(envelope(class_="A" * 40))
    assert fault.first.number == 1001
    assert fault.class_ is None


def test_unknown_element_in_message_details():
    fault = fault_of(envelope(extra_details="<Priority>high</Priority>"))
    assert fault.first.number == 1001
    assert "Priority" in fault.first.text


# -- threads ---------------------------------------------------------------------------------------


def test_parse_is_safe_from_many_threads():
    # lxml parsers and validators keep per-object state; results must not cross between threads.
    good = envelope(transaction_id="111")
    bad = envelope(qualifier="bogus")

    def one(i: int) -> str:
        try:
            return parse(good if i % 2 else bad).message.transaction_id or ""
        except GovTalkFault as fault:
            return fault.first.locations[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(400)))
    for i, result in enumerate(results):
        expected = "111" if i % 2 else "/GovTalkMessage/Header/MessageDetails/Qualifier"
        assert result == expected
