"""A council's reconciliation report: successful payments and refunds in a date range, as CSV.

Dates are UTC calendar days, both ends included: a payment counts on the day it succeeded, a
refund on the day it was made. Amounts are in pence and in pounds; refunds are negative.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select

from gateway.services.payments.lifecycle import SUCCESS
from gateway.services.payments.service import PaymentError
from gateway.store.engine import Database
from gateway.store.payment_models import PaymentRow, RefundRow

COLUMNS = (
    "type", "id", "payment_id", "date", "council", "reference", "description",
    "amount_pence", "amount", "card_brand", "card_last4", "state",
)  # fmt: skip


def _pounds(pence: int) -> str:
    sign = "-" if pence < 0 else ""
    whole, frac = divmod(abs(pence), 100)
    return f"{sign}{whole}.{frac:02d}"


async def report(db: Database, council: str, start: date, end: date) -> str:
    """The CSV for UTC days start to end, both included."""
    if end >= date.max:
        # The report runs to the midnight after `end`, which the last day has none of.
        raise PaymentError(
            400, "Bad Request", f"'to' must be before {date.max.isoformat()}", field="to"
        )
    low = datetime.combine(start, time(), UTC)
    high = datetime.combine(end + timedelta(days=1), time(), UTC)
    async with db.read() as session:
        payments = (
            await session.scalars(
                select(PaymentRow).where(
                    PaymentRow.organisation == council,
                    PaymentRow.state == SUCCESS,
                    PaymentRow.finished_at >= low,
                    PaymentRow.finished_at < high,
                )
            )
        ).all()
        refunds = (
            await session.execute(
                select(RefundRow, PaymentRow)
                .join(PaymentRow, PaymentRow.id == RefundRow.payment_id)
                .where(
                    PaymentRow.organisation == council,
                    RefundRow.created_at >= low,
                    RefundRow.created_at < high,
                )
            )
        ).all()
    rows: list[tuple[datetime, list[str]]] = []
    for p in payments:
        assert p.finished_at is not None
        rows.append(
            (
                p.finished_at,
                ["payment", p.id, p.id, p.finished_at.isoformat(), p.organisation, p.reference,
                 p.description, str(p.amount_pence), _pounds(p.amount_pence),
                 p.card_brand or "", p.card_last4 or "", p.state],
            )
        )  # fmt: skip
    for r, p in refunds:
        rows.append(
            (
                r.created_at,
                ["refund", r.id, p.id, r.created_at.isoformat(), p.organisation, p.reference,
                 p.description, str(-r.amount_pence), _pounds(-r.amount_pence),
                 p.card_brand or "", p.card_last4 or "", r.state],
            )
        )  # fmt: skip
    rows.sort(key=lambda item: (item[0], item[1][0], item[1][1]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(row for _, row in rows)
    return out.getvalue()
