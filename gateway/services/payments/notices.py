"""Telling the council's connector about a payment's success or a refund (PaymentReceiver,
RefundReceiver): what each kind of notice is, and how an attempt's outcome is recorded.

A notice is pending from the transaction that makes it due, tried at once, then retried by the
background pass with backoff until the connector accepts it; after [payments]
notify_give_up_hours it is given up on (failed, audited), and the council can ask again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from connectors.protocol import PaymentReceiver, RefundReceiver
from gateway.store.payment_models import (
    NOTIFY_DONE,
    NOTIFY_FAILED,
    CouncilNotice,
    PaymentRow,
    RefundRow,
)

BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class NoticeKind:
    """Payments and refunds: the row that carries the notice, and what the connector needs."""

    name: str  # the audit detail's key for the row's id
    model: type[PaymentRow] | type[RefundRow]
    capability: type[PaymentReceiver] | type[RefundReceiver]
    events: str  # audit and log events are this, then _given_up, _requested, _failed


PAYMENT = NoticeKind("payment", PaymentRow, PaymentReceiver, "payments.notify")
REFUND = NoticeKind("refund", RefundRow, RefundReceiver, "payments.refund_notify")


def settle(
    row: CouncilNotice, error: str | None, now: datetime, since: datetime, give_up: timedelta
) -> bool:
    """Record one attempt on a pending notice; True when this failure is the one given up on."""
    row.notify_attempts += 1
    row.notify_error = error
    if error is None:
        row.notify_state, row.notified_at, row.notify_next_at = NOTIFY_DONE, now, None
        return False
    if now - since >= give_up:
        row.notify_state, row.notify_next_at = NOTIFY_FAILED, None
        return True
    delay = BACKOFF_FIRST * 2 ** min(row.notify_attempts - 1, 12)
    row.notify_next_at = now + min(delay, BACKOFF_CAP)
    return False


def notice_json(row: CouncilNotice) -> dict[str, object]:
    """The notice as the API shows it: pending (being retried), done, or failed (given up on)."""
    return {
        "state": row.notify_state,
        "attempts": row.notify_attempts,
        "last_error": row.notify_error,
    }
