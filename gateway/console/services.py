"""Console: the hub's services — the letters outbox, mailboxes, payments and webhook attempts.

Mail is shown as metadata only: who, to whom, when, read or not. Subjects count as message
content (they are encrypted at rest like bodies and say as much), so neither is decrypted unless
the caller passes a `reveal` (the console does only when the configuration explicitly allows it).
Letters are shown with any activation PIN masked: the PIN is the citizen's proof of address.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from sqlalchemy import case, func, select

from gateway.config import Config
from gateway.console.journeys import pounds
from gateway.console.paging import PAGE_SIZE, Page, cut, offset, page_number
from gateway.console.settings import redact_url
from gateway.services.letters import ACTIVATION_PIN
from gateway.services.payments import lifecycle
from gateway.store.engine import Database
from gateway.store.mail_models import TO_CITIZEN, MailMessageRow
from gateway.store.models import Letter, UTCDateTime
from gateway.store.payment_models import (
    DELIVERY_DELIVERED,
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    PaymentRow,
    WebhookAttemptRow,
    WebhookDeliveryRow,
)

PIN_IN_LETTER = re.compile(r"(activation PIN is: )(\S+)")
MASKED_PIN = "•" * 8

# Decrypts (row, field name) to text; given only when message content may be shown.
Reveal = Callable[[MailMessageRow, str], str]


@dataclass(frozen=True, slots=True)
class LetterLine:
    id: int
    user_id: str
    organisation: str
    kind: str
    address: tuple[str, ...]
    enrolment_id: int | None
    created_at: datetime
    arrives_at: datetime
    text: str  # with any activation PIN masked


@dataclass(frozen=True, slots=True)
class MailboxLine:
    """One citizen's mailbox, counted."""

    user_id: str
    messages: int  # to the citizen, not deleted
    unread: int
    replies: int  # the citizen's replies to councils
    undelivered_replies: int
    latest_at: datetime


@dataclass(frozen=True, slots=True)
class MailLine:
    id: str
    direction: str  # to_citizen | to_council
    user_id: str
    organisation: str
    class_: str
    sender: str
    addressed_to: str  # the enrolment identifier the council wrote to
    created_at: datetime
    expires_at: datetime | None
    read_at: datetime | None
    deleted_at: datetime | None
    delivered_at: datetime | None
    in_reply_to: str | None
    subject: str | None = None  # only with a reveal
    body: str | None = None  # only with a reveal


@dataclass(frozen=True, slots=True)
class PaymentLine:
    id: str
    organisation: str
    reference: str
    description: str
    amount_pence: int
    state: str
    created_at: datetime
    finished_at: datetime | None
    failure_code: str | None
    card: str  # brand and last four digits, when paid by card
    refunded_pence: int
    council_told: str  # none | pending | done


@dataclass(frozen=True, slots=True)
class AttemptLine:
    number: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryLine:
    id: int
    event_id: str
    event_type: str
    payment_id: str | None
    url: str  # credentials in it redacted
    state: str
    attempts: tuple[AttemptLine, ...]
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


def mask_pins(text: str) -> str:
    return PIN_IN_LETTER.sub(lambda m: m.group(1) + MASKED_PIN, text)


async def list_letters(
    db: Database, number: int = 1, *, user_id: str | None = None, organisation: str | None = None
) -> Page[LetterLine]:
    """The outbox, newest first."""
    stmt = select(Letter).order_by(Letter.id.desc())
    if user_id:
        stmt = stmt.where(Letter.user_id == user_id)
    if organisation:
        stmt = stmt.where(Letter.organisation == organisation)
    async with db.read() as session:
        rows = list(await session.scalars(stmt.offset(offset(number)).limit(PAGE_SIZE + 1)))
    return cut(
        [
            LetterLine(
                id=r.id,
                user_id=r.user_id,
                organisation=r.organisation,
                kind=r.kind,
                address=tuple(r.address),
                enrolment_id=r.enrolment_id,
                created_at=r.created_at,
                arrives_at=r.arrives_at,
                text=mask_pins(r.text) if r.kind == ACTIVATION_PIN else r.text,
            )
            for r in rows
        ],
        number,
    )


