"""IRmark (reference §7): known answers, verification, whitespace and namespace rules."""

from __future__ import annotations

import hashlib
from base64 import b32encode, b64encode

import pytest
from lxml import etree

from gateway.govtalk.irmark import (
    IRmark,
    apply_body_irmark,
    apply_irmark,
    body_with_namespaces,
    canonical_body,
    compute_body_irmark,
    compute_irmark,
    find_body,
    find_irmark,
    verify_body_irmark,
    verify_irmark,
)

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

ENV = "http://www.govtalk.gov.uk/CM/envelope"

# {root_ns} adds declarations on the root, {body_ns} on Body, {mark} is where the IRmark goes.
TEMPLATE = """<GovTalkMessage xmlns="http://www.govtalk.gov.uk/CM/envelope"{root_ns}>
  <EnvelopeVersion>2.0</EnvelopeVersion>
  <Header><MessageDetails><Class>LA-PLANNING-COMMENT</Class><Qualifier>request</Qualifier></MessageDetails></Header>
  <GovTalkDetails/>
  <Body{body_ns}>
    <PlanningComment xmlns="urn:example:planning">
      <Header>
        <Reference>24/01234/FUL</Reference>
        {mark}
        <Sender>Citizen</Sender>
      </Header>
      <Comment>Too tall &amp; too close</Comment>
    </PlanningComment>
  </Body>
</GovTalkMessage>"""

EMPTY_MARK = '<IRmark Type="generic"></IRmark>'


def envelope(mark: str = EMPTY_MARK, *, root_ns: str = "", body_ns: str = "") -> etree._ElementTree:
    text = TEMPLATE.format(mark=mark, root_ns=root_ns, body_ns=body_ns)
    return etree.ElementTree(etree.fromstring(text.encode("utf-8")))


def body_of(doc: etree._ElementTree | etree._Element) -> etree._Element:
    body = find_body(doc)
    assert body is not None
    return body


# -- known answers -------------------------------------------------------------------------------

# The canonical form written out by hand from the C14N 1.0 rules: in-scope default namespace on
# Body, the IRmark element gone but both whitespace runs around it kept, &amp; re-escaped.
EXPECTED_CANONICAL = (
    b'<Body xmlns="http://www.govtalk.gov.uk/CM/envelope">\n'
    b'    <PlanningComment xmlns="urn:example:planning">\n'
    b"      <Header>\n"
    b"        <Reference>24/01234/FUL</Reference>\n"
    b"        \n"
    b"        <Sender>Citizen</Sender>\n"
    b"      </Header>\n"
    b"      <Comment>Too tall &amp; too close</Comment>\n"
    b"    </PlanningComment>\n"
    b"  </Body>"
)


def test_canonical_form_is_the_hand_computed_one():
    assert canonical_body(body_of(envelope())) == EXPECTED_CANONICAL


def test_digest_and_encodings_match_an_independent_sha1():
    digest = hashlib.sha1(EXPECTED_CANONICAL).digest()
    mark = compute_irmark(envelope())
    assert mark == IRmark(digest)
    assert mark.base64 == b64encode(digest).decode() and len(mark.base64) == 28
    assert mark.base32 == b32encode(digest).decode() and len(mark.base32) == 32
    # Pinned so that any change to the procedure shows up here.
    assert mark.base64 == "je/SW3GmLGoTisPs7hBmnlI/fPg="
    assert mark.base32 == "RXX5EW3RUYWGUE4KYPWO4EDGTZJD67HY"


# -- compute, insert, verify -----------------------------------------------------------------------


def test_apply_then_verify_round_trip():
    doc = envelope()
    assert find_irmark(doc) == ""
    mark = apply_irmark(doc)
    assert find_irmark(doc) == mark.base64
    assert verify_irmark(doc) is None
    # Re-parsed from its serialisation, the marked document still verifies.
    again = etree.ElementTree(etree.fromstring(etree.tostring(doc)))
    assert verify_irmark(again) is None
    # The mark does not depend on its own value.
    assert compute_irmark(again) == mark


def test_tampered_body_is_2021():
    doc = envelope()
    apply_irmark(doc)
    text = etree.tostring(doc).replace(b"Too tall", b"Too taLl")
    error = verify_irmark(etree.ElementTree(etree.fromstring(text)))
    assert error is not None
    assert error.number == 2021
    assert error.raised_by == "Department"


def test_tampered_mark_is_2021():
    doc = envelope()
    mark = apply_irmark(doc)
    wrong = ("A" if mark.base64[0] != "A" else "B") + mark.base64[1:]
    error = verify_irmark(envelope(f'<IRmark Type="generic">{wrong}</IRmark>'))
    assert error is not None and error.number == 2021
    assert mark.base64 in error.text  # the expected value helps a developer


@pytest.mark.parametrize("mark", ["", EMPTY_MARK, "<IRmark/>"])
def test_missing_or_empty_mark_is_2022(mark: str):
    error = verify_irmark(envelope(mark))
    assert error is not None and error.number == 2022


def test_no_body_is_2022_and_compute_refuses():
    doc = etree.ElementTree(etree.fromstring(f'<GovTalkMessage xmlns="{ENV}"/>'.encode()))
    error = verify_irmark(doc)
    assert error is not None and error.number == 2022
    with pytest.raises(ValueError):
        compute_irmark(doc)
    with pytest.raises(ValueError):
        apply_irmark(envelope(""))  # nothing to fill in


