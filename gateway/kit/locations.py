"""Error Locations: do they point into the request the way GovTalk clients read them?

A Location is an XPath from the body's root using local names (`/CTaxViewRequest/AccountRef`),
with `[n]` where a name repeats and `/@name` for an attribute — what the hub's own
`connectors.sdk.xpath_of` writes. Prefixes, if a connector writes them, are ignored: clients
cannot know the connector's prefixes.
"""

from __future__ import annotations

import re

from lxml import etree

_STEP = re.compile(r"^(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)(\[[1-9][0-9]*\])?$")
_ATTRIBUTE = re.compile(r"^@(?:[A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)$")


def to_xpath(location: str) -> str | None:
    """The namespace-blind XPath for a Location, or None if it is not a path from the root."""
    if not location.startswith("/") or location == "/":
        return None
    steps = location[1:].split("/")
    parts: list[str] = []
    for index, step in enumerate(steps):
        attribute = _ATTRIBUTE.match(step)
        if attribute and index == len(steps) - 1 and index > 0:
            parts.append(f"@*[local-name()='{attribute.group(1)}']")
            continue
        element = _STEP.match(step)
        if element is None:
            return None
        parts.append(f"*[local-name()='{element.group(1)}']{element.group(2) or ''}")
    return "/" + "/".join(parts)


def resolves(location: str, body: bytes) -> bool:
    """Whether the Location names at least one element or attribute of the request body."""
    xpath = to_xpath(location)
    if xpath is None:
        return False
    tree = etree.ElementTree(etree.fromstring(body))
    try:
        found = tree.xpath(xpath)
    except etree.XPathError:
        return False
    return isinstance(found, list) and len(found) > 0
