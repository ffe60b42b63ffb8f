"""Hardened parsing and schema validation of GovTalk envelopes into the typed model."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Protocol, cast

from lxml import etree

from gateway.govtalk.errors import ErrorType, GovTalkError, GovTalkFault
from gateway.govtalk.model import (
    DSIG_NS,
    ENVELOPE_NS,
    Authentication,
    Channel,
    ChannelRouting,
    Envelope,
    Key,
    MessageDetails,
    SenderDetails,
)

DEFAULT_MAX_DEPTH = 64
# Clients read only the first error; a handful more helps a developer, hundreds help nobody.
MAX_SCHEMA_ERRORS = 10
# A Class longer than any valid one is not echoed: the error reply says UndefinedClass instead.
_MAX_ECHOED_CLASS = 32
# The envelope schema's own types, for echoing header fields of an envelope it refused.
_FUNCTIONS = frozenset({"submit", "delete", "list", "read", "add"})
_TRANSACTION_ID = re.compile(r"[0-9A-F]{1,32}")
_CORRELATION_ID = re.compile(r"[0-9A-F]{32}")

_DOCTYPE_MARKERS = (
    b"<!DOCTYPE",
    "<!DOCTYPE".encode("utf-16-le"),
    "<!DOCTYPE".encode("utf-16-be"),
)
# The start of the root element (or any element): a DOCTYPE can only come before it.
_ELEMENT_START = re.compile(rb"<[A-Za-z_:\x80-\xff]")
_WHITESPACE = re.compile(r"\s+")

_ENVELOPE_PREFIX = f"{{{ENVELOPE_NS}}}"

_local = threading.local()


class _LogEntry(Protocol):
    """The parts of an lxml error-log entry used here (lxml-stubs leaves the log untyped)."""

    message: str
    line: int
    path: str | None


def _q(name: str) -> str:
    """Clark name of an element in the envelope namespace."""
    return _ENVELOPE_PREFIX + name


class DoctypeFault(GovTalkFault):
    """parse_xml's 1001 fault for a DOCTYPE, a type of its own so adapters can tell it apart."""


def _fault(text: str, *, class_: str | None = None, location: str | None = None) -> GovTalkFault:
    """A 1001 fault: the envelope is not well-formed or not valid."""
    locations = (location,) if location else ()
    return GovTalkFault.of(1001, text, class_=class_, locations=locations)


# xs:integer is unbounded, but no GovTalk number or interval needs more digits than this, and
# Python's int() refuses more than 4,300.
_MAX_DIGITS = 18


def _integer(text: str, where: str) -> int:
    """A schema-valid integer the hub can hold, or a 1001 naming where it was."""
    digits = text.strip()
    if len(digits.lstrip("+-0")) > _MAX_DIGITS:
        raise _fault(f"{where} has more than {_MAX_DIGITS} digits", location=where)
    return int(digits)


def gateway_timestamp(text: str, *, class_: str | None = None) -> datetime:
    """A client's GatewayTimestamp as an aware datetime; naive ones are UTC, as the hub writes.

    The schema has already checked it is an xs:dateTime; some of those (24:00:00, a year past
    9999) no datetime can hold, and get a 1001 of their own."""
    where = "/GovTalkMessage/Header/MessageDetails/GatewayTimestamp"
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _fault(
            f"GatewayTimestamp '{one_line(text)[:40]}' is not a time the hub can use: "
            "give yyyy-mm-ddThh:mm:ss, optionally with fractions and a UTC offset",
            class_=class_,
            location=where,
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _doctype_fault(what: str) -> DoctypeFault:
    return DoctypeFault([GovTalkError.of(1001, f"A DOCTYPE is not allowed in a GovTalk {what}")])


def xml_parser() -> etree.XMLParser:
    """This thread's hardened parser (lxml parsers must not be shared between threads).

    It neither resolves entities nor loads DTDs or anything from the network; parse_xml adds
    the checks a parser option cannot express.
    """
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=False,
            remove_comments=False,
            remove_pis=False,
        )
        _local.parser = parser
    return parser