async def list_mailboxes(db: Database, number: int = 1) -> Page[MailboxLine]:
    """Mailboxes with mail in them, the most recently used first."""
    live = MailMessageRow.deleted_at.is_(None)
    to_citizen = MailMessageRow.direction == TO_CITIZEN
    stmt = (
        select(
            MailMessageRow.user_id,
            func.sum(case((to_citizen & live, 1), else_=0)),
            func.sum(case((to_citizen & live & MailMessageRow.read_at.is_(None), 1), else_=0)),
            func.sum(case((~to_citizen, 1), else_=0)),
            func.sum(case((~to_citizen & MailMessageRow.delivered_at.is_(None), 1), else_=0)),
            # Typed, so the aggregate comes back as an aware datetime on SQLite too.
            func.max(MailMessageRow.created_at, type_=UTCDateTime()),
        )
        .group_by(MailMessageRow.user_id)
        .order_by(func.max(MailMessageRow.created_at).desc(), MailMessageRow.user_id)
        .offset(offset(number))
        .limit(PAGE_SIZE + 1)
    )
    async with db.read() as session:
        rows = (await session.execute(stmt)).all()
    return cut(
        [
            MailboxLine(
                user_id=user,
                messages=int(messages or 0),
                unread=int(unread or 0),
                replies=int(replies or 0),
                undelivered_replies=int(undelivered or 0),
                latest_at=latest,
            )
            for user, messages, unread, replies, undelivered, latest in rows
        ],
        number,
    )


async def list_mail(
    db: Database,
    number: int = 1,
    *,
    user_id: str | None = None,
    organisation: str | None = None,
    reveal: Reveal | None = None,
) -> Page[MailLine]:
    """Messages newest first, as metadata; subject and body only through `reveal`."""
    stmt = select(MailMessageRow).order_by(MailMessageRow.created_at.desc(), MailMessageRow.id)
    if user_id:
        stmt = stmt.where(MailMessageRow.user_id == user_id)
    if organisation:
        stmt = stmt.where(MailMessageRow.organisation == organisation)
    async with db.read() as session:
        rows = list(await session.scalars(stmt.offset(offset(number)).limit(PAGE_SIZE + 1)))
    return cut([_mail_line(row, reveal) for row in rows], number)


def _mail_line(row: MailMessageRow, reveal: Reveal | None) -> MailLine:
    subject = body = None
    if reveal is not None:
        subject, body = reveal(row, "subject"), reveal(row, "body")
    return MailLine(
        id=row.id,
        direction=row.direction,
        user_id=row.user_id,
        organisation=row.organisation,
        class_=row.class_,
        sender=row.sender,
        addressed_to=f"{row.key_type} {row.key_value}",
        created_at=row.created_at,
        expires_at=row.expires_at,
        read_at=row.read_at,
        deleted_at=row.deleted_at,
        delivered_at=row.delivered_at,
        in_reply_to=row.in_reply_to,
        subject=subject,
        body=body,
    )


async def list_payments(
    db: Database,
    number: int = 1,
    *,
    state: str | None = None,
    council: str | None = None,
    payment_id: str | None = None,
) -> Page[PaymentLine]:
    """Payments newest first."""
    stmt = select(PaymentRow).order_by(PaymentRow.created_at.desc(), PaymentRow.id)
    if state:
        stmt = stmt.where(PaymentRow.state == state)
    if council:
        stmt = stmt.where(PaymentRow.organisation == council)
    if payment_id:
        stmt = stmt.where(PaymentRow.id == payment_id)
    async with db.read() as session:
        rows = list(await session.scalars(stmt.offset(offset(number)).limit(PAGE_SIZE + 1)))
    return cut(
        [
            PaymentLine(
                id=r.id,
                organisation=r.organisation,
                reference=r.reference,
                description=r.description,
                amount_pence=r.amount_pence,
                state=r.state,
                created_at=r.created_at,
                finished_at=r.finished_at,
                failure_code=r.failure_code,
                card=f"{r.card_brand} ending {r.card_last4}" if r.card_last4 else "",
                refunded_pence=r.refunded_pence,
                council_told=r.notify_state,
            )
            for r in rows
        ],
        number,
    )


