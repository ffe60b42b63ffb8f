"""The connector contract: a typed transaction in, an outcome out.

Connectors never see the hub's database or sockets: they get a Transaction and a narrow
ConnectorContext. Exceptions and timeouts are treated by the hub as transient failures and
retried; once retries are exhausted they become GovTalk 3000 (failed) or 2005 (never answered).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gateway.govtalk.errors import GovTalkError

API_VERSION = 1


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A service the citizen is enrolled for: class, organisation and identifying keys."""

    class_: str
    organisation: str
    keys: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent the transaction and how the hub authenticated them."""

    user_id: str | None
    auth_method: str  # "clear" | "MD5" | "W3Csigned" | "certificate" | "none"
    auth_level: float = 0
    enrolments: tuple[Enrolment, ...] = ()


@dataclass(frozen=True, slots=True)
class Transaction:
    """One routed GovTalk transaction as a connector sees it."""

    correlation_id: str  # also the idempotency key: a connector applies a transaction once
    class_: str  # the base class, without any -TIL suffix
    organisation: str
    keys: Mapping[str, str]
    body: bytes  # the payload root element, serialised as UTF-8 XML
    identity: Identity
    # The envelope's Body with the root's namespace declarations copied on, for digests taken over
    # the envelope (the IRmark); present only when the payload carries an IRmark element.
    envelope_body: bytes | None = None
    transaction_id: str | None = None
    gateway_test: bool = False  # GatewayTest=1: the test service
    test_in_live: bool = (
        False  # -TIL: check everything, process nothing, answer an advisory receipt
    )
    # When the hub accepted it; on the test service, the GatewayTimestamp the client set if any
    # (back-dating, as the Gateway's local test tool allowed).
    received_at: datetime | None = None
    attempt: int = 1

    @property
    def idempotency_key(self) -> str:
        return self.correlation_id


@dataclass(frozen=True, slots=True)
class Response:
    """The back office answered: body is the business reply's root element (UTF-8 XML)."""

    body: bytes


@dataclass(frozen=True, slots=True)
class BusinessError:
    """The back office refused the transaction (3001 with Locations, 4xxx schema, 2021/2022...)."""

    errors: tuple[GovTalkError, ...]
    application: str = ""


@dataclass(frozen=True, slots=True)
class Retry:
    """The back office is not ready: try again after this many seconds."""

    after: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Failed:
    """The back office failed permanently: no retry; becomes GovTalk 3000."""

    reason: str


Outcome = Response | BusinessError | Retry | Failed


@dataclass(slots=True)
class ConnectorContext:
    """What a connector may use from the hub: its options, a private data directory, a clock, a log."""

    name: str
    options: Mapping[str, Any]
    data_dir: Path
    log: logging.Logger | Any = field(default_factory=lambda: logging.getLogger("connector"))
    clock: Callable[[], datetime] = field(default_factory=lambda: _utcnow)
    # Secure mail to citizens enrolled at this connector's council (None: mail not offered).
    mail: MailSender | None = None


def _utcnow() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


@runtime_checkable
class Connector(Protocol):
    """A council back office as the hub sees it."""

    name: str
    api_version: int

    async def start(self) -> None:
        """Open whatever the connector needs (its own store, an HTTP session)."""

    async def handle(self, tx: Transaction, ctx: ConnectorContext) -> Outcome:
        """Process one transaction; must be idempotent on tx.correlation_id."""

    async def aclose(self) -> None:
        """Release resources."""


class ConnectorFactory(Protocol):
    """What the `gateway.connectors` entry point names: a class built from its context."""

    def __call__(self, ctx: ConnectorContext) -> Connector: ...


# --- Enrolment: known facts (an optional connector capability) -----------------------------------