@cache
def _schema_bytes() -> bytes:
    """The bundled envelope XSD."""
    return (resources.files("gateway.govtalk") / "schemas" / "envelope-v2.xsd").read_bytes()


def envelope_schema() -> etree.XMLSchema:
    """This thread's compiled envelope schema (validators keep per-object error state)."""
    schema: etree.XMLSchema | None = getattr(_local, "schema", None)
    if schema is None:
        schema = etree.XMLSchema(etree.fromstring(_schema_bytes(), xml_parser()))
        _local.schema = schema
    return schema


def _has_doctype_in_prolog(data: bytes) -> bool:
    """Whether the raw bytes carry a DOCTYPE before the first element."""
    idx = data.find(_DOCTYPE_MARKERS[0])
    if idx >= 0:
        first_element = _ELEMENT_START.search(data)
        # A "<!DOCTYPE" after the root start is character data (e.g. in CDATA), not a DTD.
        if first_element is None or idx < first_element.start():
            return True
    # UTF-16 input does not match the byte pattern above; refuse any marker outright there.
    return any(marker in data for marker in _DOCTYPE_MARKERS[1:])


def one_line(text: str) -> str:
    """Collapse a parser or validator message onto one line for an Error/Text."""
    return _WHITESPACE.sub(" ", text).strip()


def parse_xml(
    data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH, what: str = "document"
) -> etree._ElementTree:
    """Parse untrusted XML bytes with every hardening rule; failures are GovTalkFault 1001.

    No DOCTYPE (a DoctypeFault), no entity references, no nesting deeper than max_depth. what
    names the document in the fault texts ("The body is empty").
    """
    if not data or data.isspace():
        raise _fault(f"The {what} is empty")
    if _has_doctype_in_prolog(data):
        raise _doctype_fault(what)
    try:
        root = etree.fromstring(data, xml_parser())
    except etree.XMLSyntaxError as exc:
        raise _fault(
            f"The {what} is not well-formed XML: {one_line(exc.msg or str(exc))}"
        ) from None
    except (etree.ParserError, ValueError) as exc:
        raise _fault(f"The {what} could not be parsed: {one_line(str(exc))}") from None
    if root is None:
        raise _fault(f"The {what} is empty")
    tree = root.getroottree()
    docinfo = tree.docinfo
    # libxml2 records any DOCTYPE, even one without an internal subset, as an internal DTD.
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _doctype_fault(what)
    _check_tree(root, max_depth, what)
    return tree


def _too_deep(root: etree._Element, max_depth: int) -> bool:
    """Whether any element lies deeper than max_depth, asked of libxml2: an XPath of max_depth
    element steps below the root, compiled once per thread and depth (lxml's evaluators are not
    to be shared between threads)."""
    compiled: dict[int, etree.XPath] | None = getattr(_local, "too_deep", None)
    if compiled is None:
        compiled = _local.too_deep = {}
    query = compiled.get(max_depth)
    if query is None:
        query = compiled[max_depth] = etree.XPath(f"boolean({'/'.join(['*'] * max_depth)})")
    return bool(query(root))


def _check_tree(root: etree._Element, max_depth: int, what: str) -> None:
    """Refuse entity reference nodes and nesting deeper than max_depth."""
    # Both searches run inside libxml2; the walk below, in Python, only names the place of a
    # nesting already found too deep.
    if next(root.iter(etree.Entity), None) is not None:
        raise _fault(f"Entity references are not allowed in a GovTalk {what}")
    if not _too_deep(root, max_depth):
        return
    depth = 0
    for event, node in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        # Comments and PIs count towards depth only through the elements that hold them.
        if depth > max_depth and isinstance(node.tag, str):
            raise _fault(
                f"The {what} is nested deeper than {max_depth} elements",
                location=xpath_of(node),
            )


def _local_name(el: etree._Element) -> str:
    """Local part of an element's tag."""
    return etree.QName(el).localname


def xpath_of(el: etree._Element) -> str:
    """A readable XPath location from the root: local names, with [n] where a name repeats."""
    steps: list[str] = []
    node: etree._Element | None = el
    while node is not None:
        name = _local_name(node)
        parent = node.getparent()
        if parent is not None:
            same = list(parent.iterchildren(tag=node.tag))
            if len(same) > 1:
                name = f"{name}[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


