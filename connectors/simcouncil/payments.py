"""Card payments taken by the hub, recorded against the council's accounts (PaymentReceiver).

Kept in the council's own store: a row in `payments` (so View Council Tax shows it and the
balance falls) and a row in `hub_payments` keyed by the hub's payment id, written in the same
transaction, so a redelivered notification changes nothing.
"""

from __future__ import annotations

import sqlite3

from connectors.protocol import PaymentNotification
from connectors.simcouncil.dates import council_today
from connectors.simcouncil.store import CouncilStore, _transaction

_DDL = """CREATE TABLE IF NOT EXISTS hub_payments (
    payment_id TEXT PRIMARY KEY,
    account_ref TEXT NOT NULL REFERENCES accounts,
    seq INTEGER NOT NULL,
    amount_pence INTEGER NOT NULL,
    paid_at TEXT NOT NULL)"""


class UnknownAccount(LookupError):
    """The payment names an account this council does not hold."""


async def record(store: CouncilStore, notification: PaymentNotification) -> bool:
    """Apply the payment once; True when this call recorded it, False when it was already."""
    return await store._run(lambda conn: _record(conn, notification))


def _record(conn: sqlite3.Connection, n: PaymentNotification) -> bool:
    conn.execute(_DDL)
    ref = n.reference.strip().upper()
    with _transaction(conn):
        if conn.execute(
            "SELECT 1 FROM hub_payments WHERE payment_id = ?", (n.payment_id,)
        ).fetchone():
            return False
        if not conn.execute("SELECT 1 FROM accounts WHERE account_ref = ?", (ref,)).fetchone():
            raise UnknownAccount(f"no Council Tax account {ref}")
        (seq,) = conn.execute(
            "SELECT COALESCE(MAX(seq), -1) + 1 FROM payments WHERE account_ref = ?", (ref,)
        ).fetchone()
        conn.execute(
            "INSERT INTO payments VALUES (?, ?, ?, ?)",
            (ref, seq, council_today(n.paid_at).isoformat(), n.amount_pence),
        )
        conn.execute(
            "INSERT INTO hub_payments VALUES (?, ?, ?, ?, ?)",
            (n.payment_id, ref, seq, n.amount_pence, n.paid_at.isoformat()),
        )
    return True
