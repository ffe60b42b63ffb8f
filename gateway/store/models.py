"""The hub's tables: submissions (the outbox), dead letters, citizens and their enrolments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Double,
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


class Real(TypeDecorator[float]):
    """A float on every backend: SQLite gives an integral REAL back as an int from RETURNING,
    and a connector's JSON must not say 1 on one delivery and 1.0 on the next."""

    impl = Double
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> float | None:
        return None if value is None else float(value)


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
    auth_level: Mapped[float] = mapped_column(Real, default=0)
    transaction_id: Mapped[str | None] = mapped_column(String(32))
    keys: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    gateway_test: Mapped[bool] = mapped_column(Boolean, default=False)
    test_in_live: Mapped[bool] = mapped_column(Boolean, default=False)
    request_body: Mapped[bytes] = mapped_column(LargeBinary)
    # The envelope Body with inherited namespaces, kept only when the payload carries an IRmark.
    envelope_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A test submission's own GatewayTimestamp (GatewayTest=1), as the Gateway's local test tool
    # allowed: its connector and its replies are given this time instead of received_at.
    backdated_to: Mapped[datetime | None] = mapped_column(UTCDateTime())

    state: Mapped[str] = mapped_column(String(10), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)

    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Final GovTalk errors as [{number, text, raised_by, type, locations}] and the application name.
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # Set ("" at least) exactly when the answer is a back office's BusinessError.
    error_application: Mapped[str | None] = mapped_column(String(128))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    purge_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        # The dispatcher steps through connectors and their queue heads on this (due_sql.py).
        Index("ix_submissions_due", "state", "connector", "next_attempt_at"),
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


# Citizen kinds (reference §5) and enrolment states.
INDIVIDUAL, ORGANISATION, AGENT = "individual", "organisation", "agent"
# An enrolment starts when known facts are offered: facts_pending (wrong facts so far, maybe
# locked_until), then awaiting_activation (facts matched, PIN posted), then active.
FACTS_PENDING = "facts_pending"
AWAITING_ACTIVATION = "awaiting_activation"
ACTIVE = "active"


class Citizen(Base):
    """A registered Gateway user; secrets are stored only as salted memory-hard hashes."""

    __tablename__ = "citizens"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default=INDIVIDUAL, server_default=INDIVIDUAL)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    # scrypt of the password, and scrypt of the MD5 form clients send (never the MD5 itself,
    # which is as good as the password to an attacker). None: registered by certificate only.
    password_hash: Mapped[str | None] = mapped_column(String(256))
    md5_hash: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EnrolmentRow(Base):
    """A citizen's enrolment for a service at an organisation; Keys identify it once active."""

    __tablename__ = "enrolments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("citizens.user_id", ondelete="CASCADE"))
    class_: Mapped[str] = mapped_column("class", String(40))
    organisation: Mapped[str] = mapped_column(String(64))
    keys: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(24), default=ACTIVE, server_default=ACTIVE)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The activation PIN, hashed; single use, expiring (28 days by default).
    pin_hash: Mapped[str | None] = mapped_column(String(256))
    pin_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pin_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_enrolments_user", "user_id"),)


class Letter(Base):
    """The hub's post: a letter to the address the organisation holds (activation PINs)."""

    __tablename__ = "letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("citizens.user_id", ondelete="CASCADE"))
    organisation: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    address: Mapped[list[str]] = mapped_column(JSON)  # address lines, as the council holds them
    text: Mapped[str] = mapped_column(Text)
    enrolment_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the post would arrive (the Gateway said about 7 days); informational.
    arrives_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_letters_user", "user_id"),)


class CitizenCertificate(Base):
    """A certificate registered to a citizen, by SHA-256 fingerprint of its DER."""

    __tablename__ = "citizen_certificates"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("citizens.user_id", ondelete="CASCADE"))
    serial: Mapped[str] = mapped_column(String(64))  # hex
    subject: Mapped[str] = mapped_column(String(512))
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_citizen_certificates_user", "user_id"),)


class SeenSignature(Base):
    """Replay store for signed envelopes: digests of signature values and signed content."""

    __tablename__ = "seen_signatures"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
