"""Console: the audit chain's verification status, its checkpoints, counts and recent records.

Verifying means hashing every record, so it is not done per page view: a verification runs in
the background (records read in batches by seq, hashed in a worker thread, so memory stays
bounded and the event loop free) and its result is kept — "verified up to record N at time T".
A page view starts a new one when the kept result is older than `max_age`; "Verify now" starts
one at once. Only a broken chain is read whole, by the same verifier as `gateway audit verify`,
so the console names the first bad record exactly as the command does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from sqlalchemy import func, select

from gateway.audit.chain import GENESIS, record_hash
from gateway.audit.export import checkpoint_check, verify_chain
from gateway.audit.log import read_chain
from gateway.console.paging import PAGE_SIZE, Page, cut, offset, page_number
from gateway.store.audit_models import AuditCheckpoint, AuditHead, AuditRecord
from gateway.store.engine import Database

BATCH = 1_000  # rows per read: small, so each turn of the event loop it takes stays short
MAX_AGE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """One verification's result."""

    ok: bool
    problem: str
    first_bad_seq: int | None
    records: int  # records verified
    upto_seq: int  # the last record verified
    checkpoints: int  # signed checkpoints checked
    events: tuple[tuple[str, int], ...]  # records per event, most frequent first
    verified_at: datetime
    seconds: float  # how long it took


@dataclass(frozen=True, slots=True)
class CheckpointLine:
    seq: int
    at: datetime
    hash: str
    signer: str  # the signing certificate's subject
    signature: str  # "valid", or why not


@dataclass(frozen=True, slots=True)
class RecordLine:
    seq: int
    at: datetime
    event: str
    outcome: str
    actor: str | None
    correlation_id: str | None
    detail: str  # compact JSON
    body_digest: str | None


@dataclass(frozen=True, slots=True)
class TrailSummary:
    head_seq: int  # records in the chain (the head's seq)
    checkpoints: int
    latest_checkpoint: CheckpointLine | None


@dataclass(slots=True)
class _Walk:
    """Where a streaming verification has got to."""

    prev: str = GENESIS
    expected_seq: int = 1
    broken: bool = False
    events: Counter[str] = field(default_factory=Counter)
    hashes_at: dict[int, str] = field(default_factory=dict)  # at checkpointed seqs only


RECORD_COLUMNS = (
    AuditRecord.seq,
    AuditRecord.at,
    AuditRecord.event,
    AuditRecord.outcome,
    AuditRecord.actor,
    AuditRecord.correlation_id,
    AuditRecord.detail,
    AuditRecord.body_digest,
    AuditRecord.prev_hash,
    AuditRecord.hash,
)


def _walk_rows(walk: _Walk, rows: Sequence[Any], pinned: set[int]) -> None:
    """Check one batch's links and hashes (pure CPU: run in a thread)."""
    for row in rows:
        record = row._asdict()
        record["at"] = row.at.isoformat()
        seq = int(record["seq"])
        if (
            seq != walk.expected_seq
            or record.get("prev_hash") != walk.prev
            or record_hash(record, walk.prev) != record.get("hash")
        ):
            walk.broken = True
            return
        walk.events[str(record["event"])] += 1
        walk.prev = str(record["hash"])
        if seq in pinned:
            walk.hashes_at[seq] = walk.prev
        walk.expected_seq = seq + 1


def _checkpoint_fields(row: AuditCheckpoint) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "hash": row.hash,
        "at": row.at.isoformat(),
        "signature": row.signature,
        "certificate_pem": row.certificate_pem,
    }


