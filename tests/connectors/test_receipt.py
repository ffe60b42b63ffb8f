"""ReceiptConnector: schema check with XPath Locations, IRmark check, the receipt and -TIL."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

import connectors.receipt
from connectors.protocol import (
    BusinessError,
    Connector,
    ConnectorContext,
    Identity,
    Outcome,
    Response,
    Transaction,
)
from connectors.receipt import RECEIPT_NS, ReceiptConnector
from connectors.sdk import ConnectorConfigError
from gateway.govtalk.irmark import (
    apply_body_irmark,
    apply_irmark,
    body_with_namespaces,
    compute_body_irmark,
    compute_irmark,
    find_body,
)

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

PACKAGE = Path(connectors.receipt.__file__).parent
SERVICE_XSD = PACKAGE / "examples" / "planning-comment.xsd"
EXAMPLE_BODY = (PACKAGE / "examples" / "planning-comment.xml").read_bytes()
RECEIPT_XSD = etree.XMLSchema(etree.parse(str(PACKAGE / "schemas" / "receipt-v1.xsd")))
PC = "urn:govtalk-hub:example:planning-comment:v1"
RECEIVED = datetime(2026, 11, 28, 9, 30, 15, 123456, tzinfo=UTC)
CLOCK = datetime(2030, 1, 1, tzinfo=UTC)


def context(tmp_path: Path, **options: Any) -> ConnectorContext:
    options.setdefault("schema", str(SERVICE_XSD))
    return ConnectorContext(
        name="planning", options=options, data_dir=tmp_path, clock=lambda: CLOCK
    )


def tx(body: bytes = EXAMPLE_BODY, **changes: Any) -> Transaction:
    base = Transaction(
        correlation_id="0123456789ABCDEF0123456789ABCDEF",
        class_="LA-PLANNING-COMMENT",
        organisation="E07000123",
        keys={},
        body=body,
        identity=Identity(user_id=None, auth_method="none"),
        received_at=RECEIVED,
    )
    return dataclasses.replace(base, **changes)


async def run(tmp_path: Path, transaction: Transaction, **options: Any) -> Outcome:
    ctx = context(tmp_path, **options)
    connector = ReceiptConnector(ctx)
    await connector.start()
    try:
        return await connector.handle(transaction, ctx)
    finally:
        await connector.aclose()


def edit(body: bytes, old: bytes, new: bytes, *, remark: bool = True) -> bytes:
    """Change the example body and (by default) give it a correct IRmark again."""
    assert old in body
    root = etree.fromstring(body.replace(old, new))
    if remark:
        apply_body_irmark(root)
    return etree.tostring(root, encoding="utf-8")


def without_irmark(body: bytes = EXAMPLE_BODY) -> bytes:
    root = etree.fromstring(body)
    mark = root.find(f"{{{PC}}}IRmark")
    assert mark is not None
    root.remove(mark)
    return etree.tostring(root, encoding="utf-8")


def receipt_of(outcome: Outcome) -> etree._Element:
    assert isinstance(outcome, Response), outcome
    root = etree.fromstring(outcome.body)
    RECEIPT_XSD.assertValid(root)
    return root


def r(name: str) -> str:
    return f"{{{RECEIPT_NS}}}{name}"


# -- accepted ----------------------------------------------------------------------------------


async def test_satisfies_the_connector_protocol(tmp_path: Path):
    connector = ReceiptConnector(context(tmp_path))
    assert isinstance(connector, Connector)
    assert connector.name == "receipt" and connector.api_version == 1


async def test_valid_body_gets_a_receipt_with_its_irmark(tmp_path: Path):
    receipt = receipt_of(await run(tmp_path, tx()))
    assert receipt.tag == r("SuccessResponse")
    message = receipt.find(r("Message"))
    assert message is not None
    assert message.text == "Thank you for your submission" and message.get("code") == "0000"
    expected = compute_body_irmark(etree.fromstring(EXAMPLE_BODY)).base32
    assert receipt.findtext(r("IRmark")) == expected
    assert len(expected) == 32
    assert receipt.findtext(r("AcceptedTime")) == "2026-11-28T09:30:15Z"
    assert receipt.find(r("Advisory")) is None


async def test_receipt_is_the_same_on_a_retry(tmp_path: Path):
    first = await run(tmp_path, tx())
    assert await run(tmp_path, tx(attempt=2)) == first


async def test_accepted_time_falls_back_to_the_clock(tmp_path: Path):
    receipt = receipt_of(await run(tmp_path, tx(received_at=None)))
    assert receipt.findtext(r("AcceptedTime")) == "2030-01-01T00:00:00Z"


async def test_body_without_irmark_is_accepted_when_not_required(tmp_path: Path):
    receipt = receipt_of(await run(tmp_path, tx(without_irmark())))
    assert receipt.find(r("IRmark")) is None


async def test_test_in_live_adds_the_advisory(tmp_path: Path):
    receipt = receipt_of(await run(tmp_path, tx(test_in_live=True)))
    advisory = receipt.find(r("Advisory"))
    assert advisory is not None
    assert advisory.text == "Test in live: checked, not processed"


async def test_test_in_live_still_checks(tmp_path: Path):
    body = edit(EXAMPLE_BODY, b"<Stance>object", b"<Stance>maybe")
    outcome = await run(tmp_path, tx(body, test_in_live=True))
    assert isinstance(outcome, BusinessError)


# -- schema errors -----------------------------------------------------------------------------


async def test_schema_invalid_is_3001_with_a_location(tmp_path: Path):
    body = edit(EXAMPLE_BODY, b"AB1 2CD", b"not a postcode")
    outcome = await run(tmp_path, tx(body))
    assert isinstance(outcome, BusinessError)
    assert outcome.application == "LA-PLANNING-COMMENT"
    [error] = outcome.errors
    assert error.number == 3001 and error.raised_by == "Department"
    assert error.locations == ("/PlanningComment/Commenter/Postcode",)
    assert "not a postcode" in error.text
    assert "urn:govtalk-hub" not in error.text  # namespaces stripped for readability


async def test_several_schema_errors_each_located(tmp_path: Path):
    body = edit(
        edit(EXAMPLE_BODY, b"<Stance>object", b"<Stance>maybe", remark=False),
        b"<AddressLine>Anytown",
        b"<AddressLine>",
    )
    outcome = await run(tmp_path, tx(body), application="Planning")
    assert isinstance(outcome, BusinessError)
    assert outcome.application == "Planning"
    locations = [loc for error in outcome.errors for loc in error.locations]
    assert locations == ["/PlanningComment/Commenter/AddressLine[2]", "/PlanningComment/Stance"]
    assert all(error.number == 3001 for error in outcome.errors)


async def test_doctype_body_is_refused(tmp_path: Path):
    outcome = await run(tmp_path, tx(b"<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>"))
    assert isinstance(outcome, BusinessError)
    assert outcome.errors[0].number == 3001
    assert "DOCTYPE" in outcome.errors[0].text


# -- IRmark ------------------------------------------------------------------------------------


async def test_wrong_irmark_is_2021(tmp_path: Path):
    tampered = edit(EXAMPLE_BODY, b"overshadow", b"overshad0w", remark=False)
    outcome = await run(tmp_path, tx(tampered))
    assert isinstance(outcome, BusinessError)
    [error] = outcome.errors
    assert error.number == 2021 and error.raised_by == "Department"


async def test_irmark_is_checked_before_the_schema(tmp_path: Path):
    tampered = edit(EXAMPLE_BODY, b"AB1 2CD", b"not a postcode", remark=False)
    outcome = await run(tmp_path, tx(tampered))
    assert isinstance(outcome, BusinessError)
    assert [e.number for e in outcome.errors] == [2021]


async def test_missing_irmark_when_required_is_2022(tmp_path: Path):
    outcome = await run(tmp_path, tx(without_irmark()), require_irmark=True)
    assert isinstance(outcome, BusinessError)
    [error] = outcome.errors
    assert error.number == 2022


async def test_empty_irmark_element_is_2022_even_when_not_required(tmp_path: Path):
    body = EXAMPLE_BODY.replace(
        EXAMPLE_BODY[EXAMPLE_BODY.index(b"<IRmark") : EXAMPLE_BODY.index(b"</IRmark>") + 9],
        b'<IRmark Type="generic"/>',
    )
    outcome = await run(tmp_path, tx(body))
    assert isinstance(outcome, BusinessError)
    assert outcome.errors[0].number == 2022


async def test_required_irmark_present_and_right(tmp_path: Path):
    receipt_of(await run(tmp_path, tx(), require_irmark=True))


async def test_envelope_body_gets_the_hmrc_irmark(tmp_path: Path):
    # The hub passes the envelope Body beside the payload, so the client's envelope-level mark
    # (namespaces inherited from the root) is checked exactly.
    payload = without_irmark().replace(
        b"<ApplicationReference>", b'<IRmark Type="generic"/>\n  <ApplicationReference>'
    )
    envelope = (
        b'<GovTalkMessage xmlns="http://www.govtalk.gov.uk/CM/envelope" xmlns:x="urn:x">\n'
        b"  <EnvelopeVersion>2.0</EnvelopeVersion>\n  <Body>\n    " + payload + b"\n  </Body>\n"
        b"</GovTalkMessage>"
    )
    doc = etree.ElementTree(etree.fromstring(envelope))
    mark = apply_irmark(doc)
    body = find_body(doc)
    assert body is not None
    forwarded = etree.tostring(body_with_namespaces(body), encoding="utf-8")
    marked_payload = etree.tostring(body[0], encoding="utf-8")
    receipt = receipt_of(await run(tmp_path, tx(marked_payload, envelope_body=forwarded)))
    assert receipt.findtext(r("IRmark")) == mark.base32 == compute_irmark(doc).base32
    # The same payload digested on its own does not carry the envelope's mark.
    alone = await run(tmp_path, tx(marked_payload))
    assert isinstance(alone, BusinessError) and alone.errors[0].number == 2021


# -- options -----------------------------------------------------------------------------------


async def test_relative_schema_resolves_against_base_dir(tmp_path: Path):
    shutil.copy(SERVICE_XSD, tmp_path / "service.xsd")
    receipt_of(await run(tmp_path, tx(), schema="service.xsd", base_dir=str(tmp_path)))


@pytest.mark.parametrize(
    "options",
    [{"schema": ""}, {"schema": "x.xsd", "require_irmark": "yes"}],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict[str, Any]):
    with pytest.raises(ConnectorConfigError):
        ReceiptConnector(context(tmp_path, **options))


async def test_missing_or_invalid_schema_fails_at_start(tmp_path: Path):
    with pytest.raises(ConnectorConfigError, match="cannot read"):
        await ReceiptConnector(context(tmp_path, schema=str(tmp_path / "nope.xsd"))).start()
    (tmp_path / "bad.xsd").write_text("<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'><x/>")
    with pytest.raises(ConnectorConfigError, match="not a valid XSD"):
        await ReceiptConnector(context(tmp_path, schema=str(tmp_path / "bad.xsd"))).start()
