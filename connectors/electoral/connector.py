"""The simulated electoral registration service as a hub connector (class ER-NOTIFY-MOVE).

Options:
    organisation   the service's organisation code (e.g. "ER-E08000024"), used in references
    unavailable    true: every delivery fails permanently (the service is down)
    fail_first_n   the first n deliveries fail permanently (counted in the store, across restarts)
    delay_seconds  answer only after this long (a slow service)

Its own SQLite store under the data directory keeps one row per notification, keyed by
correlation id: a redelivery gets the first answer again. Test in live (-TIL) runs the same checks
and answers with the reference the notification would take, recording and counting nothing.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lxml import etree

from connectors.protocol import (
    API_VERSION,
    BusinessError,
    ConnectorContext,
    Failed,
    Outcome,
    Response,
    Transaction,
)
from connectors.sdk import (
    BodyError,
    load_schema,
    optional_bool,
    optional_float,
    parse_body,
    schema_errors,
)
from gateway.govtalk.errors import GovTalkError

T = TypeVar("T")

CLASS = "ER-NOTIFY-MOVE"
TIL_SUFFIX = "-TIL"
TIL_STATUS = "checked-not-processed"
TIL_ADVISORY = "Test in live: checked, not processed"
NS = "urn:govtalk-hub:er:notify-move:v1"
SCHEMAS = Path(__file__).parent / "schemas"
APPLICATION = "Electoral registration (simulated service)"

_DDL = (
    """CREATE TABLE IF NOT EXISTS notifications (
        correlation_id TEXT PRIMARY KEY, reference TEXT NOT NULL UNIQUE,
        forename TEXT NOT NULL, surname TEXT NOT NULL, new_postcode TEXT NOT NULL,
        body BLOB NOT NULL, received_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS faults (id INTEGER PRIMARY KEY CHECK (id = 1),
        failed INTEGER NOT NULL)""",
)


def build_request(
    forename: str,
    surname: str,
    old_address: tuple[list[str], str],
    new_address: tuple[list[str], str],
    move_date: str,
) -> bytes:
    nsmap: dict[str | None, str] = {None: NS}
    root = etree.Element(f"{{{NS}}}ERNotifyMoveRequest", nsmap=nsmap)  # type: ignore[arg-type]

    def add(parent: etree._Element, name: str, value: str | None = None) -> etree._Element:
        el = etree.SubElement(parent, f"{{{NS}}}{name}")
        el.text = value
        return el

    name = add(root, "Name")
    add(name, "Forename", forename)
    add(name, "Surname", surname)
    for tag, (lines, postcode) in (("OldAddress", old_address), ("NewAddress", new_address)):
        address = add(root, tag)
        for line in lines[:6]:
            add(address, "Line", line)
        add(address, "PostCode", postcode)
    add(root, "MoveDate", move_date)
    return etree.tostring(root, encoding="UTF-8")


class ElectoralRegistrationConnector:
    name = "electoral-registration"
    api_version = API_VERSION

    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        self.organisation = str(ctx.options.get("organisation") or "ER")
        self.unavailable = optional_bool(ctx.options, "unavailable", False)
        fail_first_n = ctx.options.get("fail_first_n", 0)
        if isinstance(fail_first_n, bool) or not isinstance(fail_first_n, int) or fail_first_n < 0:
            raise ValueError("option 'fail_first_n' must be a whole number >= 0")
        self.fail_first_n = fail_first_n
        self.delay_seconds = optional_float(ctx.options, "delay_seconds", 0.0)
        self.path = ctx.data_dir / "electoral.sqlite"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._request = load_schema(SCHEMAS / "er-notify-move-request-v1.xsd")
        self._response = load_schema(SCHEMAS / "er-notify-move-response-v1.xsd")

    async def start(self) -> None:
        await asyncio.to_thread(self._open)

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(close)

    def _open(self) -> None:
        with self._lock:
            if self._conn is not None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            for statement in _DDL:
                conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO faults VALUES (1, 0)")
            self._conn = conn

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                if self._conn is None:
                    raise RuntimeError(f"the store {self.path} is not open")
                return work(self._conn)

        return await asyncio.to_thread(locked)

    async def notifications(self) -> list[tuple[str, str, str]]:
        """(correlation id, reference, new postcode) of every notification, oldest first."""
        await self.start()
        return await self._run(
            lambda c: c.execute(
                "SELECT correlation_id, reference, new_postcode FROM notifications ORDER BY rowid"
            ).fetchall()
        )

    async def handle(self, tx: Transaction, ctx: ConnectorContext) -> Outcome:
        # The flag, or a -TIL suffix left on the class (as the simulated council accepts too).
        test_in_live = tx.test_in_live or tx.class_.endswith(TIL_SUFFIX)
        base = tx.class_.removesuffix(TIL_SUFFIX)
        if base != CLASS:
            return Failed(
                f"class {tx.class_} is not served by {self.organisation} (serves {CLASS})"
            )
        await self.start()
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if not test_in_live:
            earlier = await self._run(
                lambda c: c.execute(
                    "SELECT reference, received_at FROM notifications WHERE correlation_id = ?",
                    (tx.correlation_id,),
                ).fetchone()
            )
            if earlier is not None:
                return Response(self._reply(*earlier))
        if self.unavailable:
            return Failed(f"{self.organisation} is unavailable (simulated)")
        # A simulated fault is a delivery the service failed: test in live must not use one up.
        if not test_in_live and self.fail_first_n and await self._run(self._count_failure):
            return Failed(f"{self.organisation} is unavailable (simulated fault)")
        try:
            root = parse_body(tx.body)
        except BodyError as exc:
            return BusinessError((GovTalkError.of(4000, str(exc), locations=("/",)),), APPLICATION)
        errors = schema_errors(self._request, root, number=4001)
        if errors:
            return BusinessError(errors, APPLICATION)

        def text(path: str) -> str:
            return str(root.xpath(f"string({path})", namespaces={"e": NS})).strip()

        received_at = ctx.clock().replace(microsecond=0).isoformat().replace("+00:00", "")
        if test_in_live:
            # Every check a live notification gets, but nothing is written: the reference is the
            # one a live notification would take now, not reserved.
            (count,) = await self._run(
                lambda c: c.execute("SELECT COUNT(*) FROM notifications").fetchone()
            )
            reference = f"{self.organisation}-{count + 1:06d}"
            return Response(self._reply(reference, received_at, test_in_live=True))

        def record(c: sqlite3.Connection) -> tuple[str, str]:
            c.execute("BEGIN IMMEDIATE")
            try:
                row = c.execute(
                    "SELECT reference, received_at FROM notifications WHERE correlation_id = ?",
                    (tx.correlation_id,),
                ).fetchone()
                if row is None:
                    (count,) = c.execute("SELECT COUNT(*) FROM notifications").fetchone()
                    reference = f"{self.organisation}-{count + 1:06d}"
                    c.execute(
                        "INSERT INTO notifications VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (tx.correlation_id, reference, text("e:Name/e:Forename"),
                         text("e:Name/e:Surname"), text("e:NewAddress/e:PostCode"), tx.body,
                         received_at),
                    )  # fmt: skip
                    row = (reference, received_at)
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
            return row[0], row[1]

        return Response(self._reply(*await self._run(record)))

    def _count_failure(self, c: sqlite3.Connection) -> bool:
        """True (and counted) while fewer than fail_first_n deliveries have failed."""
        c.execute("BEGIN IMMEDIATE")
        (failed,) = c.execute("SELECT failed FROM faults WHERE id = 1").fetchone()
        fail = failed < self.fail_first_n
        if fail:
            c.execute("UPDATE faults SET failed = failed + 1 WHERE id = 1")
        c.execute("COMMIT")
        return bool(fail)

    def _reply(self, reference: str, received_at: str, *, test_in_live: bool = False) -> bytes:
        nsmap: dict[str | None, str] = {None: NS}
        root = etree.Element(f"{{{NS}}}ERNotifyMoveResponse", nsmap=nsmap)  # type: ignore[arg-type]
        fields = [
            ("Reference", reference),
            ("Organisation", self.organisation),
            ("ReceivedAt", received_at),
        ]
        if test_in_live:
            fields += [("Status", TIL_STATUS), ("Advisory", TIL_ADVISORY)]
        for name, value in fields:
            etree.SubElement(root, f"{{{NS}}}{name}").text = value
        self._response.assertValid(root)
        return etree.tostring(root, encoding="UTF-8")
