"""The hub's clock: one place to read UTC now, and a clock that tests and scenarios can move."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


class MovableClock:
    """A callable clock: real time plus an offset that `advance` and `set` move.

    It keeps ticking with real time (the dispatcher's leases and retries still work), but expiry
    and lockout can be tested without waiting: `advance(timedelta(days=29))` and the hub believes
    29 days have passed. Moving it backwards is allowed too.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        if start is not None:
            self.set(start)

    def __call__(self) -> datetime:
        with self._lock:
            offset = self._offset
        return datetime.now(UTC) + offset

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock by delta; returns the new now."""
        with self._lock:
            self._offset += delta
        return self()

    def set(self, when: datetime) -> None:
        """Make now be `when` (an aware datetime); time goes on from there."""
        if when.tzinfo is None:
            raise ValueError("MovableClock.set needs an aware datetime")
        with self._lock:
            self._offset = when.astimezone(UTC) - datetime.now(UTC)

    @property
    def offset(self) -> timedelta:
        with self._lock:
            return self._offset
