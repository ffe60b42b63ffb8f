"""Builders for the gateway's reply envelopes (reference §2)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NotRequired, TypedDict, Unpack

from lxml import etree

from gateway.govtalk.errors import GovTalkError, GovTalkFault
from gateway.govtalk.model import (
    ERROR_RESPONSE_NS,
    UNDEFINED_CLASS,
    Envelope,
    Function,
    MessageDetails,
    Qualifier,
    default_nsmap,
)
from gateway.govtalk.parse import parse_xml

REPLY_ENVELOPE_VERSION = "2.0"


def format_timestamp(dt: datetime) -> str:
    """GatewayTimestamp form, UTC with milliseconds: 2014-04-11T15:41:39.775."""
    # Naive datetimes are taken to be UTC already: the hub keeps every clock in UTC.
    utc = dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo is not None else dt
    return utc.isoformat(timespec="milliseconds")  # a third of strftime's cost, every reply


def new_correlation_id() -> str:
    """A fresh CorrelationID: 32 upper-case hex characters from a CSPRNG."""
    # The CorrelationID is the only credential a poll or delete needs, so it must be unguessable.
    return secrets.token_hex(16).upper()


class Addressing(TypedDict):
    """What every reply states besides its kind: the transaction, where to poll next, and when."""

    transaction_id: str | None
    endpoint: str
    poll_interval: int
    timestamp: datetime


class SubmissionReply(Addressing):
    """A reply about one submission: its class and CorrelationID as well."""

    class_: str
    correlation_id: str
    gateway_test: NotRequired[bool]


def _reply(
    qualifier: Qualifier,
    function: str,
    *,
    class_: str,
    correlation_id: str | None,
    transaction_id: str | None,
    endpoint: str,
    poll_interval: int,
    timestamp: datetime,
    gateway_test: bool = False,
    errors: Sequence[GovTalkError] = (),
    body: etree._Element | None = None,
) -> Envelope:
    """Common shape: every reply carries Function and ResponseEndPoint@PollInterval (§2)."""
    return Envelope(
        message=MessageDetails(
            class_=class_,
            qualifier=qualifier.value,
            function=function,
            transaction_id=transaction_id,
            correlation_id=correlation_id or None,
            response_end_point=endpoint,
            poll_interval=poll_interval,
            gateway_test=gateway_test,
            gateway_timestamp=format_timestamp(timestamp),
        ),
        errors=list(errors),
        body=body,
        envelope_version=REPLY_ENVELOPE_VERSION,
    )


def acknowledgement(**reply: Unpack[SubmissionReply]) -> Envelope:
    """acknowledgement/submit: the submission is held; poll endpoint after poll_interval."""
    return _reply(Qualifier.ACKNOWLEDGEMENT, Function.SUBMIT.value, **reply)


def submission_response(
    *, body: etree._Element | bytes, **reply: Unpack[SubmissionReply]
) -> Envelope:
    """response/submit carrying the back office's business reply as the Body."""
    if isinstance(body, bytes):
        try:
            body = parse_xml(body).getroot()
        except GovTalkFault as fault:
            # The back office's reply is our side of the fence: an internal failure, not 1001.
            raise GovTalkFault.of(
                1000,
                f"The back office reply body is unusable: {fault.first.text}",
                class_=reply["class_"],
            ) from None
    return _reply(Qualifier.RESPONSE, Function.SUBMIT.value, body=body, **reply)


def error_reply(
    *,
    class_: str | None,
    errors: Sequence[GovTalkError],
    correlation_id: str | None,
    function: str = Function.SUBMIT.value,
    body: etree._Element | None = None,
    gateway_test: bool = False,
    **addressing: Unpack[Addressing],
) -> Envelope:
    """error/<function>: errors in GovTalkErrors; body is an ErrorResponse for business errors."""
    if not errors:
        raise ValueError("an error reply needs at least one error")
    return _reply(
        Qualifier.ERROR,
        function,
        class_=class_ or UNDEFINED_CLASS,
        correlation_id=correlation_id,
        gateway_test=gateway_test,
        errors=errors,
        body=body,
        **addressing,
    )


def delete_response(
    *, class_: str, correlation_id: str, **addressing: Unpack[Addressing]
) -> Envelope:
    """response/delete: the record is gone (PollInterval is meaningless but clients read it)."""
    return _reply(
        Qualifier.RESPONSE,
        Function.DELETE.value,
        class_=class_,
        correlation_id=correlation_id,
        **addressing,
    )


def list_response(
    *, class_: str, report: etree._Element, **addressing: Unpack[Addressing]
) -> Envelope:
    """response/list with an empty CorrelationID and the StatusReport as Body."""
    return _reply(
        Qualifier.RESPONSE,
        Function.LIST.value,
        class_=class_,
        correlation_id=None,
        body=report,
        **addressing,
    )


def _er(name: str) -> str:
    """Clark name in the errorresponse namespace."""
    return f"{{{ERROR_RESPONSE_NS}}}{name}"


def error_response_body(errors: Sequence[GovTalkError], application: str) -> etree._Element:
    """Body/ErrorResponse for a business error; Type is schema for 4xxx-style, else business."""
    root = etree.Element(_er("ErrorResponse"), nsmap=default_nsmap(ERROR_RESPONSE_NS))
    etree.SubElement(root, _er("Application")).text = application
    for error in errors:
        el = etree.SubElement(root, _er("Error"))
        etree.SubElement(el, _er("RaisedBy")).text = error.raised_by
        etree.SubElement(el, _er("Number")).text = str(error.number)
        # ErrorResponse knows only these two types; anything else is a business rule failure.
        etree.SubElement(el, _er("Type")).text = "schema" if error.type == "schema" else "business"
        etree.SubElement(el, _er("Text")).text = error.text
        for location in error.locations:
            etree.SubElement(el, _er("Location")).text = location
    return root
