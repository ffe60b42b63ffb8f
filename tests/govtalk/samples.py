"""Envelope texts for the GovTalk tests, written the way real client software writes them."""

from __future__ import annotations

import dataclasses

from lxml import etree

from gateway.govtalk.model import Envelope

ENV_NS = "http://www.govtalk.gov.uk/CM/envelope"
DSIG = "http://www.w3.org/2000/09/xmldsig#"

CLEAR_SENDER = """
    <SenderDetails>
      <IDAuthentication>
        <SenderID>8CK3SA26U1G4</SenderID>
        <Authentication>
          <Method>clear</Method>
          <Role>principal</Role>
          <Value>secret password</Value>
        </Authentication>
      </IDAuthentication>
      <EmailAddress>someone@example.org</EmailAddress>
    </SenderDetails>"""

DEFAULT_BODY = """
  <Body>
    <ViewRequest xmlns="urn:example:ctax">
      <PropertyReference>100023336956</PropertyReference>
    </ViewRequest>
  </Body>"""


def envelope(
    *,
    version: str = "2.0",
    class_: str = "LA-CTAX-VIEW",
    qualifier: str = "request",
    function: str | None = "submit",
    transaction_id: str | None = "20140411154139",
    correlation: str = "<CorrelationID/>",
    extra_details: str = "",
    sender: str = CLEAR_SENDER,
    govtalk_details: str = '<Keys><Key Type="UPRN">100023336956</Key></Keys>',
    body: str = DEFAULT_BODY,
    root_open: str = f'<GovTalkMessage xmlns="{ENV_NS}">',
    root_close: str = "</GovTalkMessage>",
    prolog: str = '<?xml version="1.0" encoding="UTF-8"?>\n',
) -> bytes:
    """A request envelope; every part can be replaced with a raw fragment."""
    function_el = f"<Function>{function}</Function>" if function is not None else ""
    tid = f"<TransactionID>{transaction_id}</TransactionID>" if transaction_id is not None else ""
    text = f"""{prolog}{root_open}
  <EnvelopeVersion>{version}</EnvelopeVersion>
  <Header>
    <MessageDetails>
      <Class>{class_}</Class>
      <Qualifier>{qualifier}</Qualifier>
      {function_el}
      {tid}
      {correlation}
      {extra_details}
    </MessageDetails>{sender}
  </Header>
  <GovTalkDetails>{govtalk_details}</GovTalkDetails>{body}
{root_close}"""
    return text.encode("utf-8")


def poll(
    correlation_id: str = "0123456789ABCDEF0123456789ABCDEF", *, class_: str = "LA-CTAX-VIEW"
) -> bytes:
    """A poll as the leanest clients send it: no SenderDetails, no Body."""
    return envelope(
        class_=class_,
        qualifier="poll",
        correlation=f"<CorrelationID>{correlation_id}</CorrelationID>",
        sender="",
        govtalk_details="",
        body="",
    )


def c14n(el: etree._Element | None) -> bytes | None:
    """Exclusive canonical form: equal for equal content wherever the element sits."""
    if el is None:
        return None
    return etree.tostring(el, method="c14n", exclusive=True)


def without_elements(env: Envelope) -> Envelope:
    """The envelope with its lxml elements blanked, so == compares every other field."""
    sender = env.sender
    if sender is not None:
        sender = dataclasses.replace(
            sender,
            authentications=[
                dataclasses.replace(a, signature=None) for a in sender.authentications
            ],
        )
    return dataclasses.replace(env, sender=sender, body=None, document=None)


def assert_same_envelope(a: Envelope, b: Envelope) -> None:
    """Field-by-field equality, comparing elements by canonical XML."""
    assert without_elements(a) == without_elements(b)
    assert c14n(a.body) == c14n(b.body)
    sigs_a = [x.signature for x in a.sender.authentications] if a.sender else []
    sigs_b = [x.signature for x in b.sender.authentications] if b.sender else []
    assert [c14n(s) for s in sigs_a] == [c14n(s) for s in sigs_b]
