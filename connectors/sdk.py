"""Small helpers for connector authors: safe body parsing, XSD checks as GovTalk errors, options."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, cast

from lxml import etree

from gateway.govtalk.errors import GovTalkError, GovTalkFault
from gateway.govtalk.parse import DEFAULT_MAX_DEPTH as DEFAULT_MAX_DEPTH
from gateway.govtalk.parse import (
    DoctypeFault,
    one_line,
    parse_xml,
    resolve_error_path,
    xml_parser,
)
from gateway.govtalk.parse import xpath_of as xpath_of

# W3C trace-context headers for a request to a back office, so it joins the hub's trace (empty
# unless OpenTelemetry is installed and tracing is on; see docs/metrics.md).
from gateway.observability.tracing import trace_headers as trace_headers

# Clients read the first error; a handful more helps a developer, hundreds help nobody.
DEFAULT_ERROR_LIMIT = 10

_CLARK = re.compile(r"\{[^}]*\}")
# Only brace groups holding a URI are namespaces; pattern quantifiers like {3} are not.
_NAMESPACE = re.compile(r"\{[^{}]*[:/][^{}]*\}")
_ATTRIBUTE_IN_MESSAGE = re.compile(r"^Element '[^']*', attribute '([^']+)'")
_EXPECTED_CHILD = re.compile(r"Expected is[^(]*\( (?:\{[^}]*\})?(\w+)")


class ConnectorConfigError(ValueError):
    """A connector's options are missing or malformed."""


class BodyError(ValueError):
    """A body a connector must not read: not well-formed, a DOCTYPE, entities, too deep."""


class DoctypeRefused(BodyError):
    """A body carrying a DOCTYPE, which no GovTalk body needs and which opens entity attacks."""


class SchemaLogEntry(Protocol):
    """The parts of an lxml validation error-log entry that schema_errors reads."""

    type_name: str
    message: str
    path: str | None


def parse_body(body: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> etree._Element:
    """Parse body bytes with the envelope's hardening: no DOCTYPE, no entities, bounded depth."""
    try:
        return parse_xml(body, max_depth=max_depth, what="body").getroot()
    except GovTalkFault as fault:
        text = fault.first.text
        error = DoctypeRefused if isinstance(fault, DoctypeFault) else BodyError
        raise error(text[:1].lower() + text[1:]) from None


def resolve_path(path: str | Path, options: Mapping[str, Any]) -> Path:
    """A configured file path; relative paths resolve against options['base_dir'] or the CWD."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    base = options.get("base_dir")
    return (Path(base) if base else Path.cwd()) / candidate


def load_schema(path: Path) -> etree.XMLSchema:
    """Compile an XSD from a trusted file (includes and imports resolve next to it)."""
    try:
        document = etree.parse(str(path), xml_parser())
        return etree.XMLSchema(document)
    except OSError as exc:
        raise ConnectorConfigError(f"cannot read schema {path}: {exc}") from exc
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise ConnectorConfigError(f"schema {path} is not a valid XSD: {exc}") from exc


def schema_errors(
    schema: etree.XMLSchema,
    root: etree._Element,
    *,
    number: int = 4000,
    number_of: Callable[[SchemaLogEntry], int] | None = None,
    limit: int = DEFAULT_ERROR_LIMIT,
    locate_missing_child: bool = False,
) -> tuple[GovTalkError, ...]:
    """Validate root against schema; each violation becomes a GovTalkError with an XPath Location.

    number_of gives a violation its own number (number otherwise). locate_missing_child points a
    missing child's Location at the child rather than at its parent, as libxml2 reports it.
    Namespaces are stripped from the text for readability; pattern quantifiers like {3} stay.
    """
    if schema.validate(root):
        return ()
    errors: list[GovTalkError] = []
    # lxml-stubs declare the error log opaque; its entries are _LogEntry objects.
    for entry in cast("Iterable[SchemaLogEntry]", schema.error_log):
        if len(errors) >= limit:
            break
        message = _NAMESPACE.sub("", one_line(entry.message)).strip()
        location = _location(root, entry, locate_missing_child)
        errors.append(
            GovTalkError.of(
                number_of(entry) if number_of else number,
                message,
                locations=(location,) if location else (),
            )
        )
    if not errors:
        errors.append(GovTalkError.of(number, "The body failed schema validation"))
    return tuple(errors)


def is_missing_child(entry: SchemaLogEntry) -> bool:
    """Whether a violation is a required child element that is absent."""
    return entry.type_name == "SCHEMAV_ELEMENT_CONTENT" and "Missing child" in entry.message


def require_str(options: Mapping[str, Any], name: str) -> str:
    """A required, non-empty string option."""
    value = options.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ConnectorConfigError(f"option {name!r} is required and must be a non-empty string")
    return value


def optional_str(options: Mapping[str, Any], name: str) -> str | None:
    """An optional string option (absent or empty means None)."""
    value = options.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConnectorConfigError(f"option {name!r} must be a string")
    return value


def optional_bool(options: Mapping[str, Any], name: str, default: bool) -> bool:
    """A boolean option; TOML gives real booleans, so strings are refused rather than guessed."""
    value = options.get(name, default)
    if not isinstance(value, bool):
        raise ConnectorConfigError(f"option {name!r} must be true or false")
    return value


def optional_float(
    options: Mapping[str, Any], name: str, default: float, *, minimum: float = 0
) -> float:
    """A number option no smaller than minimum."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConnectorConfigError(f"option {name!r} must be a number >= {minimum}")
    return float(value)


def _location(
    root: etree._Element, entry: SchemaLogEntry, locate_missing_child: bool
) -> str | None:
    location = resolve_error_path(root.getroottree(), entry.path)
    if location is None:
        return None
    attribute = _ATTRIBUTE_IN_MESSAGE.match(entry.message)
    if attribute:
        return location + "/@" + _CLARK.sub("", attribute.group(1))
    if locate_missing_child and is_missing_child(entry):
        expected = _EXPECTED_CHILD.search(entry.message)
        if expected:
            return location + "/" + expected.group(1)
    return location
