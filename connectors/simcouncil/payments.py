"""Card payments taken by the hub, and their refunds, recorded against the council's accounts
(PaymentReceiver, RefundReceiver).

Kept in the council's own store: a row in `payments` (so View Council Tax shows it and the
balance falls; a refund is a negative payment, and the balance rises again) and a row in
`hub_payments` or `hub_refunds` keyed by the hub's id, written in the same transaction, so a
redelivered notification changes nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime

from connectors.protocol import PaymentNotification, RefundNotification
from connectors.simcouncil.dates import council_today
from connectors.simcouncil.store import CouncilStore, _transaction

_DDL = """CREATE TABLE IF NOT EXISTS hub_payments (
    payment_id TEXT PRIMARY KEY,
    account_ref TEXT NOT NULL REFERENCES accounts,
    seq INTEGER NOT NULL,
    amount_pence INTEGER NOT NULL,
    paid_at TEXT NOT NULL)"""
_REFUNDS_DDL = """CREATE TABLE IF NOT EXISTS hub_refunds (
    refund_id TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    account_ref TEXT NOT NULL REFERENCES accounts,
    seq INTEGER NOT NULL,
    amount_pence INTEGER NOT NULL,
    refunded_at TEXT NOT NULL)"""


class UnknownAccount(LookupError):
    """The payment names an account this council does not hold."""


async def record(store: CouncilStore, notification: PaymentNotification) -> bool:
    """Apply the payment once; True when this call recorded it, False when it was already."""
    return await store._run(lambda conn: _record(conn, notification))


def _record(conn: sqlite3.Connection, n: PaymentNotification) -> bool:
    return _book(
        conn,
        _DDL,
        ("SELECT 1 FROM hub_payments WHERE payment_id = ?", n.payment_id),
        n.reference,
        n.paid_at,
        n.amount_pence,
        lambda ref, seq: (
            "INSERT INTO hub_payments VALUES (?, ?, ?, ?, ?)",
            (n.payment_id, ref, seq, n.amount_pence, n.paid_at.isoformat()),
        ),
    )


async def record_refund(store: CouncilStore, notification: RefundNotification) -> bool:
    """Apply the refund once; True when this call recorded it, False when it was already."""
    return await store._run(lambda conn: _record_refund(conn, notification))


def _record_refund(conn: sqlite3.Connection, n: RefundNotification) -> bool:
    return _book(
        conn,
        _REFUNDS_DDL,
        ("SELECT 1 FROM hub_refunds WHERE refund_id = ?", n.refund_id),
        n.reference,
        n.refunded_at,
        -n.amount_pence,  # money back: the balance rises
        lambda ref, seq: (
            "INSERT INTO hub_refunds VALUES (?, ?, ?, ?, ?, ?)",
            (n.refund_id, n.payment_id, ref, seq, n.amount_pence, n.refunded_at.isoformat()),
        ),
    )


def _book(
    conn: sqlite3.Connection,
    ddl: str,
    seen: tuple[str, str],
    reference: str,
    when: datetime,
    amount_pence: int,
    hub_row: Callable[[str, int], tuple[str, tuple[object, ...]]],
) -> bool:
    """A line in the account's payments and the hub's id beside it, in one transaction, unless
    the id was booked before (False)."""
    conn.execute(ddl)
    ref = reference.strip().upper()
    with _transaction(conn):
        if conn.execute(seen[0], (seen[1],)).fetchone():
            return False
        if not conn.execute("SELECT 1 FROM accounts WHERE account_ref = ?", (ref,)).fetchone():
            raise UnknownAccount(f"no Council Tax account {ref}")
        (seq,) = conn.execute(
            "SELECT COALESCE(MAX(seq), -1) + 1 FROM payments WHERE account_ref = ?", (ref,)
        ).fetchone()
        conn.execute(
            "INSERT INTO payments VALUES (?, ?, ?, ?)",
            (ref, seq, council_today(when).isoformat(), amount_pence),
        )
        conn.execute(*hub_row(ref, int(seq)))
    return True
