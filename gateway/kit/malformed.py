"""Bodies a connector must refuse cleanly, derived from its own valid sample.

Each is something the hub can really deliver: well-formed XML within the envelope's depth limit
(the hub refuses DOCTYPEs, entities and non-XML before any connector sees them). The right
answer to each is a BusinessError — 3001 or a 4xxx schema error — never an exception, a
Response, or a Failed (which tells the citizen to resubmit the same thing later).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from lxml import etree

from connectors.sdk import load_schema
from gateway.govtalk.model import default_nsmap
from gateway.kit.samples import Sample, Samples

UNEXPECTED_NS = "urn:govtalk-hub:conformance:unexpected"
HOSTILE_TEXT = (
    "'; DROP TABLE accounts; -- <script>alert(1)</script> \u202e\u0301\U0001f4a3 %s %n {0}"
)
# Python refuses int() of more than 4300 digits: a value that crashes a naive int(reference).
OVERSIZED_DIGITS = 100_000
# The envelope allows 64 levels and the payload root sits at level 3.
NESTING = 48


def malformed_cases(samples: Samples) -> list[Sample]:
    """The built-in cases, any the request schema adds, then the supplier's own."""
    root = etree.fromstring(samples.valid.body)
    keys = samples.valid.keys
    cases = [
        _case("wrong-root", _wrong_root(), keys),
        _case("wrong-namespace", _renamespaced(root), keys),
        _case("empty", _bare(root), keys),
        _case("hostile-text", _with_leaf_text(root, HOSTILE_TEXT), keys),
        _case("oversized-value", _with_leaf_text(root, "9" * OVERSIZED_DIGITS), keys),
        _case("deep-nesting", _deeply_nested(root), keys),
    ]
    if samples.request_schema is not None:
        unknown = _with_unknown_child(root)
        # Only a body the supplier's own schema rejects: schemas may allow extension points.
        if not load_schema(samples.request_schema).validate(unknown):
            cases.append(_case("unknown-element", unknown, keys))
    return [*cases, *samples.malformed]


def _case(name: str, root: etree._Element, keys: Mapping[str, str]) -> Sample:
    return Sample(body=etree.tostring(root, encoding="utf-8"), keys=dict(keys), name=name)


def _wrong_root() -> etree._Element:
    root = etree.Element(
        f"{{{UNEXPECTED_NS}}}UnexpectedRequest", nsmap=default_nsmap(UNEXPECTED_NS)
    )
    etree.SubElement(root, f"{{{UNEXPECTED_NS}}}Anything").text = "1"
    return root


def _renamespaced(root: etree._Element) -> etree._Element:
    """The valid body rebuilt with every element in a namespace the class does not use."""

    def moved(el: etree._Element, parent: etree._Element | None) -> etree._Element:
        tag = etree.QName(UNEXPECTED_NS, etree.QName(el).localname).text
        if parent is None:
            copy_ = etree.Element(tag, nsmap=default_nsmap(UNEXPECTED_NS))
        else:
            copy_ = etree.SubElement(parent, tag)
        for name, value in el.items():
            copy_.set(name, value)
        copy_.text, copy_.tail = el.text, el.tail
        for child in el:
            if isinstance(child.tag, str):
                moved(child, copy_)
        return copy_

    return moved(root, None)


def _with_leaf_text(root: etree._Element, text: str) -> etree._Element:
    """The valid body with every value (leaf element text and attribute) replaced by text."""
    changed = copy.deepcopy(root)
    for el in changed.iter():
        if not isinstance(el.tag, str):
            continue
        if len(el) == 0 and el is not changed:
            el.text = text
        for name in el.attrib:
            el.set(name, text)
    if len(changed) == 0:
        changed.text = text
    return changed


def _deeply_nested(root: etree._Element) -> etree._Element:
    """The valid body's root holding only a chain of NESTING unknown elements."""
    nested = _bare(root)
    namespace = etree.QName(root).namespace
    parent = nested
    for _ in range(NESTING):
        parent = etree.SubElement(parent, etree.QName(namespace, "Nested").text)
    parent.text = "deep"
    return nested


def _bare(root: etree._Element) -> etree._Element:
    """The root element alone: same name and namespace, no attributes, children or text."""
    namespace = etree.QName(root).namespace
    return etree.Element(root.tag, nsmap=default_nsmap(namespace) if namespace else None)


def _with_unknown_child(root: etree._Element) -> etree._Element:
    extended = copy.deepcopy(root)
    namespace = etree.QName(root).namespace
    etree.SubElement(extended, etree.QName(namespace, "ConformanceUnexpected").text).text = "x"
    return extended
