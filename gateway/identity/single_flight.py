"""Single flight: concurrent callers asking for the same thing share one run of the work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    """The work under way, by key; a caller finding its key under way waits for that run."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[T]] = {}

    async def run(self, key: K, work: Callable[[], Awaitable[T]]) -> T:
        pending = self._running.get(key)
        if pending is None:
            pending = self._running[key] = asyncio.ensure_future(work())
            pending.add_done_callback(lambda _: self._running.pop(key, None))
        # Shielded: one waiting caller cancelled must not cancel the run the others wait for.
        return await asyncio.shield(pending)
