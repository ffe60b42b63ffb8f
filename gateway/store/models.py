"""The hub's tables: submissions (the outbox), dead letters, citizens and their enrolments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# A naming convention keeps Alembic's batch migrations on SQLite deterministic.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Submission states. 'queued' and 'leased' are pending (the client is acknowledged);
# 'response' and 'error' are final answers that polls return until deleted.
QUEUED = "queued"
LEASED = "leased"
RESPONSE = "response"
ERROR = "error"
PENDING_STATES = (QUEUED, LEASED)


class Submission(Base):
    __tablename__ = "submissions"

    correlation_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    class_: Mapped[str] = mapped_column("class", String(40))  # as sent, with any -TIL suffix
    base_class: Mapped[str] = mapped_column(String(40))
    organisation: Mapped[str] = mapped_column(String(64))
    connector: Mapped[str] = mapped_column(String(64))
    sender_id: Mapped[str | None] = mapped_column(String(64))
    auth_method: Mapped[str] = mapped_column(String(16))
    auth_level: Mapped[float] = mapped_column(default=0)
    transaction_id: Mapped[str | None] = mapped_column(String(32))
    keys: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    gateway_test: Mapped[bool] = mapped_column(Boolean, default=False)
    test_in_live: Mapped[bool] = mapped_column(Boolean, default=False)
    request_body: Mapped[bytes] = mapped_column(LargeBinary)
    # The envelope Body with inherited namespaces, kept only when the payload carries an IRmark.
    envelope_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())

    state: Mapped[str] = mapped_column(String(10), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)

    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Final GovTalk errors as [{number, text, raised_by, type, locations}] and the application name.
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    error_application: Mapped[str | None] = mapped_column(String(128))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    purge_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_submissions_claim", "state", "next_attempt_at"),
        Index("ix_submissions_sender", "sender_id", "class", "received_at"),
        Index("ix_submissions_purge", "purge_after"),
    )


class DeadLetter(Base):
    """A transaction whose retries were exhausted: kept for inspection and replay."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    correlation_id: Mapped[str] = mapped_column(String(32), index=True)
    connector: Mapped[str] = mapped_column(String(64))
    class_: Mapped[str] = mapped_column("class", String(40))
    organisation: Mapped[str] = mapped_column(String(64))
    error_number: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Citizen(Base):
    """A registered Gateway user; secrets are stored only as salted scrypt hashes."""

    __tablename__ = "citizens"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    # scrypt of the password, and scrypt of the MD5 form clients send (never the MD5 itself,
    # which is as good as the password to an attacker).
    password_hash: Mapped[str] = mapped_column(String(256))
    md5_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EnrolmentRow(Base):
    __tablename__ = "enrolments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("citizens.user_id", ondelete="CASCADE"))
    class_: Mapped[str] = mapped_column("class", String(40))
    organisation: Mapped[str] = mapped_column(String(64))
    keys: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_enrolments_user", "user_id"),)
