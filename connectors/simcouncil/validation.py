"""The body schemas: loading them, checking requests (4xxx errors) and our own responses."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

from connectors.sdk import (
    BodyError,
    DoctypeRefused,
    SchemaLogEntry,
    is_missing_child,
    load_schema,
    parse_body,
    schema_errors,
    xpath_of,
)
from gateway.govtalk.errors import GovTalkError

VIEW_NS = "urn:govtalk-hub:la:ctax:view:v1"
SPD_NS = "urn:govtalk-hub:la:ctax:spd:v1"
TIL_NS = "urn:govtalk-hub:la:ctax:til:v1"
MOVE_NS = "urn:govtalk-hub:la:ctax:move:v1"

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


@cache
def schema(schema_file: str) -> etree.XMLSchema:
    """The compiled XSD; includes resolve relative to the schemas directory."""
    return load_schema(SCHEMA_DIR / schema_file)


def read_request(body: bytes, spec: BodySpec) -> etree._Element:
    """Parse and schema-check a request body; raises Rejected with 4xxx errors and Locations."""
    try:
        root = parse_body(body)
    except DoctypeRefused as exc:
        raise Rejected([GovTalkError.of(DOCTYPE_REFUSED, str(exc), locations=("/",))]) from None
    except BodyError as exc:
        raise Rejected([GovTalkError.of(NOT_WELL_FORMED, str(exc), locations=("/",))]) from None
    # Comments and PIs are not content: without them an element's text is all of its text.
    etree.strip_tags(root, etree.Comment, etree.ProcessingInstruction)
    if root.tag != spec.tag:
        text = f"expected a {spec.root} document in namespace {spec.namespace} for this class"
        raise Rejected([GovTalkError.of(WRONG_DOCUMENT, text, locations=(xpath_of(root),))])
    errors = _schema_errors(root, spec.schema_file)
    if errors:
        raise Rejected(errors)
    return root


def check_response(root: etree._Element, spec: BodySpec) -> bytes:
    """Serialise a reply after checking it against its schema; raises ResponseInvalid."""
    if root.tag != spec.tag:
        raise ResponseInvalid(f"{spec.root} failed {spec.schema_file}: root is {root.tag}")
    errors = _schema_errors(root, spec.schema_file)
    if errors:
        found = "; ".join(e.text for e in errors)
        raise ResponseInvalid(f"{spec.root} failed {spec.schema_file}: {found}")
    return etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def _schema_errors(root: etree._Element, schema_file: str) -> tuple[GovTalkError, ...]:
    """The schema errors in a document as 4xxx errors, none when valid."""
    # A compiled schema keeps its error log on itself, so two threads must not share it at once.
    with _SCHEMA_LOCK:
        return schema_errors(
            schema(schema_file),
            root,
            number=INVALID_VALUE,
            number_of=_number,
            locate_missing_child=True,
        )


def _number(entry: SchemaLogEntry) -> int:
    if entry.type_name == "SCHEMAV_CVC_ELT_1":
        return WRONG_DOCUMENT
    if entry.type_name == "SCHEMAV_ELEMENT_CONTENT":
        return MISSING_ELEMENT if is_missing_child(entry) else UNEXPECTED_CONTENT
    if "COMPLEX_TYPE" in entry.type_name:
        return UNEXPECTED_CONTENT
    return INVALID_VALUE
