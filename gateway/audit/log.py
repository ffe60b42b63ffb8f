"""Appending to the audit trail, signing its head, and reading it back for verification.

`record()` never blocks the request that calls it: events queue in memory and a background task
appends them in batches, one write transaction each (the head row serialises appenders across
processes). A batch is written within `flush_seconds`; an event still queued when the process is
killed is lost — the trail says what happened up to its last write, never something false. An
event that must not be lost so (a submission's receipt, a delivery's outcome) is written in the
transaction of the change it records instead: `audit_with_commit`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import String, delete, select

from gateway import observability
from gateway.audit.append import Event
from gateway.audit.chain import checkpoint_message
from gateway.storable import storable
from gateway.store.audit_models import AuditBody, AuditCheckpoint, AuditHead, AuditRecord
from gateway.store.engine import Database

log = structlog.get_logger("gateway.audit")

MAX_BATCH = 500
MAX_QUEUE = 100_000
# What the record's columns hold: an event cut to fit is kept, one that does not fit is not.
_EVENT_LENGTH, _OUTCOME_LENGTH, _ACTOR_LENGTH, _CID_LENGTH = (
    cast(String, column.type).length
    for column in (
        AuditRecord.__table__.c.event,
        AuditRecord.__table__.c.outcome,
        AuditRecord.__table__.c.actor,
        AuditRecord.__table__.c.correlation_id,
    )
)


@dataclass(frozen=True, slots=True)
class Signer:
    """The hub's server key and certificate: what checkpoints are signed with."""

    key: ec.EllipticCurvePrivateKey
    certificate_pem: str

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.key.sign(message, ec.ECDSA(hashes.SHA256()))).decode("ascii")

    @classmethod
    def from_files(cls, cert_path: Path, key_path: Path) -> Signer:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path}: the audit trail is signed with an EC key")
        return cls(key, cert_path.read_text(encoding="ascii"))


def signature_problem(checkpoint: Mapping[str, Any]) -> str | None:
    """None if the checkpoint's signature verifies with the certificate it carries."""
    try:
        cert = x509.load_pem_x509_certificate(str(checkpoint["certificate_pem"]).encode("ascii"))
        public = cert.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            return "the signing certificate's key is not EC"
        public.verify(
            base64.b64decode(str(checkpoint["signature"])),
            checkpoint_message(
                int(checkpoint["seq"]), str(checkpoint["hash"]), str(checkpoint["at"])
            ),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature:
        return "the signature does not verify"
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable ({exc})"
    return None


class AuditLog:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        *,
        flush_seconds: float = 0.05,
        keep_bodies: bool = True,
    ) -> None:
        self._db = db
        self._clock = clock
        self._flush_seconds = flush_seconds
        self._keep_bodies = keep_bodies
        self._queue: list[Event] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = asyncio.Event()
        self.dropped = 0

    def record(self, event: str, **fields: Any) -> None:
        """Queue one event (`event`'s fields); it is appended within flush_seconds."""
        if len(self._queue) >= MAX_QUEUE:
            self.dropped += 1  # never let a flood of events take the hub's memory
            return
        self._queue.append(self.event(event, **fields))
        self._idle.clear()
        self._wake.set()

    def event(
        self,
        event: str,
        *,
        outcome: str = "ok",
        actor: str | None = None,
        correlation_id: str | None = None,
        body: bytes | None = None,
        **detail: Any,
    ) -> Event:
        """One event as this trail records it (its time now, its body kept or only digested)."""
        return Event(
            at=self._clock(),
            event=storable(event, _EVENT_LENGTH),
            outcome=storable(outcome, _OUTCOME_LENGTH),
            actor=None if actor is None else storable(actor, _ACTOR_LENGTH),
            correlation_id=(
                None if correlation_id is None else storable(correlation_id, _CID_LENGTH)
            ),
            detail={k: _plain(v) for k, v in detail.items() if v is not None},
            body_digest=hashlib.sha256(body).hexdigest() if body is not None else None,
            body=body if self._keep_bodies else None,
        )

    async def run(self) -> None:
        """Background: append what is queued, in batches, until stop() (then a last flush).

        Never cancelled mid-append: a cancelled SQLite write can leave its connection holding
        the write lock, and everything after it would wait on a lock no one releases.
        """
        while not self._stopping.is_set():
            await self._wake.wait()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._flush_seconds)
            try:
                await self.flush()
            except Exception:
                await asyncio.sleep(1)  # logged by flush; the events stay queued for the retry
        await self.flush()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def sleep_unless_stopped(self, seconds: float) -> bool:
        """Wait `seconds`; False if the trail was stopped meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()

    async def flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                await self._append(batch)
            except Exception:
                log.exception("audit.append_failed", events=len(batch))
                await self._one_by_one(batch)
        self._idle.set()

    async def _one_by_one(self, batch: list[Event]) -> None:
        """Append a failed batch's events alone, so that one the database will not take cannot
        hold up every event behind it: it is replaced by a record saying so. If that record
        fails too, the database itself is failing: what is left stays queued for the retry."""
        for n, event in enumerate(batch):
            try:
                await self._append([event])
                continue
            except Exception as exc:
                stand_in = self.event(
                    "audit.unwritable",
                    outcome="error",
                    unwritable=event.event,
                    at_time=event.at,
                    error=type(exc).__name__,
                )
            try:
                await self._append([stand_in])
            except Exception:
                self._queue = batch[n:] + self._queue
                raise

    async def drained(self) -> None:
        """Wait until everything recorded so far is written (tests, shutdown, export)."""
        self._wake.set()
        await self._idle.wait()

    async def drained_unless_stopped(self) -> bool:
        """`drained`, unless the trail is stopped first (False): a trail the database will not
        take must not keep the hub from stopping."""
        waits = {
            asyncio.ensure_future(self.drained()),
            asyncio.ensure_future(self._stopping.wait()),
        }
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in pending:
            wait.cancel()
        return not self._stopping.is_set()

    async def _append(self, batch: list[Event]) -> None:
        await append_events(self._db, batch)

    async def checkpoint(self, signer: Signer) -> int | None:
        """Sign the current head if it moved since the last checkpoint; its seq, or None."""
        async with self._db.transaction() as session:
            head = await session.get(AuditHead, 1)
            last = await session.scalar(
                select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq.desc()).limit(1)
            )
            if head is None or head.seq == 0 or head.seq == last:
                return None
            at = self._clock().isoformat()
            session.add(
                AuditCheckpoint(
                    seq=head.seq,
                    hash=head.hash,
                    at=datetime.fromisoformat(at),
                    signature=signer.sign(checkpoint_message(head.seq, head.hash, at)),
                    certificate_pem=signer.certificate_pem,
                )
            )
            return head.seq

    async def purge_bodies(self, older_than: timedelta) -> int:
        """Bodies past retention go; their digests stay in the chain."""
        cutoff = self._clock() - older_than
        async with self._db.transaction() as session:
            result = await session.execute(delete(AuditBody).where(AuditBody.stored_at < cutoff))
            return int(getattr(result, "rowcount", 0) or 0)


async def read_chain(db: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every record and checkpoint, as plain mappings (the same shape an export holds)."""
    async with db.read() as session:
        # Checkpoints first: each query may see a later moment (PostgreSQL, READ COMMITTED), and
        # records are append-only, so every checkpoint read now finds its record read after it.
        # The other way round, one signed meanwhile named a record not read: "removed".
        checkpoints = [
            {
                "seq": c.seq,
                "hash": c.hash,
                "at": c.at.isoformat(),
                "signature": c.signature,
                "certificate_pem": c.certificate_pem,
            }
            for c in await session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq))
        ]
        records = [
            {
                "seq": r.seq,
                "at": r.at.isoformat(),
                "event": r.event,
                "outcome": r.outcome,
                "actor": r.actor,
                "correlation_id": r.correlation_id,
                "detail": r.detail,
                "body_digest": r.body_digest,
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            }
            for r in await session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
        ]
    return records, checkpoints


