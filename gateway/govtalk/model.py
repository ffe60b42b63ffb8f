"""Typed GovTalk envelope model (GovTalkMessage, envelope version 2.0)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import cast

from lxml import etree

from gateway.govtalk.errors import GovTalkError

ENVELOPE_NS = "http://www.govtalk.gov.uk/CM/envelope"
ERROR_RESPONSE_NS = "http://www.govtalk.gov.uk/CM/errorresponse"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
UNDEFINED_CLASS = "UndefinedClass"
TIL_SUFFIX = "-TIL"


def default_nsmap(namespace: str) -> dict[str, str]:
    """An nsmap making namespace the default one (no prefix) for a new lxml element."""
    # lxml spells the default namespace with a None key, which lxml-stubs does not allow for.
    return cast("dict[str, str]", {None: namespace})


class Qualifier(StrEnum):
    REQUEST = "request"
    ACKNOWLEDGEMENT = "acknowledgement"
    RESPONSE = "response"
    POLL = "poll"
    ERROR = "error"


class Function(StrEnum):
    SUBMIT = "submit"
    DELETE = "delete"
    LIST = "list"
    READ = "read"
    ADD = "add"


class AuthMethod(StrEnum):
    CLEAR = "clear"
    MD5 = "MD5"
    W3CSIGNED = "W3Csigned"


@dataclass(slots=True)
class Authentication:
    """One IDAuthentication/Authentication: a password Value or an XML signature."""

    method: str  # kept as sent; AuthMethod names the ones the hub understands
    role: str | None = None
    value: str | None = None
    signature: etree._Element | None = None  # the dsig:Signature element, for W3Csigned


@dataclass(slots=True)
class SenderDetails:
    sender_id: str | None = None
    authentications: list[Authentication] = field(default_factory=list)
    x509_certificate: str | None = None
    email_address: str | None = None


@dataclass(slots=True)
class Key:
    type: str
    value: str


@dataclass(slots=True)
class Channel:
    uri: str | None = None
    name: str | None = None
    product: str | None = None
    version: str | None = None


@dataclass(slots=True)
class ChannelRouting:
    channel: Channel = field(default_factory=Channel)
    ids: list[tuple[str, str]] = field(default_factory=list)  # (Type, value)
    timestamp: str | None = None


@dataclass(slots=True)
class MessageDetails:
    class_: str
    qualifier: str  # kept as sent; validated against Qualifier by the parser
    function: str | None = None
    transaction_id: str | None = None
    audit_id: str | None = None
    correlation_id: str | None = None  # None when absent or empty
    response_end_point: str | None = None
    poll_interval: int | None = None
    transformation: str | None = None
    gateway_test: bool = False
    gateway_timestamp: str | None = None

    @property
    def test_in_live(self) -> bool:
        return self.class_.endswith(TIL_SUFFIX)

    @property
    def base_class(self) -> str:
        """The class without its -TIL suffix: what routing looks up."""
        return self.class_[: -len(TIL_SUFFIX)] if self.test_in_live else self.class_


@dataclass(slots=True)
class Envelope:
    """A whole GovTalkMessage; body is the single payload root element (or None)."""

    message: MessageDetails
    sender: SenderDetails | None = None
    keys: list[Key] = field(default_factory=list)
    organisations: list[str] = field(default_factory=list)
    channel_routing: list[ChannelRouting] = field(default_factory=list)
    errors: list[GovTalkError] = field(default_factory=list)
    body: etree._Element | None = None
    envelope_version: str = "2.0"
    # The parsed document as received, when this envelope came from parse(): signature checks
    # and IRmark need the original tree, not a re-serialisation.
    document: etree._ElementTree | None = field(default=None, repr=False, compare=False)

    @property
    def keys_dict(self) -> dict[str, str]:
        return {k.type: k.value for k in self.keys}

    @property
    def organisation(self) -> str | None:
        return self.organisations[0] if self.organisations else None

    @property
    def sender_id(self) -> str | None:
        """The SenderID the envelope names (claimed, not checked)."""
        return self.sender.sender_id if self.sender else None
