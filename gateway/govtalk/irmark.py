"""Body digest (IRmark): SHA-1 of the canonical GovTalk Body with the IRmark element removed.

Procedure (reference §7, as HMRC's generic IRmark transform does it): take the envelope's Body,
copy onto it every namespace declaration in scope from the root, remove the IRmark element but
keep the whitespace around it, canonicalise with inclusive C14N 1.0 without comments, SHA-1, then
base64 (28 chars, carried in the payload) or base32 (32 chars, shown on receipts).
Pure: no I/O; inputs are never modified except by the apply_* functions, which say so.
"""

from __future__ import annotations

import copy
import hashlib
from base64 import b32encode, b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from lxml import etree

from gateway.govtalk.errors import GovTalkError
from gateway.govtalk.model import ENVELOPE_NS

IRMARK_LOCAL_NAME = "IRmark"

_BODY_TAG = f"{{{ENVELOPE_NS}}}Body"

Document = etree._ElementTree | etree._Element
NsMap = Mapping[str | None, str]


@dataclass(frozen=True, slots=True)
class IRmark:
    """A body digest, with the two encodings HMRC uses."""

    digest: bytes  # the raw 20-byte SHA-1

    @property
    def base64(self) -> str:
        """The 28-character form carried in the payload's IRmark element."""
        return b64encode(self.digest).decode("ascii")

    @property
    def base32(self) -> str:
        """The 32-character form shown on receipts."""
        return b32encode(self.digest).decode("ascii")


def find_body(document: Document) -> etree._Element | None:
    """The envelope's Body element (a child of the GovTalkMessage root), or None."""
    root = document.getroot() if isinstance(document, etree._ElementTree) else document
    return root.find(_BODY_TAG)


def body_with_namespaces(
    body: etree._Element, inherited_nsmap: NsMap | None = None
) -> etree._Element:
    """A detached deep copy of body carrying every namespace declaration in scope on it."""
    clone = copy.deepcopy(body)
    nsmap: dict[str | None, str] = dict(inherited_nsmap or {})
    # body.nsmap already holds the in-scope declarations when the body still sits in its
    # envelope; the inner scope wins over what the caller says the root declared.
    nsmap.update(body.nsmap)
    if etree.QName(clone).namespace is None:
        # A default namespace on an unqualified element would silently move it into that namespace.
        nsmap.pop(None, None)
    # lxml-stubs type nsmap keys as str, but lxml takes None for the default namespace.
    detached = etree.Element(clone.tag, nsmap=cast("dict[str, str]", nsmap))
    detached.attrib.update(clone.attrib)
    detached.text = clone.text
    for child in list(clone):
        detached.append(child)  # moves the child together with its tail
    return detached


def canonical_body(body: etree._Element, inherited_nsmap: NsMap | None = None) -> bytes:
    """The exact bytes the IRmark digests: C14N of the body without its IRmark elements."""
    detached = body_with_namespaces(body, inherited_nsmap)
    for mark in _irmark_elements(detached):
        _remove_keeping_whitespace(mark)
    return etree.tostring(detached, method="c14n", exclusive=False, with_comments=False)


def compute_body_irmark(body: etree._Element, inherited_nsmap: NsMap | None = None) -> IRmark:
    """The IRmark of a Body element given the namespaces declared on the root above it."""
    return IRmark(hashlib.sha1(canonical_body(body, inherited_nsmap)).digest())


def compute_irmark(document: Document) -> IRmark:
    """The IRmark of a whole GovTalkMessage."""
    return compute_body_irmark(_require_body(document))


def find_body_irmark(body: etree._Element) -> str | None:
    """The IRmark value carried inside body (first in document order), stripped, or None."""
    marks = _irmark_elements(body)
    if not marks:
        return None
    return (marks[0].text or "").strip()


def find_irmark(document: Document) -> str | None:
    """The IRmark value carried in a GovTalkMessage's Body, or None."""
    body = find_body(document)
    return None if body is None else find_body_irmark(body)


def verify_body_irmark(
    body: etree._Element, inherited_nsmap: NsMap | None = None
) -> GovTalkError | None:
    """None when the body's IRmark matches its digest; else 2021 (wrong) or 2022 (missing)."""
    found = find_body_irmark(body)
    if not found:
        return GovTalkError.of(2022, "The body does not carry an IRmark")
    expected = compute_body_irmark(body, inherited_nsmap)
    if found != expected.base64:
        # It is an integrity check, not a secret: showing the expected value helps developers.
        return GovTalkError.of(
            2021, f"The IRmark {found!r} does not match the body's digest {expected.base64!r}"
        )
    return None


def verify_irmark(document: Document) -> GovTalkError | None:
    """None when a GovTalkMessage's IRmark matches its Body; else 2021 or 2022."""
    body = find_body(document)
    if body is None:
        return GovTalkError.of(2022, "The message has no Body, so no IRmark")
    return verify_body_irmark(body)


def apply_body_irmark(body: etree._Element, inherited_nsmap: NsMap | None = None) -> IRmark:
    """Compute the body's IRmark and write it into its IRmark elements, in place."""
    marks = _irmark_elements(body)
    if not marks:
        raise ValueError("the body has no IRmark element to fill in")
    irmark = compute_body_irmark(body, inherited_nsmap)
    for mark in marks:
        for child in list(mark):
            mark.remove(child)
        mark.text = irmark.base64
    return irmark


def apply_irmark(document: Document) -> IRmark:
    """Compute a GovTalkMessage's IRmark and write it into the Body's IRmark element, in place."""
    return apply_body_irmark(_require_body(document))


def _require_body(document: Document) -> etree._Element:
    body = find_body(document)
    if body is None:
        raise ValueError("the GovTalkMessage has no envelope Body")
    return body


def _irmark_elements(body: etree._Element) -> list[etree._Element]:
    # Plain iteration rather than a shared compiled XPath: callers may run in worker threads.
    return [
        el
        for el in body.iter(etree.Element)
        if el is not body and etree.QName(el).localname == IRMARK_LOCAL_NAME
    ]


def _remove_keeping_whitespace(element: etree._Element) -> None:
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail
    if tail:
        # lxml drops an element's tail with it; the digest must keep that text where it was.
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)
