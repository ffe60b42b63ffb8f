"""The council's own store: one SQLite file per council, seeded once, each write applied once."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from connectors.protocol import BusinessError, Response
from connectors.simcouncil.councils import CouncilInfo
from connectors.simcouncil.dataset import generate
from connectors.simcouncil.model import (
    Address,
    Discount,
    Instalment,
    Payment,
    Person,
    Property,
    SpdApplication,
)
from connectors.simcouncil.service import StatusChange
from gateway.govtalk.errors import ErrorType, GovTalkError
from gateway.store.group_commit import GroupCommit

T = TypeVar("T")

SCHEMA_VERSION = "1"

_DDL = (
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS accounts (
        account_ref TEXT PRIMARY KEY,
        uprn TEXT NOT NULL UNIQUE,
        saon TEXT, paon TEXT NOT NULL, street TEXT NOT NULL, locality TEXT,
        town TEXT NOT NULL, postcode TEXT NOT NULL,
        band TEXT NOT NULL CHECK (band IN ('A','B','C','D','E','F','G','H')),
        annual_charge_pence INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS liable_persons (
        account_ref TEXT NOT NULL REFERENCES accounts, position INTEGER NOT NULL,
        forename TEXT NOT NULL, surname TEXT NOT NULL,
        PRIMARY KEY (account_ref, position))""",
    """CREATE TABLE IF NOT EXISTS discounts (
        account_ref TEXT NOT NULL REFERENCES accounts, kind TEXT NOT NULL,
        percent INTEGER NOT NULL, effective_from TEXT NOT NULL, amount_pence INTEGER NOT NULL,
        PRIMARY KEY (account_ref, kind))""",
    """CREATE TABLE IF NOT EXISTS instalments (
        account_ref TEXT NOT NULL REFERENCES accounts, number INTEGER NOT NULL,
        due_date TEXT NOT NULL, amount_pence INTEGER NOT NULL,
        PRIMARY KEY (account_ref, number))""",
    """CREATE TABLE IF NOT EXISTS payments (
        account_ref TEXT NOT NULL REFERENCES accounts, seq INTEGER NOT NULL,
        paid_on TEXT NOT NULL, amount_pence INTEGER NOT NULL,
        PRIMARY KEY (account_ref, seq))""",
    """CREATE TABLE IF NOT EXISTS spd_applications (
        reference TEXT PRIMARY KEY,
        account_ref TEXT NOT NULL REFERENCES accounts,
        forename TEXT NOT NULL, surname TEXT NOT NULL,
        effective_from TEXT NOT NULL,
        discount_pence INTEGER NOT NULL, new_net_charge_pence INTEGER NOT NULL,
        correlation_id TEXT NOT NULL UNIQUE,
        gateway_test INTEGER NOT NULL,
        applied_at TEXT NOT NULL)""",
    # One row per transaction answered: the idempotency record, written in the same SQLite
    # transaction as any change it made, so a redelivery finds either both or neither.
    """CREATE TABLE IF NOT EXISTS applied (
        correlation_id TEXT PRIMARY KEY,
        class TEXT NOT NULL,
        body_sha256 TEXT NOT NULL,
        gateway_test INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('response', 'business')),
        payload BLOB NOT NULL,
        applied_at TEXT NOT NULL)""",
    # Accounts closed by a move out (LA-CTAX-CLOSE); a reopen (LA-CTAX-REOPEN) deletes the row.
    """CREATE TABLE IF NOT EXISTS account_status (
        account_ref TEXT PRIMARY KEY REFERENCES accounts,
        closed_from TEXT NOT NULL)""",
    # Accounts opened during the year by a move in (LA-CTAX-OPEN), charged from that day. A table
    # of its own, not a column, so that a store created before it gains it on the next open.
    """CREATE TABLE IF NOT EXISTS account_opened (
        account_ref TEXT PRIMARY KEY REFERENCES accounts,
        opened_from TEXT NOT NULL)""",
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the store keeps about a transaction besides its outcome."""

    correlation_id: str
    class_: str
    body_sha256: str
    gateway_test: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Write:
    """An outcome to record and, for an accepted write, the changes that go with it."""

    outcome: Response | BusinessError
    updated: Property | None = None
    application: SpdApplication | None = None
    status: StatusChange | None = None
    opened: Property | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """The outcome recorded for a correlation id; fresh when this very call applied it."""

    class_: str
    outcome: Response | BusinessError
    body_sha256: str
    gateway_test: bool
    fresh: bool = False


class CouncilStore:
    """One council's accounts, SPD applications and answered transactions in SQLite (WAL)."""

    def __init__(self, path: Path, council: CouncilInfo) -> None:
        self.path = path
        self.council = council
        self._conn: sqlite3.Connection | None = None
        # sqlite3 connections are not safe across threads at once; to_thread may use several.
        self._lock = threading.Lock()
        # Deliveries arriving together share one transaction, so one fsync (synchronous=FULL)
        # makes a whole batch durable instead of each paying its own.
        self._group: GroupCommit[Callable[[sqlite3.Connection], Any]] = GroupCommit(self._commit)

    async def open(self) -> None:
        """Open the file, creating and seeding it from the dataset the first time."""
        await asyncio.to_thread(self._open)

    async def close(self) -> None:
        await self._group.wait_idle()
        await asyncio.to_thread(self._close)

    async def account(self, account_ref: str) -> Property | None:
        return await self._run(lambda c: _load(c, account_ref))

    async def recorded(self, correlation_id: str) -> Recorded | None:
        return await self._run(lambda c: _recorded(c, correlation_id))

    async def account_for_uprn(self, uprn: str) -> str | None:
        """The account held for a property (UPRN), if any."""
        return await self._run(
            lambda c: _scalar(c, "SELECT account_ref FROM accounts WHERE uprn = ?", uprn)
        )

    async def next_account_ref(self) -> str:
        """The reference a newly opened account takes: one above the highest held."""
        prefix = self.council.prefix
        highest = await self._run(
            lambda c: _scalar(
                c, "SELECT MAX(account_ref) FROM accounts WHERE account_ref LIKE ?", f"{prefix}%"
            )
        )
        number = int(highest[len(prefix) :]) + 1 if highest else 1
        return f"{prefix}{number:08d}"

    async def spd_applications(self, account_ref: str | None = None) -> list[SpdApplication]:
        return await self._run(lambda c: _applications(c, account_ref))

    async def apply_once(
        self,
        delivery: Delivery,
        account_ref: str | None,
        decide: Callable[[Property | None, int], Write],
    ) -> Recorded:
        """Decide and record atomically, unless this correlation id was answered before.

        decide gets the account (None when unknown) and the number the next SPD application
        would take; an exception from it rolls everything back.
        """
        recorded = await self._group.run(
            lambda c: self._apply_once(c, delivery, account_ref, decide)
        )
        return cast(Recorded, recorded)

    async def _commit(self, batch: list[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        def run(conn: sqlite3.Connection) -> list[Any]:
            with _transaction(conn):
                return [work(conn) for work in batch]

        return await self._run(run)

    def _open(self) -> None:
        with self._lock:
            if self._conn is not None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                # FULL, because an answer the hub has seen must survive a power cut with it.
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                with _transaction(conn):
                    for statement in _DDL:
                        conn.execute(statement)
                    self._seed_if_empty(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                if self._conn is None:
                    raise RuntimeError(f"the store {self.path} is not open")
                return work(self._conn)

        return await asyncio.to_thread(locked)

    def _seed_if_empty(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'council'").fetchone()
        if row is not None:
            if row[0] != self.council.code:
                raise ValueError(f"{self.path} holds council {row[0]}, not {self.council.code}")
            return
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("council", self.council.code), ("schema_version", SCHEMA_VERSION)],
        )
        for prop in generate(self.council.code):
            _insert_account(conn, prop)

    def _apply_once(
        self,
        conn: sqlite3.Connection,
        delivery: Delivery,
        account_ref: str | None,
        decide: Callable[[Property | None, int], Write],
    ) -> Recorded:
        # Inside the batch's BEGIN IMMEDIATE (`_commit`): the write lock is taken before the
        # lookup, so two deliveries of one transaction (even from two processes) cannot both miss
        # the record and both apply; within a batch the second finds the first's record.
        earlier = _recorded(conn, delivery.correlation_id)
        if earlier is not None:
            return earlier
        account = _load(conn, account_ref) if account_ref else None
        (count,) = conn.execute("SELECT COUNT(*) FROM spd_applications").fetchone()
        write = decide(account, int(count) + 1)
        if write.updated is not None:
            _write_plan(conn, write.updated)
        if write.application is not None:
            _insert_application(conn, write.application)
        if write.status is not None:
            _write_status(conn, write.status)
        if write.opened is not None:
            _insert_account(conn, write.opened)
        kind, payload = _encode(write.outcome)
        conn.execute(
            "INSERT INTO applied VALUES (?, ?, ?, ?, ?, ?, ?)",
            (delivery.correlation_id, delivery.class_, delivery.body_sha256,
             int(delivery.gateway_test), kind, payload, delivery.at.isoformat()),
        )  # fmt: skip
        return Recorded(
            delivery.class_, write.outcome, delivery.body_sha256, delivery.gateway_test, fresh=True
        )


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _insert_account(conn: sqlite3.Connection, prop: Property) -> None:
    """A whole account: the dwelling, its liable people, payments and plan."""
    a = prop.address
    conn.execute(
        "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (prop.account_ref, prop.uprn, a.saon, a.paon, a.street, a.locality, a.town,
         a.postcode, prop.band, prop.annual_charge_pence),
    )  # fmt: skip
    if prop.opened_from is not None:
        conn.execute(
            "INSERT INTO account_opened VALUES (?, ?)",
            (prop.account_ref, prop.opened_from.isoformat()),
        )
    conn.executemany(
        "INSERT INTO liable_persons VALUES (?, ?, ?, ?)",
        [(prop.account_ref, n, p.forename, p.surname) for n, p in enumerate(prop.liable)],
    )
    conn.executemany(
        "INSERT INTO payments VALUES (?, ?, ?, ?)",
        [
            (prop.account_ref, n, p.paid_on.isoformat(), p.amount_pence)
            for n, p in enumerate(prop.payments)
        ],
    )
    _write_plan(conn, prop)


def _write_status(conn: sqlite3.Connection, change: StatusChange) -> None:
    conn.execute("DELETE FROM account_status WHERE account_ref = ?", (change.account_ref,))
    if change.closed_from is not None:
        conn.execute(
            "INSERT INTO account_status VALUES (?, ?)",
            (change.account_ref, change.closed_from.isoformat()),
        )


def _scalar(conn: sqlite3.Connection, sql: str, *params: str) -> Any:
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def _write_plan(conn: sqlite3.Connection, prop: Property) -> None:
    """Replace the account's discounts and instalments (what an SPD, close or reopen changes)."""
    ref = prop.account_ref
    conn.execute("DELETE FROM discounts WHERE account_ref = ?", (ref,))
    conn.execute("DELETE FROM instalments WHERE account_ref = ?", (ref,))
    conn.executemany(
        "INSERT INTO discounts VALUES (?, ?, ?, ?, ?)",
        [
            (ref, d.kind, d.percent, d.effective_from.isoformat(), d.amount_pence)
            for d in prop.discounts
        ],
    )
    conn.executemany(
        "INSERT INTO instalments VALUES (?, ?, ?, ?)",
        [(ref, i.number, i.due_date.isoformat(), i.amount_pence) for i in prop.instalments],
    )


def _load(conn: sqlite3.Connection, ref: str) -> Property | None:
    row = conn.execute(
        "SELECT uprn, saon, paon, street, locality, town, postcode, band, annual_charge_pence"
        " FROM accounts WHERE account_ref = ?",
        (ref,),
    ).fetchone()
    if row is None:
        return None
    uprn, saon, paon, street, locality, town, postcode, band, gross = row

    def rows(sql: str) -> list[Any]:
        return conn.execute(sql, (ref,)).fetchall()

    return Property(
        account_ref=ref,
        uprn=uprn,
        address=Address(paon, street, town, postcode, saon, locality),
        band=band,
        liable=tuple(
            Person(f, s)
            for f, s in rows(
                "SELECT forename, surname FROM liable_persons"
                " WHERE account_ref = ? ORDER BY position"
            )
        ),
        annual_charge_pence=gross,
        discounts=tuple(
            Discount(k, p, date.fromisoformat(e), a)
            for k, p, e, a in rows(
                "SELECT kind, percent, effective_from, amount_pence FROM discounts"
                " WHERE account_ref = ? ORDER BY effective_from, kind"
            )
        ),
        instalments=tuple(
            Instalment(n, date.fromisoformat(d), a)
            for n, d, a in rows(
                "SELECT number, due_date, amount_pence FROM instalments"
                " WHERE account_ref = ? ORDER BY number"
            )
        ),
        payments=tuple(
            Payment(date.fromisoformat(d), a)
            for d, a in rows(
                "SELECT paid_on, amount_pence FROM payments WHERE account_ref = ? ORDER BY seq"
            )
        ),
        closed_from=next(
            (
                date.fromisoformat(c)
                for (c,) in rows("SELECT closed_from FROM account_status WHERE account_ref = ?")
            ),
            None,
        ),
        opened_from=next(
            (
                date.fromisoformat(o)
                for (o,) in rows("SELECT opened_from FROM account_opened WHERE account_ref = ?")
            ),
            None,
        ),
    )


def _insert_application(conn: sqlite3.Connection, app: SpdApplication) -> None:
    conn.execute(
        "INSERT INTO spd_applications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (app.reference, app.account_ref, app.applicant.forename, app.applicant.surname,
         app.effective_from.isoformat(), app.discount_pence, app.new_net_charge_pence,
         app.correlation_id, int(app.gateway_test), app.applied_at.isoformat()),
    )  # fmt: skip


