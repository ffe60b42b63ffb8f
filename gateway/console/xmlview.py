"""XML bodies for display: pretty-printed text, never interpreted, large ones cut short."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

# Bodies beyond this are shown cut, with a note: a page must stay usable.
MAX_SHOWN = 64 * 1024

# No DTDs, entities, network or huge trees: the body is only being displayed.
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_blank_text=True,
)


@dataclass(frozen=True, slots=True)
class Shown:
    """Text to show (autoescaped by the template), and what was done to it."""

    text: str
    size: int
    truncated: bool
    well_formed: bool


def pretty(body: bytes | None) -> Shown | None:
    """The body indented when it is well-formed XML, as text otherwise; cut at MAX_SHOWN."""
    if body is None:
        return None
    size = len(body)
    well_formed = True
    try:
        root = etree.fromstring(body, _PARSER)
        text = etree.tostring(root, pretty_print=True, encoding="unicode")
    except (etree.XMLSyntaxError, ValueError):
        well_formed = False
        text = body.decode("utf-8", errors="replace")
    truncated = len(text) > MAX_SHOWN
    return Shown(text[:MAX_SHOWN], size, truncated, well_formed)
