"""Builders for the client's side of the protocol: the envelopes a GovTalk client sends."""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from gateway.govtalk.credentials import md5_value
from gateway.govtalk.model import (
    Authentication,
    AuthMethod,
    Envelope,
    Function,
    Key,
    MessageDetails,
    Qualifier,
    SenderDetails,
)


def _sender(sender_id: str | None, password: str | None, method: str) -> SenderDetails | None:
    if sender_id is None or password is None:
        return None
    value = md5_value(password) if method == AuthMethod.MD5 else password
    return SenderDetails(
        sender_id=sender_id,
        authentications=[Authentication(method=method, role="principal", value=value)],
    )


def _message(
    class_: str,
    qualifier: Qualifier,
    function: Function,
    transaction_id: str | None,
    correlation_id: str | None = None,
    *,
    gateway_test: bool = False,
    gateway_timestamp: str | None = None,
) -> MessageDetails:
    """The MessageDetails of a request: each builder states its qualifier and function."""
    return MessageDetails(
        class_=class_,
        qualifier=qualifier.value,
        function=function.value,
        transaction_id=transaction_id,
        correlation_id=correlation_id,
        gateway_test=gateway_test,
        gateway_timestamp=gateway_timestamp,
    )


def submission(
    class_: str,
    body: etree._Element | bytes | str,
    *,
    sender_id: str | None = None,
    password: str | None = None,
    method: str = AuthMethod.CLEAR.value,
    keys: Mapping[str, str] | None = None,
    organisation: str | None = None,
    transaction_id: str | None = None,
    gateway_test: bool = False,
    gateway_timestamp: str | None = None,
) -> Envelope:
    """A submission request; with gateway_test, gateway_timestamp back-dates it (test service)."""
    if isinstance(body, (bytes, str)):
        body = etree.fromstring(body.encode("utf-8") if isinstance(body, str) else body)
    return Envelope(
        message=_message(
            class_,
            Qualifier.REQUEST,
            Function.SUBMIT,
            transaction_id,
            gateway_test=gateway_test,
            gateway_timestamp=gateway_timestamp,
        ),
        sender=_sender(sender_id, password, method),
        keys=[Key(k, v) for k, v in (keys or {}).items()],
        organisations=[organisation] if organisation else [],
        body=body,
    )


def poll(class_: str, correlation_id: str, *, transaction_id: str | None = None) -> Envelope:
    return Envelope(
        _message(class_, Qualifier.POLL, Function.SUBMIT, transaction_id, correlation_id)
    )


def delete(class_: str, correlation_id: str, *, transaction_id: str | None = None) -> Envelope:
    return Envelope(
        _message(class_, Qualifier.REQUEST, Function.DELETE, transaction_id, correlation_id)
    )


def data_request(
    class_: str,
    *,
    sender_id: str,
    password: str,
    method: str = AuthMethod.CLEAR.value,
    filters: etree._Element | None = None,
    transaction_id: str | None = None,
) -> Envelope:
    return Envelope(
        message=_message(class_, Qualifier.REQUEST, Function.LIST, transaction_id),
        sender=_sender(sender_id, password, method),
        body=filters,
    )
