"""PollInterval under load: how long a client should wait before its next poll.

The protocol's PollInterval is the class's typical turnaround (§3). A route's fixed figure holds
while its connector keeps up; when work queues, a client honouring 1 s would poll a submission
many times before it is even delivered, and every poll takes the hub's time from delivering.
So while a connector's queue head has waited, an acknowledgement asks for about the wait the
submission still has ahead of it, up to `[dispatcher] max_poll_interval`.

The queue is FIFO by due time: a submission due at `due` is reached when the queue has
advanced from its head's due time to `due`, which at a steady rate takes `due - head`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime


class Pacing:
    """Each connector's queue head, as last observed; the PollInterval it implies."""

    def __init__(self, most: int) -> None:
        self._most = most
        self._heads: dict[str, datetime] = {}

    def observe(self, heads: Iterable[tuple[str, datetime]]) -> None:
        """Every connector with due work and since when its first due work has waited; a
        connector not named has none."""
        self._heads = dict(heads)

    def forget(self) -> None:
        """Nothing is known (the queue could not be read): routes' own intervals apply."""
        self._heads = {}

    def interval(
        self, route_interval: int, connector: str, now: datetime, due: datetime | None = None
    ) -> int:
        """Seconds to the next poll of a submission due at `due` (None: due now, a new one)."""
        if self._most <= route_interval:
            return route_interval
        due = now if due is None else due
        head = self._heads.get(connector)
        reached = head if head is not None and head < due else now
        ahead = (due - reached).total_seconds()
        return max(route_interval, min(self._most, math.ceil(ahead)))