@dataclass(frozen=True, slots=True)
class KnownFactsRequest:
    """A user's claim to a service: the facts they say the organisation holds about them.

    For council tax: CTaxAccountRef, PostCode (of the property) and Surname (a liable person).
    """

    class_: str
    organisation: str
    facts: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class KnownFactsResult:
    """The organisation's answer. On a match, identifiers become the enrolment's Keys and
    address is where the activation PIN is posted (the lines as the organisation holds them).
    reason says why there was no match; it is shown to the user, so it must not tell which
    fact was wrong."""

    match: bool
    identifiers: Mapping[str, str] = field(default_factory=dict)
    address: tuple[str, ...] = ()
    reason: str = ""


@runtime_checkable
class KnownFactsChecker(Protocol):
    """A connector that can check known facts, so users can enrol for its services."""

    async def check_known_facts(
        self, request: KnownFactsRequest, ctx: ConnectorContext
    ) -> KnownFactsResult:
        """Compare the facts with the back office's records; exceptions are hub failures."""


# --- Payments: a council told about a card payment (an optional connector capability) -----------


@dataclass(frozen=True, slots=True)
class PaymentNotification:
    """A successful payment through the hub's payment service, for the council's books.

    reference is what the payment was for (a Council Tax account reference); the same
    payment_id may be delivered more than once (at-least-once), so receivers apply it once.
    """

    payment_id: str
    organisation: str
    reference: str
    amount_pence: int
    paid_at: datetime


@runtime_checkable
class PaymentReceiver(Protocol):
    """A connector that records payments taken by the hub against its accounts."""

    async def payment_received(
        self, notification: PaymentNotification, ctx: ConnectorContext
    ) -> None:
        """Record the payment, idempotently by payment_id; an exception means "try again later"."""


@dataclass(frozen=True, slots=True)
class RefundNotification:
    """Money given back on a payment the council was told of (PaymentNotification).

    The same refund_id may be delivered more than once, so receivers apply it once.
    """

    refund_id: str
    payment_id: str
    organisation: str
    reference: str
    amount_pence: int
    refunded_at: datetime


@runtime_checkable
class RefundReceiver(Protocol):
    """A connector that records refunds of the payments it was told of."""

    async def refund_received(
        self, notification: RefundNotification, ctx: ConnectorContext
    ) -> None:
        """Record the refund, idempotently by refund_id; an exception means "try again later"."""


# --- Secure mail: messages to citizens by enrolment identifiers, replies back -------------------


@dataclass(frozen=True, slots=True)
class MailExpiryReport:
    """A message that expired unread: the sender is told so (listed, never pushed)."""

    id: int
    message_id: str
    organisation: str
    class_: str
    sender_message_id: str | None
    expired_at: datetime
    deleted_unread: bool = False  # the citizen deleted it without opening it


class MailSender(Protocol):
    """What the hub puts in ConnectorContext.mail: send as this connector's council.

    The message goes to the citizen with an active enrolment for class_ at the council whose
    Keys hold key_type = key_value (never a user ID). Refusals raise an exception carrying a
    `status` (422 nobody enrolled, 409 duplicate sender_message_id, 507 mailbox full).
    """

    async def send(
        self,
        class_: str,
        key_type: str,
        key_value: str,
        subject: str,
        body: str,
        *,
        sender_message_id: str,
        expires_at: datetime | None = None,
    ) -> str:
        """The hub's message id."""
        ...

    async def expired(self, since: int = 0) -> list[MailExpiryReport]:
        """This council's messages that expired unread, with report id above since."""
        ...


@dataclass(frozen=True, slots=True)
class MailMessage:
    """A citizen's reply, as delivered to the council's connector (at least once, by id)."""

    id: str
    organisation: str
    class_: str
    keys: Mapping[str, str]  # the enrolment identifier the original was addressed by
    subject: str
    body: str
    in_reply_to: str | None  # the hub's id of the council's message
    in_reply_to_sender_message_id: str | None  # the council's own id for it
    sent_at: datetime


@runtime_checkable
class MailReceiver(Protocol):
    """A connector that takes citizens' replies to its messages."""

    async def receive_mail(self, message: MailMessage, ctx: ConnectorContext) -> None:
        """Record the reply, idempotently by message.id; an exception means "try again later"."""
