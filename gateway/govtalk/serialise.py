"""Serialisation of the typed envelope model to GovTalk XML bytes."""

from __future__ import annotations

import copy

from lxml import etree

from gateway.govtalk.errors import GovTalkError
from gateway.govtalk.model import (
    ENVELOPE_NS,
    Authentication,
    ChannelRouting,
    Envelope,
    MessageDetails,
    SenderDetails,
    default_nsmap,
)

# Written by hand: lxml's own declaration uses single quotes, which some old clients mis-read.
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _q(name: str) -> str:
    """Clark name of an element in the envelope namespace."""
    return f"{{{ENVELOPE_NS}}}{name}"


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    """Append an envelope-namespace child with optional text."""
    el = etree.SubElement(parent, _q(name))
    if text is not None:
        el.text = text
    return el


def _copy(el: etree._Element) -> etree._Element:
    """A detached copy without the tail whitespace it had in its source document."""
    dup = copy.deepcopy(el)
    dup.tail = None
    return dup


def _opt_sub(parent: etree._Element, name: str, text: str | None) -> None:
    """Append a child only when there is a value for it."""
    if text is not None:
        _sub(parent, name, text)


def to_element(env: Envelope) -> etree._Element:
    """Build the GovTalkMessage element tree, elements in schema order."""
    root = etree.Element(_q("GovTalkMessage"), nsmap=default_nsmap(ENVELOPE_NS))
    _sub(root, "EnvelopeVersion", env.envelope_version)
    header = _sub(root, "Header")
    _message_details(header, env.message)
    if env.sender is not None:
        _sender_details(header, env.sender)

    details = _sub(root, "GovTalkDetails")
    # Always present, even empty: harmless, and some clients look for it on every reply.
    keys = _sub(details, "Keys")
    for key in env.keys:
        _sub(keys, "Key", key.value).set("Type", key.type)
    if env.organisations:
        target = _sub(details, "TargetDetails")
        for organisation in env.organisations:
            _sub(target, "Organisation", organisation)
    for routing in env.channel_routing:
        _channel_routing(details, routing)
    if env.errors:
        errors = _sub(details, "GovTalkErrors")
        for error in env.errors:
            _error(errors, error)

    if env.body is not None:
        body = _sub(root, "Body")
        if env.body.tag == body.tag:
            # A data request's Body itself (its filters are several elements): copy its children.
            for child in env.body.iterchildren(tag=etree.Element):
                body.append(_copy(child))
        else:
            # A copy: appending the caller's element would move it out of its own tree.
            body.append(_copy(env.body))
    return root


def serialise(env: Envelope) -> bytes:
    """The envelope as UTF-8 XML bytes with a declaration."""
    return XML_DECLARATION + etree.tostring(
        to_element(env), encoding="UTF-8", xml_declaration=False
    )


def _message_details(header: etree._Element, md: MessageDetails) -> None:
    """MessageDetails; CorrelationID is always written, empty when unset."""
    el = _sub(header, "MessageDetails")
    _sub(el, "Class", md.class_)
    _sub(el, "Qualifier", md.qualifier)
    _opt_sub(el, "Function", md.function)
    _opt_sub(el, "TransactionID", md.transaction_id)
    _opt_sub(el, "AuditID", md.audit_id)
    # Clients read CorrelationID from every reply, so an empty element beats an absent one.
    _sub(el, "CorrelationID", md.correlation_id or "")
    if md.response_end_point is not None or md.poll_interval is not None:
        endpoint = _sub(el, "ResponseEndPoint", md.response_end_point or "")
        if md.poll_interval is not None:
            endpoint.set("PollInterval", str(md.poll_interval))
    _opt_sub(el, "Transformation", md.transformation)
    if md.gateway_test:
        _sub(el, "GatewayTest", "1")
    _opt_sub(el, "GatewayTimestamp", md.gateway_timestamp)


def _sender_details(header: etree._Element, sender: SenderDetails) -> None:
    """SenderDetails; IDAuthentication only when there is something to put in it."""
    el = _sub(header, "SenderDetails")
    if sender.sender_id is not None or sender.authentications:
        id_auth = _sub(el, "IDAuthentication")
        _opt_sub(id_auth, "SenderID", sender.sender_id)
        for auth in sender.authentications:
            _authentication(id_auth, auth)
    _opt_sub(el, "X509Certificate", sender.x509_certificate)
    _opt_sub(el, "EmailAddress", sender.email_address)


def _authentication(id_auth: etree._Element, auth: Authentication) -> None:
    """One Authentication: Method, Role, then Value or the dsig:Signature."""
    el = _sub(id_auth, "Authentication")
    _sub(el, "Method", auth.method)
    _opt_sub(el, "Role", auth.role)
    _opt_sub(el, "Value", auth.value)
    if auth.signature is not None:
        el.append(_copy(auth.signature))


def _channel_routing(details: etree._Element, routing: ChannelRouting) -> None:
    """One ChannelRouting block."""
    el = _sub(details, "ChannelRouting")
    channel = _sub(el, "Channel")
    if routing.channel.uri is not None:
        _sub(channel, "URI", routing.channel.uri)
    else:
        # The schema needs URI or Name; an empty Name keeps the output valid.
        _sub(channel, "Name", routing.channel.name or "")
    _opt_sub(channel, "Product", routing.channel.product)
    _opt_sub(channel, "Version", routing.channel.version)
    for id_type, value in routing.ids:
        _sub(el, "ID", value).set("Type", id_type)
    _opt_sub(el, "Timestamp", routing.timestamp)


def _error(errors: etree._Element, error: GovTalkError) -> None:
    """One GovTalkErrors/Error: RaisedBy, Number, Type, Text, Location*."""
    el = _sub(errors, "Error")
    _sub(el, "RaisedBy", error.raised_by)
    _sub(el, "Number", str(error.number))
    _sub(el, "Type", error.type)
    _sub(el, "Text", error.text)
    for location in error.locations:
        _sub(el, "Location", location)
