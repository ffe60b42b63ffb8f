"""Replay store for signed envelopes: a digest seen within the window is a replay."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from gateway.clock import utcnow
from gateway.store.engine import Database
from gateway.store.models import SeenSignature


class ReplayStore:
    """Records digests of signatures and signed content; a second sighting is a replay."""

    def __init__(
        self, db: Database, window: timedelta, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = db
        self._window = window
        self._clock = clock

    async def seen_or_record(self, digests: Sequence[str]) -> bool:
        """True if any digest was seen within the window; otherwise record them all."""
        if not digests:
            return False
        now = self._clock()
        try:
            async with self._db.transaction() as session:
                # Expired rows no longer count; purging them here keeps the table at one
                # window's worth of traffic and lets an old digest be recorded afresh.
                await session.execute(delete(SeenSignature).where(SeenSignature.expires_at <= now))
                # The primary key makes this atomic: of two concurrent submissions of the same
                # envelope exactly one INSERT succeeds, with no read-then-write race.
                await session.execute(
                    insert(SeenSignature),
                    [
                        {"digest": d, "seen_at": now, "expires_at": now + self._window}
                        for d in dict.fromkeys(digests)
                    ],
                )
        except IntegrityError:
            return True
        return False
