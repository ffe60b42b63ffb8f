"""Rate and failure limits: sliding windows per key, in a counter store.

The store is this process's memory by default, or Redis (`[limits] store = "redis"`) so that the
workers of `gateway serve --workers N` and hubs on several hosts count together. Time is passed
in, so that the movable clock (and tests) govern windows and lockouts.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

MAX_KEYS = 100_000  # beyond this the least recently seen keys are forgotten: bounded memory


class Counters(Protocol):
    """Where the windows are kept; every operation is atomic for its key."""

    async def hit(self, key: str, now: datetime, limit: int, window: timedelta) -> float | None:
        """Count one event unless `limit` are already in the window; else seconds to wait."""

    async def fail(
        self, key: str, now: datetime, limit: int, window: timedelta, duration: timedelta
    ) -> None:
        """Count one failure; the `limit`th within the window locks the key for `duration`."""

    async def locked_until(self, key: str, now: datetime) -> datetime | None: ...

    async def clear(self, key: str) -> None:
        """Forget the key's failures (a success)."""

    async def aclose(self) -> None: ...


class SlidingWindow:
    """How many events each key had within the last `window`."""

    def __init__(self, window: timedelta) -> None:
        self._window = window
        self._events: OrderedDict[str, deque[datetime]] = OrderedDict()

    def add(self, key: str, now: datetime) -> int:
        events = self._events.pop(key, None) or deque()
        events.append(now)
        self._trim(events, now)
        self._events[key] = events
        while len(self._events) > MAX_KEYS:
            self._events.popitem(last=False)
        return len(events)

    def count(self, key: str, now: datetime) -> int:
        events = self._events.get(key)
        if not events:
            return 0
        self._trim(events, now)
        return len(events)

    def oldest(self, key: str) -> datetime | None:
        events = self._events.get(key)
        return events[0] if events else None

    def clear(self, key: str) -> None:
        self._events.pop(key, None)

    def _trim(self, events: deque[datetime], now: datetime) -> None:
        while events and events[0] <= now - self._window:
            events.popleft()


class MemoryCounters:
    """Counters in this process's memory: no I/O, nothing shared."""

    def __init__(self) -> None:
        self._windows: dict[timedelta, SlidingWindow] = {}
        self._locked: OrderedDict[str, datetime] = OrderedDict()

    def _window(self, window: timedelta) -> SlidingWindow:
        return self._windows.setdefault(window, SlidingWindow(window))

    async def hit(self, key: str, now: datetime, limit: int, window: timedelta) -> float | None:
        seen = self._window(window)
        if seen.count(key, now) >= limit:
            oldest = seen.oldest(key)
            return (oldest + window - now).total_seconds() if oldest else 1.0
        seen.add(key, now)
        return None

    async def fail(
        self, key: str, now: datetime, limit: int, window: timedelta, duration: timedelta
    ) -> None:
        failures = self._window(window)
        if failures.add(key, now) >= limit:
            failures.clear(key)
            self._locked[key] = now + duration
            while len(self._locked) > MAX_KEYS:
                self._locked.popitem(last=False)

    async def locked_until(self, key: str, now: datetime) -> datetime | None:
        until = self._locked.get(key)
        if until is not None and until <= now:
            del self._locked[key]
            return None
        return until

    async def clear(self, key: str) -> None:
        for window in self._windows.values():
            window.clear(key)

    async def aclose(self) -> None:
        return None


class RateLimit:
    """At most `limit` requests per `window` per key; how long to wait when over."""

    def __init__(
        self, limit: int, counters: Counters, window: timedelta = timedelta(minutes=1)
    ) -> None:
        self.limit = limit
        self._counters = counters
        self._window = window

    async def retry_after(self, key: str, now: datetime) -> float | None:
        """None if this request may go ahead (and it is counted); else seconds to wait."""
        if self.limit <= 0:
            return None
        wait = await self._counters.hit(f"rate:{key}", now, self.limit, self._window)
        return None if wait is None else max(1.0, wait)


@dataclass(frozen=True, slots=True)
class Locked:
    until: datetime
    by: str  # "sender" | "address"

    def text(self) -> str:
        return (
            f"Too many failed authentication attempts from this {self.by}; "
            f"try again after {self.until:%H:%M:%S} UTC"
        )

    def seconds(self, now: datetime) -> int:
        return max(1, int((self.until - now).total_seconds()) + 1)


class AuthGuard:
    """Lockouts after repeated authentication failures, per sender and per address."""

    def __init__(
        self,
        counters: Counters,
        *,
        per_sender: int,
        per_address: int,
        window: timedelta,
        duration: timedelta,
        exempt_loopback: bool,
    ) -> None:
        self._counters = counters
        self._limits = {"sender": per_sender, "address": per_address}
        self._window = window
        self._duration = duration
        self._exempt_loopback = exempt_loopback

    async def locked(self, sender: str | None, address: str | None, now: datetime) -> Locked | None:
        for by, key in self._keys(sender, address):
            until = await self._counters.locked_until(f"{by}:{key}", now)
            if until is not None:
                return Locked(until, by)
        return None

    async def failed(self, sender: str | None, address: str | None, now: datetime) -> None:
        for by, key in self._keys(sender, address):
            await self._counters.fail(
                f"{by}:{key}", now, self._limits[by], self._window, self._duration
            )

    async def succeeded(self, sender: str | None) -> None:
        if sender and self._limits["sender"] > 0:
            await self._counters.clear(f"sender:{sender}")

    def _keys(self, sender: str | None, address: str | None) -> list[tuple[str, str]]:
        keys = []
        if sender and self._limits["sender"] > 0:
            keys.append(("sender", sender))
        if address and self._limits["address"] > 0:
            if not (self._exempt_loopback and is_loopback(address)):
                keys.append(("address", address))
        return keys


@functools.lru_cache(maxsize=4096)  # asked for every request; parsing the address is the cost
def is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
