"""Tables of the payment service (they share the hub's declarative Base and migrations).

Card numbers and CVCs are never stored: only the brand and the last four digits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, UTCDateTime

# Connector notification states of a successful payment.
NOTIFY_NONE = "none"  # nothing to tell (not a success, or no receiving connector)
NOTIFY_PENDING = "pending"  # to be told; retried until the connector accepts it
NOTIFY_DONE = "done"
# Given up after [payments] notify_give_up_hours of failures; the council can ask for it again.
NOTIFY_FAILED = "failed"

# Webhook delivery states.
DELIVERY_PENDING = "pending"
DELIVERY_DELIVERED = "delivered"
DELIVERY_FAILED = "failed"  # every scheduled retry was used


class CouncilNotice:
    """Telling the council's connector about a payment's success or a refund (PaymentReceiver,
    RefundReceiver): pending until it accepts, retried, given up on after a while."""

    notify_state: Mapped[str] = mapped_column(String(10), default=NOTIFY_NONE)
    notify_connector: Mapped[str | None] = mapped_column(String(64))
    notify_attempts: Mapped[int] = mapped_column(Integer, default=0)
    notify_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notify_error: Mapped[str | None] = mapped_column(Text)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PaymentRow(CouncilNotice, Base):
    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    caller: Mapped[str] = mapped_column(String(80))
    organisation: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(255))
    amount_pence: Mapped[int] = mapped_column(Integer)
    return_url: Mapped[str] = mapped_column(String(2000))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failure_code: Mapped[str | None] = mapped_column(String(32))
    failure_message: Mapped[str | None] = mapped_column(String(255))
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    cardholder_name: Mapped[str | None] = mapped_column(String(255))
    refunded_pence: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index("ix_payments_state_created", "state", "created_at"),
        Index("ix_payments_org_finished", "organisation", "finished_at"),
        Index("ix_payments_notify", "notify_state", "notify_next_at"),
    )


class IdempotencyKeyRow(Base):
    """An Idempotency-Key a caller used: the body's digest and the payment it created."""

    __tablename__ = "payment_idempotency_keys"

    caller: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    body_sha256: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class RefundRow(CouncilNotice, Base):
    __tablename__ = "payment_refunds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    amount_pence: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    caller: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_payment_refunds_payment", "payment_id"),
        Index("ix_payment_refunds_created", "created_at"),
        Index("ix_payment_refunds_notify", "notify_state", "notify_next_at"),
    )


class WebhookDeliveryRow(Base):
    """One event to one configured URL; delivered at least once, every attempt recorded."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(2000))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(10), default=DELIVERY_PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)


class WebhookAttemptRow(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id"),)