async def list_webhooks(
    db: Database, number: int = 1, *, state: str | None = None
) -> Page[DeliveryLine]:
    """Webhook deliveries newest first, each with every attempt made."""
    stmt = select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id.desc())
    if state:
        stmt = stmt.where(WebhookDeliveryRow.state == state)
    async with db.read() as session:
        deliveries = list(await session.scalars(stmt.offset(offset(number)).limit(PAGE_SIZE + 1)))
        attempts = (
            list(
                await session.scalars(
                    select(WebhookAttemptRow)
                    .where(WebhookAttemptRow.delivery_id.in_([d.id for d in deliveries]))
                    .order_by(WebhookAttemptRow.delivery_id, WebhookAttemptRow.number)
                )
            )
            if deliveries
            else []
        )
    by_delivery: dict[int, list[AttemptLine]] = {}
    for a in attempts:
        by_delivery.setdefault(a.delivery_id, []).append(
            AttemptLine(a.number, a.attempted_at, a.status_code, a.error, a.next_attempt_at)
        )
    return cut(
        [
            DeliveryLine(
                id=d.id,
                event_id=d.event_id,
                event_type=d.event_type,
                payment_id=_payment_of(d.payload),
                url=redact_url(d.url),
                state=d.state,
                attempts=tuple(by_delivery.get(d.id, ())),
                next_attempt_at=d.next_attempt_at,
                created_at=d.created_at,
                delivered_at=d.delivered_at,
            )
            for d in deliveries
        ],
        number,
    )


def _payment_of(payload: object) -> str | None:
    if isinstance(payload, dict):
        payment = payload.get("payment")
        if isinstance(payment, dict) and isinstance(payment.get("payment_id"), str):
            return str(payment["payment_id"])
    return None


@dataclass(frozen=True, slots=True)
class ServicesSummary:
    letters: int
    mailboxes: int
    unread: int
    undelivered_replies: int
    payments: tuple[tuple[str, int], ...]  # by state
    webhooks: tuple[tuple[str, int], ...]  # deliveries by state


async def services_summary(db: Database) -> ServicesSummary:
    """Counts for the services page's summary."""
    async with db.read() as session:
        letters = await session.scalar(select(func.count()).select_from(Letter))
        mailboxes = await session.scalar(select(func.count(func.distinct(MailMessageRow.user_id))))
        unread = await session.scalar(
            select(func.count()).where(
                MailMessageRow.direction == TO_CITIZEN,
                MailMessageRow.read_at.is_(None),
                MailMessageRow.deleted_at.is_(None),
            )
        )
        undelivered = await session.scalar(
            select(func.count()).where(
                MailMessageRow.direction != TO_CITIZEN, MailMessageRow.delivered_at.is_(None)
            )
        )
        payments = (
            await session.execute(select(PaymentRow.state, func.count()).group_by(PaymentRow.state))
        ).all()
        webhooks = (
            await session.execute(
                select(WebhookDeliveryRow.state, func.count()).group_by(WebhookDeliveryRow.state)
            )
        ).all()
    return ServicesSummary(
        letters=int(letters or 0),
        mailboxes=int(mailboxes or 0),
        unread=int(unread or 0),
        undelivered_replies=int(undelivered or 0),
        payments=tuple(sorted((str(s), int(n)) for s, n in payments)),
        webhooks=tuple(sorted((str(s), int(n)) for s, n in webhooks)),
    )