async def verify_trail(
    db: Database, root_pem: str | None, *, clock: Callable[[], datetime]
) -> ChainStatus:
    """Verify every record and checkpoint, streaming; on a break, name it as the CLI does."""
    started = time.monotonic()
    # Checkpoints first: records are append-only, so every checkpoint read now must find its
    # record below, however many records are appended while the walk goes on.
    async with db.read() as session:
        checkpoints = [
            _checkpoint_fields(c)
            for c in await session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))
        ]
    pinned = {int(c["seq"]) for c in checkpoints}
    walk = _Walk()
    last = 0
    while not walk.broken:
        # Core rows, not ORM objects: building those was most of the time, on the event loop.
        async with db.read() as session:
            rows = (
                await session.execute(
                    select(*RECORD_COLUMNS)
                    .where(AuditRecord.seq > last)
                    .order_by(AuditRecord.seq)
                    .limit(BATCH)
                )
            ).all()
        if not rows:
            break
        await asyncio.to_thread(_walk_rows, walk, rows, pinned)
        last = rows[-1].seq
    check = checkpoint_check(root_pem)
    problem: str | None = None
    if not walk.broken:
        upto = walk.expected_seq - 1
        for checkpoint in checkpoints:
            seq = int(checkpoint["seq"])
            if seq > upto or walk.hashes_at.get(seq) != checkpoint["hash"]:
                walk.broken = True
                break
            problem = await asyncio.to_thread(check, checkpoint)
            if problem is not None:
                walk.broken = True
                break
    if walk.broken:
        # The exact diagnosis, worded as `gateway audit verify` words it.
        records, checkpoints = await read_chain(db)
        verdict = await asyncio.to_thread(verify_chain, records, checkpoints, root_pem)
        if not verdict.ok:
            return ChainStatus(
                ok=False,
                problem=verdict.problem,
                first_bad_seq=verdict.first_bad_seq,
                records=verdict.records,
                upto_seq=(verdict.first_bad_seq or 1) - 1,
                checkpoints=verdict.checkpoints,
                events=tuple(Counter(str(r["event"]) for r in records).most_common()),
                verified_at=clock(),
                seconds=time.monotonic() - started,
            )
        # Appended to while we walked, or mended meanwhile: the whole-chain verdict stands.
        walk = _Walk(events=Counter(str(r["event"]) for r in records))
        walk.expected_seq = len(records) + 1
    return ChainStatus(
        ok=True,
        problem="",
        first_bad_seq=None,
        records=walk.expected_seq - 1,
        upto_seq=walk.expected_seq - 1,
        checkpoints=len(checkpoints),
        events=tuple(walk.events.most_common()),
        verified_at=clock(),
        seconds=time.monotonic() - started,
    )


class ChainVerifier:
    """Keeps the latest verification and runs at most one at a time."""

    def __init__(
        self,
        db: Database,
        root_pem: Callable[[], str | None],
        clock: Callable[[], datetime],
        *,
        max_age: float = MAX_AGE_SECONDS,
    ) -> None:
        self._db = db
        self._root_pem = root_pem
        self._clock = clock
        self._max_age = max_age
        self.latest: ChainStatus | None = None
        self.failure: str | None = None  # the last run's error, if it could not finish
        self._finished_at = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[None]:
        """Begin a verification unless one is running; the running one's task."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="console-audit-verify")
        return self._task

    async def _run(self) -> None:
        try:
            root = await asyncio.to_thread(self._root_pem)
            self.latest = await verify_trail(self._db, root, clock=self._clock)
            self.failure = None
        except Exception as exc:  # shown on the page; the next view tries again
            self.failure = f"{type(exc).__name__}: {exc}"
        self._finished_at = time.monotonic()

    async def status(self, *, wait: float = 2.0, force: bool = False) -> ChainStatus | None:
        """The latest result, starting a fresh run if it is stale; waits up to `wait` for one."""
        stale = self.latest is None or time.monotonic() - self._finished_at > self._max_age
        if force or stale:
            task = self.start()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), wait)
        return self.latest

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def root_certificate(pki_dir: Path) -> str | None:
    """The hub's root certificate, which checkpoint signers must chain to (blocking: a thread)."""
    from gateway.pki.ca import Pki
    from gateway.pki.errors import PkiError

    try:
        return Pki.load(pki_dir).root_path.read_text(encoding="ascii")
    except (PkiError, OSError):
        return None


