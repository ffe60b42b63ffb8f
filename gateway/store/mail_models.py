"""Tables of the mail service (they share the hub's declarative Base and migrations).

Subjects and bodies are stored only as AES-GCM ciphertext (nonce + ciphertext + tag) under the
key named by key_id; nothing else in these tables carries message text.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, UTCDateTime

TO_CITIZEN = "to_citizen"
TO_COUNCIL = "to_council"


class MailMessageRow(Base):
    """One message: council to citizen (addressed by enrolment identifier), or a citizen's reply."""

    __tablename__ = "mail_messages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # random 128 bits, hex
    organisation: Mapped[str] = mapped_column(String(64))
    class_: Mapped[str] = mapped_column("class", String(40))
    # The enrolment identifier the sender addressed (e.g. CTaxAccountRef = 1234567890).
    key_type: Mapped[str] = mapped_column(String(64))
    key_value: Mapped[str] = mapped_column(String(128))
    # The citizen: resolved from the active enrolment when sent (the recipient of to_citizen
    # messages, the author of to_council replies).
    user_id: Mapped[str] = mapped_column(ForeignKey("citizens.user_id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(12))
    in_reply_to: Mapped[str | None] = mapped_column(String(32))
    sender: Mapped[str] = mapped_column(String(128))  # a label shown to the citizen
    # The sender's own id: a second message with the same one is a duplicate (409).
    sender_message_id: Mapped[str | None] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(32))
    subject_ct: Mapped[bytes] = mapped_column(LargeBinary)
    body_ct: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expiry_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Replies: when the council's connector accepted it (None: not yet, retried).
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        UniqueConstraint("organisation", "sender_message_id", name="uq_mail_messages_sender_id"),
        Index("ix_mail_messages_user", "user_id", "direction", "created_at"),
        Index("ix_mail_messages_expiry", "expires_at"),
    )


class MailExpiryReportRow(Base):
    """The sender is told: a message expired unread. Councils list these (API or connector)."""

    __tablename__ = "mail_expiry_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(32), unique=True)
    organisation: Mapped[str] = mapped_column(String(64))
    class_: Mapped[str] = mapped_column("class", String(40))
    sender: Mapped[str] = mapped_column(String(128))
    sender_message_id: Mapped[str | None] = mapped_column(String(128))
    expired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_unread: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_mail_expiry_reports_organisation", "organisation", "id"),)


class NotificationRow(Base):
    """The notifications outbox ('you have mail'); never carries a message's subject or body."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("citizens.user_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(String(512))
    message_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_notifications_user", "user_id", "id"),)
