"""Rate and failure limits, kept in this process's memory (sliding windows per key).

Pure: no I/O, time passed in. One hub process counts what it sees; several processes behind one
address each count their share (a shared store is the scale-out issue's to add).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_KEYS = 100_000  # beyond this the least recently seen keys are forgotten: bounded memory


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


class RateLimit:
    """At most `limit` requests per `window` per key; how long to wait when over."""

    def __init__(self, limit: int, window: timedelta = timedelta(minutes=1)) -> None:
        self.limit = limit
        self._window = window
        self._seen = SlidingWindow(window)

    def retry_after(self, key: str, now: datetime) -> float | None:
        """None if this request may go ahead (and it is counted); else seconds to wait."""
        if self.limit <= 0:
            return None
        if self._seen.count(key, now) >= self.limit:
            oldest = self._seen.oldest(key)
            wait = (oldest + self._window - now).total_seconds() if oldest else 1.0
            return max(1.0, wait)
        self._seen.add(key, now)
        return None


class Lockout:
    """`limit` failures within `window` lock a key for `duration`."""

    def __init__(self, limit: int, window: timedelta, duration: timedelta) -> None:
        self._limit = limit
        self._duration = duration
        self._failures = SlidingWindow(window)
        self._locked: dict[str, datetime] = {}

    def locked_until(self, key: str, now: datetime) -> datetime | None:
        until = self._locked.get(key)
        if until is None:
            return None
        if until <= now:
            del self._locked[key]
            self._failures.clear(key)
            return None
        return until

    def failed(self, key: str, now: datetime) -> None:
        if self._limit > 0 and self._failures.add(key, now) >= self._limit:
            self._locked[key] = now + self._duration
            if len(self._locked) > MAX_KEYS:
                self._locked.pop(next(iter(self._locked)))

    def succeeded(self, key: str) -> None:
        self._failures.clear(key)


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
        *,
        per_sender: int,
        per_address: int,
        window: timedelta,
        duration: timedelta,
        exempt_loopback: bool,
    ) -> None:
        self._senders = Lockout(per_sender, window, duration)
        self._addresses = Lockout(per_address, window, duration)
        self._exempt_loopback = exempt_loopback

    def locked(self, sender: str | None, address: str | None, now: datetime) -> Locked | None:
        if sender and (until := self._senders.locked_until(sender, now)):
            return Locked(until, "sender")
        if self._counts(address) and (until := self._addresses.locked_until(str(address), now)):
            return Locked(until, "address")
        return None

    def failed(self, sender: str | None, address: str | None, now: datetime) -> None:
        if sender:
            self._senders.failed(sender, now)
        if self._counts(address):
            self._addresses.failed(str(address), now)

    def succeeded(self, sender: str | None) -> None:
        if sender:
            self._senders.succeeded(sender)

    def _counts(self, address: str | None) -> bool:
        return bool(address) and not (self._exempt_loopback and is_loopback(address))


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