def _applications(conn: sqlite3.Connection, account_ref: str | None) -> list[SpdApplication]:
    sql = "SELECT * FROM spd_applications"
    params: tuple[str, ...] = ()
    if account_ref is not None:
        sql += " WHERE account_ref = ?"
        params = (account_ref,)
    return [
        SpdApplication(
            reference=r,
            account_ref=a,
            applicant=Person(f, s),
            effective_from=date.fromisoformat(e),
            discount_pence=d,
            new_net_charge_pence=n,
            correlation_id=c,
            gateway_test=bool(g),
            applied_at=datetime.fromisoformat(t),
        )
        for r, a, f, s, e, d, n, c, g, t in conn.execute(sql + " ORDER BY reference", params)
    ]


def _recorded(conn: sqlite3.Connection, correlation_id: str) -> Recorded | None:
    row = conn.execute(
        "SELECT class, body_sha256, gateway_test, kind, payload FROM applied"
        " WHERE correlation_id = ?",
        (correlation_id,),
    ).fetchone()
    if row is None:
        return None
    class_, digest, gateway_test, kind, payload = row
    return Recorded(class_, _decode(kind, bytes(payload)), digest, bool(gateway_test))


def _encode(outcome: Response | BusinessError) -> tuple[str, bytes]:
    if isinstance(outcome, Response):
        return "response", outcome.body
    errors = [
        {
            "number": e.number,
            "text": e.text,
            "raised_by": e.raised_by,
            "type": e.type,
            "locations": list(e.locations),
        }
        for e in outcome.errors
    ]
    document = {"application": outcome.application, "errors": errors}
    return "business", json.dumps(document).encode("utf-8")


def _decode(kind: str, payload: bytes) -> Response | BusinessError:
    if kind == "response":
        return Response(payload)
    document = json.loads(payload)
    # Rebuilt field by field, not from the catalogue, so the answer is exactly the one first given.
    errors = tuple(
        GovTalkError(
            e["number"],
            e["text"],
            e["raised_by"],
            cast(ErrorType, e["type"]),
            tuple(e["locations"]),
        )
        for e in document["errors"]
    )
    return BusinessError(errors, document["application"])