def _plain(value: Any) -> Any:
    """JSON-safe detail values (the hash is over their JSON, as UTF-8)."""
    if isinstance(value, str):
        # A header's undecodable bytes arrive as lone surrogates, which UTF-8 cannot carry: one
        # such event would fail every append of the batches behind it.
        return storable(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return str(value)


# Where `audit()` sends events: set for each request by the middleware and for the hub's
# background tasks by its lifecycle, so several hubs in one process (tests) keep their own trails.
current: contextvars.ContextVar[AuditLog | None] = contextvars.ContextVar("audit_log", default=None)


def audit(event: str, *, outcome: str = "ok", **fields: Any) -> None:
    """Record a security or transaction event in the current hub's trail, and log it.

    The request id, the peer's address and the CorrelationID bound to the log context go into
    the record too.
    """
    correlation_id, fields = _in_context(fields)
    _announce(event, outcome, correlation_id, fields)
    trail = current.get()
    if trail is not None:
        trail.record(event, outcome=outcome, correlation_id=correlation_id, **fields)


def audit_with_commit(
    event: str, *, outcome: str = "ok", **fields: Any
) -> tuple[list[Event], Callable[[], None]]:
    """`audit` for an event that must commit with the change it records: the events to pass to
    the lane's write (`audited=`), and what to call once it has committed (the log line and the
    counters, which must not tell of a change that did not happen)."""
    correlation_id, fields = _in_context(fields)
    trail = current.get()
    events = (
        [trail.event(event, outcome=outcome, correlation_id=correlation_id, **fields)]
        if trail is not None
        else []
    )
    return events, functools.partial(_announce, event, outcome, correlation_id, fields)


def _in_context(fields: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The CorrelationID, and the fields with the request id and peer bound to the log context."""
    bound = structlog.contextvars.get_contextvars()
    correlation_id = fields.pop("correlation_id", None) or bound.get("correlation_id")
    for key in ("request_id", "peer"):
        if bound.get(key) is not None:
            fields.setdefault(key, bound[key])
    return correlation_id, fields


def _announce(event: str, outcome: str, correlation_id: str | None, fields: dict[str, Any]) -> None:
    # Refusals and retries are the hub doing its job: info, like the rest; the trail keeps them.
    shown = {k: v for k, v in fields.items() if k not in ("body", "request_id", "peer")}
    log.info(event, outcome=outcome, **shown)
    observability.audited(event, correlation_id, fields)  # refusal counters, span attributes


async def append_events(db: Database, batch: Sequence[Event]) -> None:
    """Append a batch to the chain in a write of the database's lane (one transaction)."""
    if db.direct is not None:
        await db.direct.write(_nothing, audited=batch)
    else:
        await db.pg_lane.write(_nothing_pg, audited=batch)


def _nothing(_conn: Any) -> None:
    return None


async def _nothing_pg(_conn: Any) -> None:
    return None


__all__ = [
    "AuditLog",
    "Signer",
    "append_events",
    "audit",
    "audit_with_commit",
    "current",
    "read_chain",
]
