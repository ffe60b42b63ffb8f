"""What a step observed, and the pure work on it: `${var}` substitution, expect, capture."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from gateway.govtalk.model import ENVELOPE_NS

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_PATH = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
XPATH_NAMESPACES = {"gt": ENVELOPE_NS}


class StepFailed(Exception):
    """A step did not do what the scenario expects; the message says what differed."""


@dataclass(slots=True)
class Observed:
    """What a step saw: the facts expectations and captures read."""

    facts: dict[str, Any] = field(default_factory=dict)  # status, qualifier, error_number, ...
    sent: str = ""
    received: str = ""
    json: Any = None
    xml: etree._Element | None = None

    def text(self) -> str:
        return self.received


def substitute(value: Any, variables: Mapping[str, Any]) -> Any:
    """Replace ${name} (and ${actor.field}) in strings, recursively; unknown names are errors."""
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole:
            # A value that is only a variable keeps the variable's type (numbers, mappings).
            return _lookup(whole.group(1), variables)
        return _VAR.sub(lambda m: str(_lookup(m.group(1), variables)), value)
    if isinstance(value, dict):
        # Keys too: an XPath or JSON path in an expectation may name a captured value.
        return {str(substitute(k, variables)): substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    return value


def _lookup(name: str, variables: Mapping[str, Any]) -> Any:
    if name in variables:
        return variables[name]
    head, _, rest = name.partition(".")
    if rest and head in variables:
        return json_path(variables[head], rest, name)
    raise StepFailed(f"no variable ${{{name}}} (known: {', '.join(sorted(variables)) or 'none'})")


def json_path(document: Any, path: str, label: str | None = None) -> Any:
    """`a.b[0].c` into parsed JSON (or nested mappings)."""
    current = document
    for name, index in _PATH.findall(path.removeprefix("$.").removeprefix("$")):
        try:
            current = current[int(index)] if index else current[name]
        except (KeyError, IndexError, TypeError):
            raise StepFailed(f"{label or path}: nothing at '{path}'") from None
    return current


def xpath_result(root: etree._Element | None, expression: str) -> Any:
    """What the expression evaluates to: a node-set (list), boolean, number or string."""
    if root is None:
        raise StepFailed(f"xpath {expression!r}: the reply has no XML")
    try:
        return root.xpath(expression, namespaces=XPATH_NAMESPACES)
    except etree.XPathError as exc:
        raise StepFailed(f"xpath {expression!r}: {exc}") from None


def _xpath_true(found: Any) -> bool:
    """XPath's own boolean(): a non-empty node-set, true, a non-zero number, a non-empty string."""
    if isinstance(found, float):
        return found == found and found != 0  # NaN is false
    return bool(found)


def xpath_values(root: etree._Element | None, expression: str) -> list[str]:
    return _values(xpath_result(root, expression))


def _values(found: Any) -> list[str]:
    if isinstance(found, bool):
        # A test like `count(//Error) = 0`: true is one match, false none.
        return ["true"] if found else []
    if isinstance(found, float) and found.is_integer():
        return [str(int(found))]
    if not isinstance(found, list):
        return [str(found)]
    return [(item.text or "") if isinstance(item, etree._Element) else str(item) for item in found]


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            return float(actual) == float(expected)
        except (TypeError, ValueError):
            return False
    if isinstance(expected, str) and not isinstance(actual, str):
        return json.dumps(actual) == expected or str(actual) == expected
    return bool(actual == expected)


def check(expect: Mapping[str, Any], seen: Observed) -> None:
    """Every expectation holds, or StepFailed naming the first that does not."""
    for name in ("status", "qualifier", "error_number"):
        if name in expect and not _same(seen.facts.get(name), expect[name]):
            raise StepFailed(f"expected {name} {expect[name]!r}, got {seen.facts.get(name)!r}")
    for name, wanted in mapping(expect, "facts", within="expect: ").items():
        if not _same(seen.facts.get(name), wanted):
            known = ", ".join(sorted(seen.facts))
            raise StepFailed(f"expected {name} {wanted!r}, got {seen.facts.get(name)!r} ({known})")
    for expression, wanted in mapping(expect, "xpath", within="expect: ").items():
        found = xpath_result(seen.xml, expression)
        values = _values(found)
        if isinstance(wanted, bool):
            ok = _xpath_true(found) is wanted
        else:
            ok = any(_same(v, wanted) for v in values)
        if not ok:
            raise StepFailed(f"xpath {expression!r}: expected {wanted!r}, found {values!r}")
    for path, wanted in mapping(expect, "json", within="expect: ").items():
        if seen.json is None:
            raise StepFailed(f"json {path!r}: the reply is not JSON")
        actual = json_path(seen.json, path)
        if not _same(actual, wanted):
            raise StepFailed(f"json {path!r}: expected {wanted!r}, got {actual!r}")
    for text in _list(expect.get("contains")):
        if str(text) not in seen.received:
            raise StepFailed(f"expected the reply to contain {text!r}")
    for text in _list(expect.get("not_contains")):
        if str(text) in seen.received:
            raise StepFailed(f"expected the reply not to contain {text!r}")


def mapping(values: Mapping[str, Any], name: str, *, within: str = "") -> Mapping[str, Any]:
    """values[name], a mapping (a step's keys or headers, an expect's facts), empty if not given."""
    # The loader refuses a literal non-mapping; this is one a variable supplied.
    value = values.get(name) or {}
    if not isinstance(value, Mapping):
        raise StepFailed(f"{within}{name} must be a mapping, not {value!r}")
    return value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def capture(spec: Mapping[str, str], seen: Observed) -> dict[str, Any]:
    """Variables taken from what was seen: a fact name, `json:PATH` or `xpath:EXPR`."""
    captured: dict[str, Any] = {}
    for variable, source in spec.items():
        kind, _, expression = source.partition(":")
        if kind == "json" and expression:
            if seen.json is None:
                raise StepFailed(f"capture {variable}: the reply is not JSON")
            captured[variable] = json_path(seen.json, expression)
        elif kind == "xpath" and expression:
            values = xpath_values(seen.xml, expression)
            if not values:
                raise StepFailed(f"capture {variable}: xpath {expression!r} found nothing")
            captured[variable] = values[0]
        elif source in seen.facts:
            if seen.facts[source] is None or seen.facts[source] == "":
                # As an XPath that finds nothing: a later ${variable} would otherwise be "None".
                raise StepFailed(f"capture {variable}: the reply has no {source}")
            captured[variable] = seen.facts[source]
        else:
            known = ", ".join(sorted(seen.facts)) or "none"
            raise StepFailed(
                f"capture {variable}: '{source}' is not json:PATH, xpath:EXPR or a fact ({known})"
            )
    return captured
