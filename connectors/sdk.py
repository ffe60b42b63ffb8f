"""Small helpers for connector authors: safe body parsing, XSD checks as GovTalk errors, options."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from lxml import etree

from gateway.govtalk.errors import GovTalkError

DEFAULT_MAX_DEPTH = 64
# Clients read the first error; a handful more helps a developer, hundreds help nobody.
DEFAULT_ERROR_LIMIT = 10

_CLARK = re.compile(r"\{[^}]*\}")
_WHITESPACE = re.compile(r"\s+")
_ATTRIBUTE_IN_MESSAGE = re.compile(r"^Element '[^']*', attribute '([^']+)'")


class ConnectorConfigError(ValueError):
    """A connector's options are missing or malformed."""


class BodyError(ValueError):
    """A body a connector must not read: not well-formed, a DOCTYPE, entities, too deep."""


def _parser() -> etree.XMLParser:
    # A fresh parser per call: lxml parsers must not be shared between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
    )


def parse_body(body: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> etree._Element:
    """Parse body bytes safely: no DOCTYPE, no entity resolution, bounded depth."""
    if not body or not body.strip():
        raise BodyError("the body is empty")
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        raise BodyError(f"the body is not well-formed XML: {_one_line(str(exc))}") from None
    except (etree.ParserError, ValueError) as exc:
        raise BodyError(f"the body could not be parsed: {_one_line(str(exc))}") from None
    if root is None:
        raise BodyError("the body is empty")
    docinfo: Any = root.getroottree().docinfo  # lxml-stubs lack DocInfo.doctype
    # GovTalk has no DTDs; with entity resolution off, a DOCTYPE could only smuggle in entity
    # nodes that different readers would interpret differently.
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise BodyError("a DOCTYPE is not allowed in a body")
    depth = 0
    for event, node in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        if isinstance(node, etree._Entity):
            raise BodyError("entity references are not allowed in a body")
        if depth > max_depth:
            raise BodyError(f"the body is nested deeper than {max_depth} elements")
    return root


def xpath_of(element: etree._Element) -> str:
    """A readable XPath location from the root: local names, [n] where a name repeats."""
    steps: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = list(parent.iterchildren(tag=node.tag))
            if len(same) > 1:
                name = f"{name}[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


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
        document = etree.parse(str(path), _parser())
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
    limit: int = DEFAULT_ERROR_LIMIT,
) -> tuple[GovTalkError, ...]:
    """Validate root against schema; each violation becomes a GovTalkError with an XPath Location."""
    if schema.validate(root):
        return ()
    errors: list[GovTalkError] = []
    # lxml-stubs declare the error log opaque; its entries are _LogEntry objects.
    for entry in cast("Iterable[Any]", schema.error_log):
        if len(errors) >= limit:
            break
        message = _CLARK.sub("", _one_line(entry.message))
        location = _location(root, entry.path, entry.message)
        errors.append(GovTalkError.of(number, message, locations=(location,) if location else ()))
    if not errors:
        errors.append(GovTalkError.of(number, "The body failed schema validation"))
    return tuple(errors)


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


def _location(root: etree._Element, path: str | None, message: str) -> str | None:
    # libxml2 reports /*/*[2] for default-namespace documents; find the node, then name it.
    if not path:
        return None
    try:
        found = root.getroottree().xpath(
            path, namespaces={k: v for k, v in root.nsmap.items() if k}
        )
    except etree.XPathError:
        return path
    if not (isinstance(found, list) and found and isinstance(found[0], etree._Element)):
        return path
    location = xpath_of(found[0])
    attribute = _ATTRIBUTE_IN_MESSAGE.match(message)
    if attribute:
        location += "/@" + _CLARK.sub("", attribute.group(1))
    return location


def _one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()
