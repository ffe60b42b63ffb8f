"""PollInterval under load: how long a client should wait before its next poll.

The protocol's PollInterval is the class's typical turnaround (§3). A route's fixed figure holds
while its connector keeps up; when work queues, a client honouring 1 s polls every outstanding
submission every second, and those polls take the hub's time from delivering (a burst of 3,000
left it answering ~400 polls/s and delivering ~50/s). So while a connector's work queues, an
acknowledgement asks for about the wait the submission has ahead of it, never below the route's
figure and at most `[dispatcher] max_poll_interval`.

The queue is FIFO by due time. Its head's due time moves on as work is taken; measured over the
last WINDOW, that pace (queue seconds per second) says how long the queue needs to reach a
submission due at `due`: `(due - head) / pace`, but never more than twice as long as the head has
already waited. A queue too young to measure is taken to keep pace with time; one whose head has
not moved (a hanging back office) asks for twice its head's wait, up to the most.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta

WINDOW = timedelta(seconds=10)
# Observations closer together than this say nothing yet about the pace.
_SPAN = 1.0


class Pacing:
    """Each connector's queue head as observed over the last WINDOW; the PollInterval it implies."""

    def __init__(self, most: int) -> None:
        self._most = most
        # connector -> (observed at, head's due time), oldest first
        self._seen: dict[str, deque[tuple[datetime, datetime]]] = {}

    def observe(self, heads: Iterable[tuple[str, datetime]], at: datetime) -> None:
        """Every connector with due work, with its queue head's due time, as read at `at`; a
        connector not named has none (its queue emptied: its history goes)."""
        seen = {}
        for connector, head in heads:
            track = self._seen.get(connector)
            if not track or at < track[-1][0]:  # new, or the clock was moved back: start again
                track = deque()
            track.append((at, head))
            # Keep the newest observation at least WINDOW old as the base of the measure.
            while len(track) > 2 and at - track[1][0] >= WINDOW:
                track.popleft()
            seen[connector] = track
        self._seen = seen

    def waiting(self, now: datetime) -> dict[str, tuple[float, int]]:
        """Each connector with due work: seconds its queue head has waited, and the PollInterval
        a submission queued now is asked before any route's own minimum (0: pacing is off)."""
        return {
            connector: ((now - track[-1][1]).total_seconds(), self.interval(0, connector, now))
            for connector, track in self._seen.items()
        }

    def forget(self) -> None:
        """Nothing is known (the queue could not be read): routes' own intervals apply."""
        self._seen = {}

    def interval(
        self, route_interval: int, connector: str, now: datetime, due: datetime | None = None
    ) -> int:
        """Seconds to the next poll of a submission due at `due` (None: due now, a new one)."""
        if self._most <= route_interval:
            return route_interval
        due = now if due is None else due
        ahead = (due - now).total_seconds()  # a retry not yet due waits for its time at least
        track = self._seen.get(connector)
        if track and track[-1][1] < due:
            head = track[-1][1]
            pace = _pace(track)
            estimate = (due - head).total_seconds() / pace if pace > 0 else math.inf
            # A pace measured while a burst is being acknowledged is the slowest the queue will
            # move: bounded by twice the head's wait, an estimate made then cannot keep a client
            # away long after the queue has drained, and a stuck queue's wait grows by doubling.
            ahead = max(ahead, min(estimate, 2 * (now - head).total_seconds()))
        return max(route_interval, math.ceil(min(self._most, ahead)))


def _pace(track: deque[tuple[datetime, datetime]]) -> float:
    (first_at, first_head), (last_at, last_head) = track[0], track[-1]
    span = (last_at - first_at).total_seconds()
    if span < _SPAN:
        return 1.0
    return (last_head - first_head).total_seconds() / span