def test_compute_does_not_modify_the_document():
    doc = envelope('<IRmark Type="generic">abc</IRmark>')
    before = etree.tostring(doc)
    compute_irmark(doc)
    verify_irmark(doc)
    assert etree.tostring(doc) == before


# -- whitespace around the IRmark ------------------------------------------------------------------


@pytest.mark.parametrize(
    "mark",
    [
        EMPTY_MARK,
        "<IRmark/>",
        '<IRmark Type="generic">Xq4Ru1VHvqXb31eSb/pL2GhS/8c=</IRmark>',
        '<x:IRmark xmlns:x="urn:elsewhere">anything</x:IRmark>',  # any namespace
        "<IRmark><!-- a comment -->nested<b/>content</IRmark>",
    ],
)
def test_mark_removed_whitespace_kept(mark: str):
    # Removing the element is exactly like never having had it: both whitespace runs stay.
    assert compute_irmark(envelope(mark)) == compute_irmark(envelope(""))


def test_whitespace_around_the_mark_is_significant():
    without_gap = TEMPLATE.replace("\n        {mark}\n", "\n{mark}").format(
        mark=EMPTY_MARK, root_ns="", body_ns=""
    )
    doc = etree.ElementTree(etree.fromstring(without_gap.encode()))
    assert compute_irmark(doc) != compute_irmark(envelope())


def test_mark_as_first_child_keeps_its_tail_in_the_parent_text():
    body = etree.fromstring(
        b'<Body xmlns="http://www.govtalk.gov.uk/CM/envelope"><P xmlns="urn:p">'
        b"<IRmark>x</IRmark>\n  <A>1</A></P></Body>"
    )
    assert canonical_body(body) == (
        b'<Body xmlns="http://www.govtalk.gov.uk/CM/envelope"><P xmlns="urn:p">\n  <A>1</A></P></Body>'
    )


def test_comments_are_not_digested():
    with_comment = TEMPLATE.replace("<Sender>", "<!-- note --><Sender>").format(
        mark=EMPTY_MARK, root_ns="", body_ns=""
    )
    doc = etree.ElementTree(etree.fromstring(with_comment.encode()))
    assert compute_irmark(doc) == compute_irmark(envelope())


# -- namespaces in scope from the root -------------------------------------------------------------


def test_root_prefix_used_in_body_equals_local_declaration():
    prefixed = TEMPLATE.replace("<Sender>Citizen</Sender>", '<Sender p:role="x">Citizen</Sender>')
    on_root = etree.fromstring(
        prefixed.format(mark=EMPTY_MARK, root_ns=' xmlns:p="urn:p"', body_ns="").encode()
    )
    on_body = etree.fromstring(
        prefixed.format(mark=EMPTY_MARK, root_ns="", body_ns=' xmlns:p="urn:p"').encode()
    )
    assert canonical_body(body_of(on_root)) == canonical_body(body_of(on_body))
    assert compute_irmark(on_root) == compute_irmark(on_body)
    assert (
        b'<Body xmlns="http://www.govtalk.gov.uk/CM/envelope" xmlns:p="urn:p">'
        in canonical_body(body_of(on_root))
    )


def test_unused_root_declarations_are_digested_too():
    # Inclusive C14N: every namespace in scope on Body is rendered, used or not.
    xsi = ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    assert compute_irmark(envelope(root_ns=xsi)) != compute_irmark(envelope())
    assert compute_irmark(envelope(root_ns=xsi)) == compute_irmark(envelope(body_ns=xsi))


def test_detached_body_with_inherited_nsmap():
    doc = envelope(root_ns=' xmlns:p="urn:p"')
    body = find_body(doc)
    assert body is not None
    # A Body re-parsed on its own has lost the root's declarations ...
    alone = etree.fromstring(etree.tostring(body_with_namespaces(body, {})))
    assert "p" in alone.nsmap  # body_with_namespaces copied them on
    bare = etree.fromstring(
        etree.tostring(body).replace(b' xmlns:p="urn:p"', b"")  # as if cut out of the text
    )
    assert "p" not in bare.nsmap
    assert compute_body_irmark(bare) != compute_irmark(doc)
    # ... and gets them back from the root's nsmap.
    assert compute_body_irmark(bare, doc.getroot().nsmap) == compute_irmark(doc)
    assert compute_body_irmark(alone) == compute_irmark(doc)


def test_inner_declaration_wins_over_inherited():
    body = etree.fromstring(
        b'<Body xmlns="http://www.govtalk.gov.uk/CM/envelope" xmlns:p="urn:inner"/>'
    )
    assert compute_body_irmark(body, {"p": "urn:outer"}) == compute_body_irmark(body)


def test_body_level_functions_on_a_payload():
    payload = etree.fromstring(
        b'<PlanningComment xmlns="urn:example:planning">\n  <IRmark/>\n  <A>1</A>\n</PlanningComment>'
    )
    assert verify_body_irmark(payload) is not None
    mark = apply_body_irmark(payload)
    assert verify_body_irmark(payload) is None
    assert mark == compute_body_irmark(payload)
    with pytest.raises(ValueError):
        apply_body_irmark(etree.fromstring(b"<P/>"))
