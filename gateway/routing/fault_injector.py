"""Applying the stored faults around each connector call (the dispatcher's `_attempt`).

The table is re-read at most every `ttl` seconds, so a fault set or cleared by any process (the
admin API of another hub, the CLI) reaches this one within that time; the admin API of this
process also calls `forget` so its own changes apply at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

import structlog

from connectors.protocol import Connector, ConnectorContext, Outcome, Response, Transaction
from gateway.routing.fault_control import list_faults
from gateway.routing.fault_sockets import refusing_port, resetting_listener
from gateway.routing.faults import (
    Answer,
    CallThrough,
    CorruptReply,
    Divert,
    FaultProfile,
    Hang,
    InjectedError,
    Raise,
    corrupt,
    decide,
)
from gateway.store.engine import Database

log = structlog.get_logger("gateway.faults")

DEFAULT_TTL = 1.0


@runtime_checkable
class Divertible(Protocol):
    """A connector whose HTTP requests can be sent elsewhere for one call (http-forward)."""

    def diverted(self, url: str) -> AbstractContextManager[None]: ...


class FaultInjector:
    """The faults currently set, cached; `handle` calls a connector through them."""

    def __init__(
        self,
        db: Database,
        *,
        ttl: float = DEFAULT_TTL,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._ttl = ttl
        self._rng = rng or random.Random()
        self._faults: dict[str, FaultProfile] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    def forget(self) -> None:
        """Re-read the table on the next call (this process just changed it)."""
        self._loaded_at = None

    async def current(self, connector: str) -> FaultProfile | None:
        """The fault set on the connector, as of at most `ttl` seconds ago."""
        if self._stale():
            async with self._lock:
                if self._stale():
                    await self._load()
        return self._faults.get(connector)

    def _stale(self) -> bool:
        return self._loaded_at is None or time.monotonic() - self._loaded_at >= self._ttl

    async def _load(self) -> None:
        try:
            faults = await list_faults(self._db)
        except Exception:
            # Keep what was known: an unreadable fault table must not fail real deliveries.
            log.exception("faults.load_failed")
        else:
            self._faults = {f.connector: f for f in faults}
        self._loaded_at = time.monotonic()

    async def handle(
        self,
        profile: FaultProfile | None,
        connector: Connector,
        tx: Transaction,
        ctx: ConnectorContext,
    ) -> Outcome:
        """connector.handle(tx, ctx), unless the fault set on it (`current`) decides otherwise."""
        decision = decide(profile, self._rng)
        if profile is not None:
            log.info(
                "faults.injected",
                connector=ctx.name,
                fault=profile.fault,
                decision=type(decision).__name__,
            )
        match decision:
            case CallThrough(delay=delay):
                if delay > 0:
                    await asyncio.sleep(delay)
                return await connector.handle(tx, ctx)
            case Raise(message=message):
                raise InjectedError(message)
            case Hang():
                # Only the dispatcher's route timeout (a cancellation) ends this.
                await asyncio.Event().wait()
                raise AssertionError("unreachable")
            case Answer(outcome=outcome):
                return outcome
            case CorruptReply():
                outcome = await connector.handle(tx, ctx)
                return Response(corrupt(outcome.body)) if isinstance(outcome, Response) else outcome
            case Divert(kind=kind):
                if not isinstance(connector, Divertible):
                    # Refused when set (applies_to); a connector replaced since gets the real call.
                    log.warning("faults.not_applicable", connector=ctx.name, fault=kind)
                    return await connector.handle(tx, ctx)
                place = resetting_listener() if kind == "reset" else refusing_port()
                async with place as url:
                    with connector.diverted(url):
                        return await connector.handle(tx, ctx)
        raise AssertionError(f"unhandled decision {decision!r}")  # pragma: no cover
