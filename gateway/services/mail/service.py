"""The mail service: councils write to citizens by enrolment identifier; citizens read and reply.

Addressing: a sender names (organisation, class, key type, key value) — never a user ID. The
recipient is resolved when the message is sent, from the ACTIVE enrolments for that class at that
organisation whose Keys hold that identifier; nobody enrolled is 422, several citizens is 422 too
(the sender must address one citizen).

Refusals (MailError.status): 404 no such message (or another citizen's), 409 duplicate
sender_message_id at the organisation, 410 the message has expired, 422 nobody (or more than one
citizen) enrolled for the identifier, 507 the citizen's mailbox is full (`[mail] capacity`
unexpired, undeleted messages; the sender may try again later).

Expiry: a message may carry expires_at (or get `[mail] default_expiry_days`). `expire(now)`
records one MailExpiryReportRow per message that expired unread — the sender's notice, listed by
the council API (`GET /api/council/mail/expired`) and by connectors through `ctx.mail.expired()`.

Replies: stored as to_council messages (encrypted like the rest) and delivered to the connector
serving (class, organisation) when it implements MailReceiver; undelivered replies are retried by
`deliver_pending` (the background task) with backoff, at least once, so receivers apply them by
message id. Replies to a council whose connector takes none are only listed
(`GET /api/council/mail/replies`), never pushed.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.protocol import MailExpiryReport, MailMessage, MailReceiver
from gateway.audit.log import audit
from gateway.clock import utcnow
from gateway.errors import ProblemError
from gateway.identity.enrolment import ServiceLookup, ServiceTarget
from gateway.services.letters import LetterView
from gateway.services.mail.crypto import MailCrypto, field_aad
from gateway.store.engine import Database
from gateway.store.mail_models import (
    TO_CITIZEN,
    TO_COUNCIL,
    MailExpiryReportRow,
    MailMessageRow,
    NotificationRow,
)
from gateway.store.models import ACTIVE, Citizen, EnrolmentRow

log = structlog.get_logger("gateway.mail")

MAX_SUBJECT = 200
MAX_BODY = 20_000
MAIL_NOTIFICATION = "mail"
# A reply its council's connector refused is tried again after 30 s, then at doubling intervals
# up to an hour apart (as payment notices are).
REDELIVERY_FIRST = timedelta(seconds=30)
REDELIVERY_CAP = timedelta(hours=1)
# Expiry reports are numbered by a 32-bit column on PostgreSQL: no report has a larger id.
MAX_REPORT_ID = 2**31 - 1
HUB_SENDER = "Government Gateway"
PIN_LETTER_KEY = "EnrolmentId"  # how a PIN letter copy is addressed (the hub's own enrolment)


class MailError(ProblemError):
    """A mail refusal, answered as problem+json."""


@dataclass(frozen=True, slots=True)
class MessageSummary:
    id: str
    organisation: str
    class_: str
    sender: str
    created_at: datetime
    expires_at: datetime | None
    read_at: datetime | None
    in_reply_to: str | None

    @classmethod
    def of(cls, row: MailMessageRow) -> MessageSummary:
        return cls(
            row.id,
            row.organisation,
            row.class_,
            row.sender,
            row.created_at,
            row.expires_at,
            row.read_at,
            row.in_reply_to,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "organisation": self.organisation,
            "class": self.class_,
            "sender": self.sender,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "read": self.read_at is not None,
            "read_at": self.read_at.isoformat() if self.read_at else None,
            "in_reply_to": self.in_reply_to,
        }


@dataclass(frozen=True, slots=True)
class MessageView:
    summary: MessageSummary
    subject: str
    body: str

    def to_json(self) -> dict[str, Any]:
        return {**self.summary.to_json(), "subject": self.subject, "body": self.body}


@dataclass(frozen=True, slots=True)
class Reply:
    id: str
    delivered: bool


def report_json(report: MailExpiryReport) -> dict[str, Any]:
    return {
        "id": report.id,
        "message_id": report.message_id,
        "organisation": report.organisation,
        "class": report.class_,
        "sender_message_id": report.sender_message_id,
        "expired_at": report.expired_at.isoformat(),
        "deleted_unread": report.deleted_unread,
    }


def _report(row: MailExpiryReportRow) -> MailExpiryReport:
    return MailExpiryReport(
        id=row.id,
        message_id=row.message_id,
        organisation=row.organisation,
        class_=row.class_,
        sender_message_id=row.sender_message_id,
        expired_at=row.expired_at,
        deleted_unread=row.deleted_unread,
    )


def _text(value: str, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MailError(422, "Unprocessable Content", f"'{name}' must be non-empty text")
    if len(value) > limit:
        raise MailError(422, "Unprocessable Content", f"'{name}' is longer than {limit}")
    return value


class MailService:
    def __init__(
        self,
        db: Database,
        crypto: MailCrypto,
        clock: Callable[[], datetime] = utcnow,
        capacity: int = 100,
        *,
        default_expiry: timedelta | None = None,
        lookup: ServiceLookup | None = None,
    ) -> None:
        self.db = db
        self.crypto = crypto
        self.clock = clock
        self.capacity = capacity
        self.default_expiry = default_expiry
        self.lookup = lookup

    # -- sending ----------------------------------------------------------------------------------

    async def send_to_citizen(
        self,
        organisation: str,
        class_: str,
        key_type: str,
        key_value: str,
        subject: str,
        body: str,
        *,
        sender: str,
        sender_message_id: str,
        expires_at: datetime | None = None,
    ) -> str:
        """Deliver a message to the one citizen enrolled for the identifier; its id."""
        _text(subject, "subject", MAX_SUBJECT)
        _text(body, "body", MAX_BODY)
        for name, value in (
            ("class", class_),
            ("key_type", key_type),
            ("key_value", key_value),
            ("sender_message_id", sender_message_id),
        ):
            _text(value, name, 128)
        now = self.clock()
        if expires_at is None and self.default_expiry is not None:
            expires_at = now + self.default_expiry
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise MailError(422, "Unprocessable Content", "expires_at needs a time zone")
            if expires_at <= now:
                raise MailError(422, "Unprocessable Content", "expires_at is in the past")
        try:
            async with self.db.transaction() as session:
                earlier = await session.scalar(
                    select(MailMessageRow.id).where(
                        MailMessageRow.organisation == organisation,
                        MailMessageRow.sender_message_id == sender_message_id,
                    )
                )
                if earlier is not None:
                    raise _duplicate(organisation, sender_message_id, earlier)
                user_id = await self._recipient(session, organisation, class_, key_type, key_value)
                await self._check_capacity(session, user_id, now)
                row = self._row(
                    organisation=organisation,
                    class_=class_,
                    key_type=key_type,
                    key_value=key_value,
                    user_id=user_id,
                    direction=TO_CITIZEN,
                    sender=sender[:128],
                    sender_message_id=sender_message_id,
                    subject=subject,
                    body=body,
                    now=now,
                    expires_at=expires_at,
                )
                session.add(row)
                session.add(self._notification(row, now))
                await session.flush()
                message_id = row.id
        except IntegrityError:
            raise _duplicate(organisation, sender_message_id, None) from None
        audit("mail.sent", message_id=message_id, organisation=organisation, class_=class_)
        return message_id

    async def deliver_letter(self, letter: LetterView, session: AsyncSession) -> str | None:
        """A copy of an activation PIN letter in the citizen's mailbox, in the letter's
        transaction. A full mailbox skips the copy (the post still goes)."""
        enrolment = (
            await session.get(EnrolmentRow, letter.enrolment_id)
            if letter.enrolment_id is not None
            else None
        )
        now = self.clock()
        try:
            await self._check_capacity(session, letter.user_id, now)
        except MailError:
            log.warning("mail.letter_copy_skipped", user_id=letter.user_id, reason="full")
            return None
        row = self._row(
            organisation=letter.organisation,
            class_=enrolment.class_ if enrolment is not None else letter.kind[:40],
            key_type=PIN_LETTER_KEY,
            key_value=str(letter.enrolment_id or ""),
            user_id=letter.user_id,
            direction=TO_CITIZEN,
            sender=HUB_SENDER,
            sender_message_id=None,
            subject="Your activation PIN",
            body=letter.text,
            now=now,
            expires_at=None,
        )
        session.add(row)
        session.add(self._notification(row, now))
        await session.flush()
        return row.id

    def _row(
        self,
        *,
        organisation: str,
        class_: str,
        key_type: str,
        key_value: str,
        user_id: str,
        direction: str,
        sender: str,
        sender_message_id: str | None,
        subject: str,
        body: str,
        now: datetime,
        expires_at: datetime | None,
        in_reply_to: str | None = None,
    ) -> MailMessageRow:
        message_id = secrets.token_hex(16)
        key_id = self.crypto.current_key
        return MailMessageRow(
            id=message_id,
            organisation=organisation,
            class_=class_,
            key_type=key_type,
            key_value=key_value,
            user_id=user_id,
            direction=direction,
            in_reply_to=in_reply_to,
            sender=sender,
            sender_message_id=sender_message_id,
            key_id=key_id,
            subject_ct=self.crypto.encrypt(
                subject, field_aad(message_id, user_id, "subject"), key_id
            ),
            body_ct=self.crypto.encrypt(body, field_aad(message_id, user_id, "body"), key_id),
            created_at=now,
            expires_at=expires_at,
            delivery_attempts=0,
        )

    @staticmethod
    def _notification(row: MailMessageRow, now: datetime) -> NotificationRow:
        # Never the subject: the notifications outbox is not encrypted.
        return NotificationRow(
            user_id=row.user_id,
            kind=MAIL_NOTIFICATION,
            text=f"You have a new secure message from {row.sender}.",
            message_id=row.id,
            created_at=now,
        )

    async def _recipient(
        self, session: AsyncSession, organisation: str, class_: str, key_type: str, key_value: str
    ) -> str:
        rows = await session.scalars(
            select(EnrolmentRow).where(
                EnrolmentRow.organisation == organisation,
                EnrolmentRow.class_ == class_,
                EnrolmentRow.state == ACTIVE,
            )
        )
        users = {row.user_id for row in rows if (row.keys or {}).get(key_type) == key_value}
        if not users:
            raise MailError(
                422,
                "No recipient",
                f"no citizen enrolled for {key_type} {key_value} ({class_} at {organisation})",
            )
        if len(users) > 1:
            raise MailError(
                422,
                "Ambiguous recipient",
                f"several citizens are enrolled for {key_type} {key_value}; "
                "a message reaches one citizen",
            )
        return users.pop()

    async def _check_capacity(self, session: AsyncSession, user_id: str, now: datetime) -> None:
        """Refuse (507) a message the citizen's mailbox has no room for."""
        # Sends to one citizen take turns from this count to their commit: on PostgreSQL (READ
        # COMMITTED) concurrent senders all counted the same room and overfilled the mailbox.
        # FOR NO KEY UPDATE, as other writers' foreign keys to the citizen only share its key.
        await session.execute(
            select(Citizen.user_id)
            .where(Citizen.user_id == user_id)
            .with_for_update(key_share=True)
        )
        held = await session.scalar(
            select(func.count()).select_from(MailMessageRow).where(*self._inbox(user_id, now))
        )
        if (held or 0) >= self.capacity:
            raise MailError(
                507,
                "Mailbox full",
                f"the citizen's mailbox holds its limit of {self.capacity} messages; "
                "try again later",
            )

    @staticmethod
    def _inbox(user_id: str, now: datetime) -> Sequence[Any]:
        return (
            MailMessageRow.user_id == user_id,
            MailMessageRow.direction == TO_CITIZEN,
            MailMessageRow.deleted_at.is_(None),
            or_(MailMessageRow.expires_at.is_(None), MailMessageRow.expires_at > now),
        )

    # -- the citizen ------------------------------------------------------------------------------

    async def list(self, user_id: str) -> list[MessageSummary]:
        """The citizen's unexpired, undeleted messages, newest first (metadata only)."""
        now = self.clock()
        query = (
            select(MailMessageRow)
            .where(*self._inbox(user_id, now))
            .order_by(MailMessageRow.created_at.desc(), MailMessageRow.id)
        )
        async with self.db.read() as session:
            return [MessageSummary.of(row) for row in await session.scalars(query)]

    async def _owned(self, session: AsyncSession, user_id: str, message_id: str) -> MailMessageRow:
        row = await session.get(MailMessageRow, message_id) if len(message_id) <= 32 else None
        if (
            row is None
            or row.user_id != user_id
            or row.direction != TO_CITIZEN
            or row.deleted_at is not None
        ):
            raise MailError(404, "Not Found", "no such message")
        if row.expires_at is not None and row.expires_at <= self.clock():
            raise MailError(410, "Gone", "the message has expired")
        return row

    async def read(self, user_id: str, message_id: str) -> MessageView:
        """Decrypt the message; the first read sets read_at, later reads keep it."""
        async with self.db.transaction() as session:
            row = await self._owned(session, user_id, message_id)
            if row.read_at is None:
                row.read_at = self.clock()
            return MessageView(
                MessageSummary.of(row),
                self._decrypt(row, "subject", row.subject_ct),
                self._decrypt(row, "body", row.body_ct),
            )

    def _decrypt(self, row: MailMessageRow, name: str, blob: bytes) -> str:
        return self.crypto.decrypt(row.key_id, blob, field_aad(row.id, row.user_id, name))

    def _to_council(self, row: MailMessageRow, original: MailMessageRow | None) -> MailMessage:
        """A citizen's reply as its council's system receives it, decrypted."""
        return MailMessage(
            id=row.id,
            organisation=row.organisation,
            class_=row.class_,
            keys={row.key_type: row.key_value},
            subject=self._decrypt(row, "subject", row.subject_ct),
            body=self._decrypt(row, "body", row.body_ct),
            in_reply_to=row.in_reply_to,
            in_reply_to_sender_message_id=original.sender_message_id if original else None,
            sent_at=row.created_at,
        )

    async def delete(self, user_id: str, message_id: str) -> None:
        async with self.db.transaction() as session:
            row = await session.get(MailMessageRow, message_id) if len(message_id) <= 32 else None
            if (
                row is None
                or row.user_id != user_id
                or row.direction != TO_CITIZEN
                or row.deleted_at is not None
            ):
                raise MailError(404, "Not Found", "no such message")
            row.deleted_at = self.clock()

    async def notifications(self, user_id: str) -> builtins.list[dict[str, Any]]:
        query = (
            select(NotificationRow)
            .where(NotificationRow.user_id == user_id)
            .order_by(NotificationRow.id)
        )
        async with self.db.read() as session:
            return [
                {
                    "id": n.id,
                    "kind": n.kind,
                    "text": n.text,
                    "message_id": n.message_id,
                    "created_at": n.created_at.isoformat(),
                }
                for n in await session.scalars(query)
            ]

    async def reply(
        self, user_id: str, message_id: str, body: str, subject: str | None = None
    ) -> Reply:
        """Store the reply and hand it to the council's connector (retried if that fails)."""
        _text(body, "body", MAX_BODY)
        now = self.clock()
        async with self.db.transaction() as session:
            original = await self._owned(session, user_id, message_id)
            if original.sender_message_id is None:
                raise MailError(422, "Unprocessable Content", "this message takes no replies")
            if subject is None:
                subject = "Re: " + self._decrypt(original, "subject", original.subject_ct)
            _text(subject, "subject", MAX_SUBJECT + 4)
            row = self._row(
                organisation=original.organisation,
                class_=original.class_,
                key_type=original.key_type,
                key_value=original.key_value,
                user_id=user_id,
                direction=TO_COUNCIL,
                sender=user_id,
                sender_message_id=None,
                subject=subject,
                body=body,
                now=now,
                expires_at=None,
                in_reply_to=original.id,
            )
            session.add(row)
            await session.flush()
            reply_id = row.id
        delivered = await self._deliver(reply_id)
        return Reply(reply_id, delivered)

    # -- the council ------------------------------------------------------------------------------

    async def _deliver(self, message_id: str) -> bool:
        async with self.db.read() as session:
            row = await session.get(MailMessageRow, message_id)
            if row is None or row.delivered_at is not None:
                return row is not None
            original = (
                await session.get(MailMessageRow, row.in_reply_to) if row.in_reply_to else None
            )
        target = self._receiver(row.class_, row.organisation)
        if target is None:
            return False  # listed by GET /api/council/mail/replies instead
        message = self._to_council(row, original)
        ok = True
        try:
            await cast(MailReceiver, target.connector).receive_mail(message, target.ctx)
        except Exception:
            log.exception("mail.reply_delivery_failed", message_id=row.id)
            ok = False
        async with self.db.transaction() as session:
            stored = await session.get(MailMessageRow, message_id)
            if stored is not None:
                stored.delivery_attempts += 1
                if ok and stored.delivered_at is None:
                    stored.delivered_at = self.clock()
        return ok

    async def deliver_pending(self, limit: int = 100) -> int:
        """Retry the replies due again that a MailReceiver has not accepted yet; how many went."""
        undelivered = (
            MailMessageRow.direction == TO_COUNCIL,
            MailMessageRow.delivered_at.is_(None),
        )
        async with self.db.read() as session:
            pairs = (
                await session.execute(
                    select(MailMessageRow.class_, MailMessageRow.organisation)
                    .where(*undelivered)
                    .distinct()
                )
            ).all()
            # Replies to councils whose connector takes none are never delivered (they are
            # listed instead): left in the queue, they crowded out the ones that can be.
            pushed = [
                and_(MailMessageRow.class_ == class_, MailMessageRow.organisation == organisation)
                for class_, organisation in pairs
                if self._receiver(class_, organisation) is not None
            ]
            if not pushed:
                return 0
            waiting = (
                await session.execute(
                    select(
                        MailMessageRow.id,
                        MailMessageRow.created_at,
                        MailMessageRow.delivery_attempts,
                    ).where(*undelivered, or_(*pushed))
                )
            ).all()
        now = self.clock()
        due = sorted(
            (at, message_id)
            for message_id, created_at, attempts in waiting
            if (at := redelivery_at(created_at, attempts)) <= now
        )
        delivered = 0
        for _, message_id in due[:limit]:
            if await self._deliver(message_id):
                delivered += 1
        return delivered

    def _receiver(self, class_: str, organisation: str) -> ServiceTarget | None:
        """The connector serving (class, organisation), if it takes replies (MailReceiver)."""
        target = self.lookup(class_, organisation) if self.lookup else None
        if target is None or not isinstance(target.connector, MailReceiver):
            return None
        return target

    async def replies(
        self, organisation: str, since: datetime | None = None
    ) -> builtins.list[MailMessage]:
        """Citizens' replies to this council (for council systems without a MailReceiver)."""
        query = select(MailMessageRow).where(
            MailMessageRow.organisation == organisation, MailMessageRow.direction == TO_COUNCIL
        )
        if since is not None:
            query = query.where(MailMessageRow.created_at > since)
        async with self.db.read() as session:
            rows = list(await session.scalars(query.order_by(MailMessageRow.created_at)))
            originals = {
                o.id: o
                for o in await session.scalars(
                    select(MailMessageRow).where(
                        MailMessageRow.id.in_([r.in_reply_to for r in rows if r.in_reply_to])
                    )
                )
            }
        return [self._to_council(row, originals.get(row.in_reply_to or "")) for row in rows]

    async def expire(self, now: datetime | None = None) -> int:
        """Record an expiry report for each message that expired unread; idempotent."""
        now = now or self.clock()
        async with self.db.transaction() as session:
            rows = list(
                await session.scalars(
                    select(MailMessageRow).where(
                        MailMessageRow.direction == TO_CITIZEN,
                        MailMessageRow.read_at.is_(None),
                        MailMessageRow.expiry_reported_at.is_(None),
                        MailMessageRow.expires_at.is_not(None),
                        MailMessageRow.expires_at <= now,
                    )
                )
            )
            for row in rows:
                assert row.expires_at is not None
                row.expiry_reported_at = now
                session.add(
                    MailExpiryReportRow(
                        message_id=row.id,
                        organisation=row.organisation,
                        class_=row.class_,
                        sender=row.sender,
                        sender_message_id=row.sender_message_id,
                        expired_at=row.expires_at,
                        deleted_unread=row.deleted_at is not None,
                        created_at=now,
                    )
                )
        if rows:
            log.info("mail.expired_unread", messages=len(rows))
        return len(rows)

    async def expiry_reports(
        self, organisation: str, since: int = 0
    ) -> builtins.list[MailExpiryReport]:
        query = (
            select(MailExpiryReportRow)
            .where(MailExpiryReportRow.organisation == organisation, MailExpiryReportRow.id > since)
            .order_by(MailExpiryReportRow.id)
        )
        async with self.db.read() as session:
            return [_report(row) for row in await session.scalars(query)]

    async def reencrypt(self, batch: int = 500) -> int:
        """Move every message under the current key (after a rotation); how many moved."""
        moved = 0
        while True:
            async with self.db.transaction() as session:
                rows = list(
                    await session.scalars(
                        select(MailMessageRow)
                        .where(MailMessageRow.key_id != self.crypto.current_key)
                        .limit(batch)
                    )
                )
                for row in rows:
                    subject = self._decrypt(row, "subject", row.subject_ct)
                    body = self._decrypt(row, "body", row.body_ct)
                    row.key_id = self.crypto.current_key
                    row.subject_ct = self.crypto.encrypt(
                        subject, field_aad(row.id, row.user_id, "subject")
                    )
                    row.body_ct = self.crypto.encrypt(body, field_aad(row.id, row.user_id, "body"))
            moved += len(rows)
            if len(rows) < batch:
                return moved