def _raw_text(el: etree._Element | None) -> str | None:
    """Text content exactly as sent, comments skipped; None if absent."""
    if el is None:
        return None
    if len(el) == 0:
        # The common case, and parsing is on the hot path of every request.
        return el.text or ""
    return "".join(t for t in el.itertext() if isinstance(t, str))


def _by_name(parent: etree._Element) -> dict[str, etree._Element]:
    """First child element per local name, for envelope-namespace children: one pass, not many."""
    found: dict[str, etree._Element] = {}
    for el in parent:
        tag = el.tag
        if isinstance(tag, str) and tag.startswith(_ENVELOPE_PREFIX):
            found.setdefault(tag[len(_ENVELOPE_PREFIX) :], el)
    return found


def _text(el: etree._Element | None) -> str | None:
    """Text content of a simple element, stripped; None if absent."""
    text = _raw_text(el)
    return None if text is None else text.strip()


def _opt(text: str | None) -> str | None:
    """Empty means absent for identifiers (an empty <CorrelationID/> is a submission's norm)."""
    return text or None


def _first(parent: etree._Element, *names: str) -> etree._Element | None:
    """The first element along a path of envelope-namespace child names, or None."""
    # iterchildren is C-level; find() goes through ElementPath at several times the cost.
    el: etree._Element | None = parent
    for name in names:
        if el is None:
            return None
        el = next(el.iterchildren(tag=_q(name)), None)
    return el


def _all(parent: etree._Element, *names: str) -> list[etree._Element]:
    """All elements named by the last name, under the first element along the rest of the path."""
    container = _first(parent, *names[:-1])
    return [] if container is None else list(container.iterchildren(tag=_q(names[-1])))


def _child(parent: etree._Element, name: str) -> etree._Element:
    """A child the schema guarantees; a missing one means the schema and parser disagree."""
    el = _first(parent, name)
    if el is None:
        raise _fault(f"Element {name} is missing", location=xpath_of(parent) + "/" + name)
    return el


def _read_class(root: etree._Element) -> str | None:
    """The Class as sent, when it is readable enough to echo in an error reply."""
    text = _text(_first(root, "Header", "MessageDetails", "Class"))
    if not text or len(text) > _MAX_ECHOED_CLASS:
        return None
    return text


def _salvage(root: etree._Element, class_: str | None) -> MessageDetails:
    """What an error reply can echo of an envelope that failed: only values valid in a reply."""
    md = _first(root, "Header", "MessageDetails")
    child = (_by_name(md) if md is not None else {}).get
    transaction_id = _text(child("TransactionID")) or ""
    correlation_id = (_text(child("CorrelationID")) or "").upper()
    function = _text(child("Function"))
    return MessageDetails(
        class_=class_ or "",
        qualifier="",
        function=function if function in _FUNCTIONS else None,
        transaction_id=transaction_id if _TRANSACTION_ID.fullmatch(transaction_id) else None,
        correlation_id=correlation_id if _CORRELATION_ID.fullmatch(correlation_id) else None,
        gateway_test=_text(child("GatewayTest")) == "1",
    )


def resolve_error_path(tree: etree._ElementTree, path: str | None) -> str | None:
    """Turn libxml2's node path (/*/*[2] for default namespaces) into a readable location."""
    if not path:
        return None
    root = tree.getroot()
    namespaces = {k: v for k, v in root.nsmap.items() if k}
    try:
        found = tree.xpath(path, namespaces=namespaces)
    except etree.XPathError:
        return path
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return xpath_of(found[0])
    return path


def _tolerate(root: etree._Element) -> list[tuple[etree._Element, int, etree._Element]]:
    """Detach what real clients send but the schema forbids; returns what to put back."""
    detached: list[tuple[etree._Element, int, etree._Element]] = []
    id_auth = _first(root, "Header", "SenderDetails", "IDAuthentication")
    if id_auth is not None:
        # Reference §9: clients place EmailAddress inside IDAuthentication.
        for email in list(id_auth.iterchildren(tag=_q("EmailAddress"))):
            detached.append((id_auth, id_auth.index(email), email))
    for parent, _index, el in reversed(detached):
        parent.remove(el)
    return detached


