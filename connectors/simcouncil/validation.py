"""The body schemas: loading them, checking requests (4xxx errors) and our own responses."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol, cast

from lxml import etree

from connectors.simcouncil.xmlsafe import DoctypeRefused, NotWellFormed, local_name, safe_parse
from gateway.govtalk.errors import GovTalkError

VIEW_NS = "urn:govtalk-hub:la:ctax:view:v1"
SPD_NS = "urn:govtalk-hub:la:ctax:spd:v1"
TIL_NS = "urn:govtalk-hub:la:ctax:til:v1"

SCHEMA_DIR = Path(__file__).parent / "schemas"
_SCHEMA_LOCK = threading.Lock()

# The 4xxx numbers this back office raises; GovTalk leaves the schema range to each department.
NOT_WELL_FORMED = 4000
INVALID_VALUE = 4001
MISSING_ELEMENT = 4002
UNEXPECTED_CONTENT = 4003
WRONG_DOCUMENT = 4004
DOCTYPE_REFUSED = 4005


@dataclass(frozen=True, slots=True)
class BodySpec:
    """One body document: its namespace, root element and the XSD file that defines it."""

    namespace: str
    root: str
    schema_file: str

    @property
    def tag(self) -> str:
        return f"{{{self.namespace}}}{self.root}"


class Rejected(Exception):
    """A request body failed its checks; carries the GovTalk errors to answer with."""

    def __init__(self, errors: Iterable[GovTalkError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(f"{e.number}: {e.text}" for e in self.errors))


class ResponseInvalid(Exception):
    """A reply we built does not match its own schema: a bug here, never sent to the client."""


class _LogEntry(Protocol):
    type_name: str
    message: str
    path: str


@cache
def schema(schema_file: str) -> etree.XMLSchema:
    """The compiled XSD; includes resolve relative to the schemas directory."""
    path = SCHEMA_DIR / schema_file
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(path), parser))


def read_request(body: bytes, spec: BodySpec) -> etree._Element:
    """Parse and schema-check a request body; raises Rejected with 4xxx errors and Locations."""
    try:
        root = safe_parse(body)
    except DoctypeRefused as exc:
        raise Rejected([GovTalkError.of(DOCTYPE_REFUSED, str(exc), locations=("/",))]) from None
    except NotWellFormed as exc:
        text = f"the body is not well-formed XML: {exc}"
        raise Rejected([GovTalkError.of(NOT_WELL_FORMED, text, locations=("/",))]) from None
    if root.tag != spec.tag:
        text = f"expected a {spec.root} document in namespace {spec.namespace} for this class"
        location = f"/{local_name(root)}"
        raise Rejected([GovTalkError.of(WRONG_DOCUMENT, text, locations=(location,))])
    problems = _validate(root, spec.schema_file)
    if problems:
        raise Rejected(_schema_errors(root, problems))
    return root


def check_response(root: etree._Element, spec: BodySpec) -> bytes:
    """Serialise a reply after checking it against its schema; raises ResponseInvalid."""
    problems = _validate(root, spec.schema_file) if root.tag == spec.tag else []
    if root.tag != spec.tag or problems:
        found = "; ".join(_clean(e.message) for e in problems) or f"root is {root.tag}"
        raise ResponseInvalid(f"{spec.root} failed {spec.schema_file}: {found}")
    return etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def _validate(root: etree._Element, schema_file: str) -> list[_LogEntry]:
    """The schema errors in a document, none when valid."""
    # A compiled schema keeps its error log on itself, so two threads must not share it at once.
    with _SCHEMA_LOCK:
        validator = schema(schema_file)
        if validator.validate(root):
            return []
        return list(cast(Iterable[_LogEntry], validator.error_log))


def _schema_errors(root: etree._Element, log: Iterable[_LogEntry]) -> list[GovTalkError]:
    errors: list[GovTalkError] = []
    for entry in log:
        number = _number(entry)
        location = _location(root, entry.path)
        if number == MISSING_ELEMENT:
            # libxml2 reports a missing child on its parent; point at the child itself.
            expected = re.search(r"Expected is[^(]*\( \{[^}]*\}(\w+)", entry.message)
            if expected:
                location = f"{location}/{expected.group(1)}"
        errors.append(GovTalkError.of(number, _clean(entry.message), locations=(location,)))
    return errors or [GovTalkError.of(INVALID_VALUE, "the body failed schema validation")]


def _number(entry: _LogEntry) -> int:
    if entry.type_name == "SCHEMAV_CVC_ELT_1":
        return WRONG_DOCUMENT
    if entry.type_name == "SCHEMAV_ELEMENT_CONTENT":
        return MISSING_ELEMENT if "Missing child" in entry.message else UNEXPECTED_CONTENT
    if "COMPLEX_TYPE" in entry.type_name:
        return UNEXPECTED_CONTENT
    return INVALID_VALUE


def _location(root: etree._Element, path: str) -> str:
    """libxml2's path (/*/*[2]) as a readable XPath of local names (/CTaxSPDRequest/Applicant)."""
    try:
        found = root.getroottree().xpath(path)
    except etree.XPathError:
        found = None
    if not isinstance(found, list) or not found or not isinstance(found[0], etree._Element):
        return f"/{local_name(root)}"
    steps: list[str] = []
    node: etree._Element | None = found[0]
    while node is not None:
        step = local_name(node)
        parent = node.getparent()
        if parent is not None:
            same = [s for s in parent if s.tag == node.tag]
            if len(same) > 1:
                step += f"[{same.index(node) + 1}]"
        steps.append(step)
        node = parent
    return "/" + "/".join(reversed(steps))


def _clean(message: str) -> str:
    # Clients read Text; Clark-notation namespaces there are noise.
    # Only brace groups holding a URI are namespaces; pattern quantifiers like {3} must stay.
    return re.sub(r"\{[^{}]*[:/][^{}]*\}", "", message).strip()