async def trail_summary(db: Database, root_pem: str | None) -> TrailSummary:
    """The head, the checkpoint count and the latest checkpoint with its signature checked."""
    async with db.read() as session:
        head = await session.get(AuditHead, 1)
        count = int(await session.scalar(select(func.count()).select_from(AuditCheckpoint)) or 0)
        latest = await session.scalar(
            select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1)
        )
    line = None
    if latest is not None:
        fields = _checkpoint_fields(latest)
        problem = await asyncio.to_thread(checkpoint_check(root_pem), fields)
        line = CheckpointLine(
            seq=latest.seq,
            at=latest.at,
            hash=latest.hash,
            signer=_subject(latest.certificate_pem),
            signature="valid" if problem is None else problem,
        )
    return TrailSummary(head.seq if head is not None else 0, count, line)


def _subject(pem: str) -> str:
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii")).subject.rfc4514_string()
    except ValueError:
        return "(unreadable certificate)"


async def recent_records(
    db: Database, number: int = 1, *, event: str | None = None, outcome: str | None = None
) -> Page[RecordLine]:
    """Records newest first, optionally of one event (and outcome)."""
    stmt = select(AuditRecord).order_by(AuditRecord.seq.desc())
    if event:
        stmt = stmt.where(AuditRecord.event == event)
    if outcome:
        stmt = stmt.where(AuditRecord.outcome == outcome)
    async with db.read() as session:
        rows = list(await session.scalars(stmt.offset(offset(number)).limit(PAGE_SIZE + 1)))
    return cut(
        [
            RecordLine(
                seq=r.seq,
                at=r.at,
                event=r.event,
                outcome=r.outcome,
                actor=r.actor,
                correlation_id=r.correlation_id,
                detail=json.dumps(r.detail, sort_keys=True, ensure_ascii=False),
                body_digest=r.body_digest,
            )
            for r in rows
        ],
        number,
    )


# --- HTTP ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Holder:
    """The app's verifier, made on first use (the database exists only once the hub starts)."""

    verifier: ChainVerifier | None = None


_VERIFIER: web.AppKey[_Holder] = web.AppKey("console_audit_verifier", _Holder)


def add_routes(app: web.Application) -> None:
    app[_VERIFIER] = _Holder()
    app.on_shutdown.append(_stop)
    app.router.add_get("/console/audit", audit_page)
    app.router.add_post("/console/audit/verify", verify_now)


async def _stop(app: web.Application) -> None:
    verifier = app[_VERIFIER].verifier
    if verifier is not None:
        await verifier.aclose()


def _verifier(request: web.Request) -> ChainVerifier:
    from gateway.web.app import CLOCK  # here, not at the top: app.py imports the console
    from gateway.web.keys import CONFIG, DB

    holder = request.app[_VERIFIER]
    if holder.verifier is None:
        pki_dir = request.app[CONFIG].pki_dir
        holder.verifier = ChainVerifier(
            request.app[DB], lambda: root_certificate(pki_dir), request.app[CLOCK]
        )
    return holder.verifier


async def audit_page(request: web.Request) -> web.Response:
    """The chain's status (a fresh verification when the kept one is stale) and the records."""
    from gateway.console import layout
    from gateway.web.keys import CONFIG, DB

    verifier = _verifier(request)
    chain = await verifier.status(wait=2.0)
    db = request.app[DB]
    root = await asyncio.to_thread(root_certificate, request.app[CONFIG].pki_dir)
    params = {
        "event": request.query.get("event", "").strip()[:64],
        "outcome": request.query.get("outcome", "").strip()[:32],
    }
    records = await recent_records(
        db,
        page_number(request.query.get("page")),
        event=params["event"] or None,
        outcome=params["outcome"] or None,
    )
    return await layout.render(
        request,
        "audit.html",
        section="audit",
        chain=chain,  # not `status`: layout.html takes that as the HTTP status
        running=verifier.running,
        failure=verifier.failure,
        summary=await trail_summary(db, root),
        records=records,
        params=params,
    )


async def verify_now(request: web.Request) -> web.StreamResponse:
    """Start a verification at once (POST, CSRF-checked by the gate); back to the page."""
    await _verifier(request).status(wait=10.0, force=True)
    raise web.HTTPSeeOther("/console/audit")