def redelivery_at(created_at: datetime, attempts: int) -> datetime:
    """When a reply that has been tried `attempts` times is due again."""
    # Counted from when the reply was written, so no column records the last attempt: after
    # the first try 30 s, then doubling gaps up to REDELIVERY_CAP, then one try each CAP.
    doubling = [min(REDELIVERY_FIRST * 2**i, REDELIVERY_CAP) for i in range(min(attempts, 8))]
    return created_at + sum(doubling, timedelta()) + REDELIVERY_CAP * max(attempts - 8, 0)


def _duplicate(organisation: str, sender_message_id: str, earlier: str | None) -> MailError:
    extra: dict[str, Any] = {"message_id": earlier} if earlier else {}
    return MailError(
        409,
        "Duplicate message",
        f"{organisation} already sent a message with sender_message_id {sender_message_id}",
        **extra,
    )


@dataclass(slots=True)
class ConnectorMail:
    """ConnectorContext.mail for one connector: sends as its council, for classes it serves."""

    service: MailService
    organisation: str
    classes: frozenset[str]
    sender: str

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
        if class_ not in self.classes:
            raise MailError(
                403,
                "Forbidden",
                f"this connector does not serve {class_} at {self.organisation}",
            )
        return await self.service.send_to_citizen(
            self.organisation,
            class_,
            key_type,
            key_value,
            subject,
            body,
            sender=self.sender,
            sender_message_id=sender_message_id,
            expires_at=expires_at,
        )

    async def expired(self, since: int = 0) -> list[MailExpiryReport]:
        return await self.service.expiry_reports(self.organisation, since)