# --- HTTP ----------------------------------------------------------------------------------------


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/services", summary_page)
    app.router.add_get("/console/services/letters", letters_page)
    app.router.add_get("/console/services/mailboxes", mailboxes_page)
    app.router.add_get("/console/services/mail", mail_page)
    app.router.add_get("/console/services/payments", payments_page)
    app.router.add_get("/console/services/webhooks", webhooks_page)


def _filter(request: web.Request, name: str, limit: int = 64) -> str:
    return request.query.get(name, "").strip()[:limit]


async def _render(request: web.Request, template: str, **context: object) -> web.Response:
    from gateway.console import layout

    return await layout.render(request, template, section="services", **context)


async def summary_page(request: web.Request) -> web.Response:
    from gateway.web.keys import DB

    summary = await services_summary(request.app[DB])
    return await _render(request, "services.html", summary=summary)


async def letters_page(request: web.Request) -> web.Response:
    from gateway.web.keys import DB

    params = {
        "user_id": _filter(request, "user_id"),
        "organisation": _filter(request, "organisation"),
    }
    letters = await list_letters(
        request.app[DB],
        page_number(request.query.get("page")),
        user_id=params["user_id"] or None,
        organisation=params["organisation"] or None,
    )
    return await _render(request, "services_letters.html", letters=letters, params=params)


async def mailboxes_page(request: web.Request) -> web.Response:
    from gateway.web.keys import DB

    mailboxes = await list_mailboxes(request.app[DB], page_number(request.query.get("page")))
    return await _render(request, "services_mailboxes.html", mailboxes=mailboxes, params={})


def mail_content_allowed(config: Config) -> bool:
    """Whether the configuration explicitly lets the console show message subjects and bodies."""
    return config.admin.show_mail_content is True


async def mail_page(request: web.Request) -> web.Response:
    from gateway.web.keys import CONFIG, DB

    params = {
        "user_id": _filter(request, "user_id"),
        "organisation": _filter(request, "organisation"),
    }
    reveal = _reveal(request) if mail_content_allowed(request.app[CONFIG]) else None
    messages = await list_mail(
        request.app[DB],
        page_number(request.query.get("page")),
        user_id=params["user_id"] or None,
        organisation=params["organisation"] or None,
        reveal=reveal,
    )
    return await _render(
        request, "services_mail.html", messages=messages, params=params, content=reveal is not None
    )


def _reveal(request: web.Request) -> Reveal | None:
    from gateway.services.mail.crypto import MailKeyError, field_aad
    from gateway.web.mail_views import MAIL

    service = request.app.get(MAIL)
    if service is None:
        return None
    crypto = service.crypto

    def reveal(row: MailMessageRow, name: str) -> str:
        blob = row.subject_ct if name == "subject" else row.body_ct
        try:
            return crypto.decrypt(row.key_id, blob, field_aad(row.id, row.user_id, name))
        except MailKeyError:
            return "(cannot be decrypted with the keys this hub holds)"

    return reveal


async def payments_page(request: web.Request) -> web.Response:
    from gateway.web.keys import DB

    params = {
        "state": _filter(request, "state"),
        "council": _filter(request, "council"),
        "id": _filter(request, "id"),
    }
    payments = await list_payments(
        request.app[DB],
        page_number(request.query.get("page")),
        state=params["state"] or None,
        council=params["council"] or None,
        payment_id=params["id"] or None,
    )
    return await _render(
        request,
        "services_payments.html",
        payments=payments,
        params=params,
        states=lifecycle.STATES,
        pounds=pounds,
    )


async def webhooks_page(request: web.Request) -> web.Response:
    from gateway.web.keys import DB

    params = {"state": _filter(request, "state")}
    deliveries = await list_webhooks(
        request.app[DB], page_number(request.query.get("page")), state=params["state"] or None
    )
    return await _render(
        request,
        "services_webhooks.html",
        deliveries=deliveries,
        params=params,
        states=(DELIVERY_PENDING, DELIVERY_DELIVERED, DELIVERY_FAILED),
    )