def _restore(detached: list[tuple[etree._Element, int, etree._Element]]) -> None:
    """Put detached elements back where they were, so the document stays as received."""
    for parent, index, el in detached:
        parent.insert(index, el)


def _validate(tree: etree._ElementTree, class_: str | None) -> None:
    """Schema-validate the envelope (with leniencies applied) or raise 1001 per error."""
    root = tree.getroot()
    schema = envelope_schema()
    detached = _tolerate(root)
    try:
        if schema.validate(tree):
            return
        errors: list[GovTalkError] = []
        for entry in cast("Iterable[_LogEntry]", schema.error_log):
            if len(errors) >= MAX_SCHEMA_ERRORS:
                break
            message = one_line(entry.message).replace(f"{{{ENVELOPE_NS}}}", "")
            location = resolve_error_path(tree, entry.path)
            errors.append(
                GovTalkError.of(
                    1001,
                    f"The envelope failed schema validation: {message} (line {entry.line})",
                    locations=(location,) if location else (),
                )
            )
        if not errors:
            errors.append(GovTalkError.of(1001, "The envelope failed schema validation"))
        raise GovTalkFault(errors, class_)
    finally:
        _restore(detached)


def parse(data: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Envelope:
    """Parse and validate a GovTalkMessage; any failure is a GovTalkFault 1001."""
    tree = parse_xml(data, max_depth=max_depth)
    root = tree.getroot()
    if root.tag != _q("GovTalkMessage"):
        qname = etree.QName(root)
        if qname.localname == "GovTalkMessage":
            where = f"namespace {qname.namespace!r}" if qname.namespace else "no namespace"
            text = f"GovTalkMessage is in {where}; it must be in namespace {ENVELOPE_NS!r}"
        else:
            text = f"The root element must be GovTalkMessage in namespace {ENVELOPE_NS!r}"
        raise _fault(text, location="/" + qname.localname)
    class_ = _read_class(root)
    try:
        return _checked(root, tree, class_)
    except GovTalkFault as fault:
        # The checks beyond the schema raise without knowing the class; the reply should echo it,
        # and what it can of the header (clients match replies by TransactionID).
        fault.class_ = fault.class_ or class_
        fault.echo = fault.echo or _salvage(root, fault.class_)
        raise


def _checked(root: etree._Element, tree: etree._ElementTree, class_: str | None) -> Envelope:
    """The envelope, once its Body's shape and the schema are checked."""
    body_el = _first(root, "Body")
    payload: etree._Element | None = None
    if body_el is not None:
        children = list(body_el.iterchildren(tag=etree.Element))
        if (
            len(children) > 1
            and _text(_first(root, "Header", "MessageDetails", "Function")) == "list"
        ):
            # A data request's filters (StartDate, StartTime, ...) sit directly in Body: the
            # Body element itself is the payload.
            children = [body_el]
        if len(children) > 1:
            raise _fault(
                f"Body must contain a single payload element, found {len(children)}",
                class_=class_,
                location=xpath_of(body_el),
            )
        payload = children[0] if children else None

    _validate(tree, class_)
    return _build(root, payload, tree)


def _build(
    root: etree._Element, payload: etree._Element | None, tree: etree._ElementTree
) -> Envelope:
    """Fill the typed model from a schema-valid envelope."""
    header = _child(root, "Header")
    details = _child(root, "GovTalkDetails")
    return Envelope(
        message=_message_details(_child(header, "MessageDetails")),
        sender=_sender_details(_first(header, "SenderDetails")),
        keys=[
            Key(type=key.get("Type", ""), value=_text(key) or "")
            for key in _all(details, "Keys", "Key")
        ],
        organisations=[_text(org) or "" for org in _all(details, "TargetDetails", "Organisation")],
        channel_routing=[_channel_routing(cr) for cr in _all(details, "ChannelRouting")],
        errors=[_error(err) for err in _all(details, "GovTalkErrors", "Error")],
        body=payload,
        envelope_version=_text(_child(root, "EnvelopeVersion")) or "",
        document=tree,
    )


def _message_details(md: etree._Element) -> MessageDetails:
    """MessageDetails, with CorrelationID upper-cased and empty identifiers as None."""
    child = _by_name(md).get
    endpoint = child("ResponseEndPoint")
    poll_interval: int | None = None
    if endpoint is not None and endpoint.get("PollInterval") is not None:
        poll_interval = _integer(endpoint.get("PollInterval", ""), "ResponseEndPoint/@PollInterval")
    correlation_id = _opt(_text(child("CorrelationID")))
    return MessageDetails(
        class_=_text(child("Class")) or "",
        qualifier=_text(child("Qualifier")) or "",
        function=_text(child("Function")),
        transaction_id=_opt(_text(child("TransactionID"))),
        audit_id=_opt(_text(child("AuditID"))),
        correlation_id=correlation_id.upper() if correlation_id else None,
        response_end_point=_opt(_text(endpoint)),
        poll_interval=poll_interval,
        transformation=_text(child("Transformation")),
        gateway_test=_text(child("GatewayTest")) == "1",
        gateway_timestamp=_opt(_text(child("GatewayTimestamp"))),
    )


def _sender_details(sd: etree._Element | None) -> SenderDetails | None:
    """SenderDetails, taking a misplaced IDAuthentication/EmailAddress as the sender's email."""
    if sd is None:
        return None
    sender = SenderDetails(
        x509_certificate=_text(_first(sd, "X509Certificate")),
        email_address=_text(_first(sd, "EmailAddress")),
    )
    id_auth = _first(sd, "IDAuthentication")
    if id_auth is not None:
        sender.sender_id = _text(_first(id_auth, "SenderID"))
        sender.authentications = [_authentication(auth) for auth in _all(id_auth, "Authentication")]
        if sender.email_address is None:
            sender.email_address = _text(_first(id_auth, "EmailAddress"))
    return sender


def _authentication(auth: etree._Element) -> Authentication:
    """One Authentication; the dsig element is kept as is, since verification needs the tree."""
    signature: etree._Element | None = None
    for el in auth.iterchildren(tag=f"{{{DSIG_NS}}}*"):
        if _local_name(el) != "Signature":
            raise _fault(
                f"Authentication may carry only a dsig:Signature, not dsig:{_local_name(el)}",
                location=xpath_of(el),
            )
        signature = el
    child = _by_name(auth).get
    return Authentication(
        method=_text(child("Method")) or "",
        role=_text(child("Role")),
        value=_raw_text(child("Value")),
        signature=signature,
    )


def _channel_routing(cr: etree._Element) -> ChannelRouting:
    """One ChannelRouting: the sending software's identity."""
    channel = _first(cr, "Channel")
    return ChannelRouting(
        channel=Channel(
            uri=_text(_first(channel, "URI")) if channel is not None else None,
            name=_text(_first(channel, "Name")) if channel is not None else None,
            product=_text(_first(channel, "Product")) if channel is not None else None,
            version=_text(_first(channel, "Version")) if channel is not None else None,
        ),
        ids=[(el.get("Type", ""), _text(el) or "") for el in _all(cr, "ID")],
        timestamp=_text(_first(cr, "Timestamp")),
    )


_ERROR_TYPES: dict[str, ErrorType] = {
    "fatal": "fatal",
    "recoverable": "recoverable",
    "business": "business",
    "warning": "warning",
    "schema": "schema",
}


def _error(err: etree._Element) -> GovTalkError:
    """One GovTalkErrors/Error; several Text elements are joined with a space."""
    texts = [_text(t) or "" for t in _all(err, "Text")]
    return GovTalkError(
        number=_integer(_text(_first(err, "Number")) or "0", "GovTalkErrors/Error/Number"),
        text=" ".join(t for t in texts if t),
        raised_by=_text(_first(err, "RaisedBy")) or "",
        type=_ERROR_TYPES.get(_text(_first(err, "Type")) or "", "fatal"),
        locations=tuple(_text(loc) or "" for loc in _all(err, "Location")),
    )
