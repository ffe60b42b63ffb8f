"""Parsing untrusted request bodies without entities, network access or DTDs."""

from __future__ import annotations

from lxml import etree


class NotWellFormed(ValueError):
    """The body is not well-formed XML."""


class DoctypeRefused(ValueError):
    """The body carries a DOCTYPE, which no GovTalk body needs and which opens entity attacks."""


def _parser() -> etree.XMLParser:
    # A fresh parser per call: lxml parsers are not safe to share between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def safe_parse(data: bytes) -> etree._Element:
    """Parse a body, refusing any DOCTYPE; raises NotWellFormed or DoctypeRefused."""
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise NotWellFormed(str(exc)) from None
    if root is None:
        raise NotWellFormed("the body is empty")
    if root.getroottree().docinfo.internalDTD is not None:
        raise DoctypeRefused("a DOCTYPE declaration is not allowed in the body")
    return root


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname
