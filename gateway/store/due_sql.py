"""The dispatcher's due-work queries as SQL text both backends run (named parameters).

Each connector's queue head is found by a loose index scan over `ix_submissions_due` (state,
connector, next_attempt_at): one index probe per connector, so a pass costs the same with ten
queued submissions as with a backlog of a hundred thousand. The earlier form (`state = queued
AND next_attempt_at <= now OR state = leased AND lease_until < now`, grouped or sorted) read every
due row on every pass: with the dispatcher taking one slot at a time, a backlog of B rows cost
B log B per delivery, and drained in quadratic time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from gateway.store.models import LEASED, QUEUED

# Queued: its time has come. Lease expired: the process that claimed it died or stalled.
QUEUED_DUE = f"state = '{QUEUED}' AND next_attempt_at <= :at"
LEASE_EXPIRED = f"state = '{LEASED}' AND lease_until < :at"
# A claim takes expired leases first (theirs is the oldest work), then the queue, each as an
# ordered range on the index rather than one OR that cannot use it.
CLAIM_ORDER = (LEASE_EXPIRED, QUEUED_DUE)

# (connector, first) for every connector with queued work: the distinct connectors stepped
# through the index one probe at a time, then each one's earliest next_attempt_at.
_QUEUED_HEADS = f"""
WITH RECURSIVE names(connector) AS (
    SELECT MIN(connector) FROM submissions WHERE state = '{QUEUED}'
    UNION ALL
    SELECT (
        SELECT MIN(s.connector) FROM submissions AS s
        WHERE s.state = '{QUEUED}' AND s.connector > names.connector
    ) FROM names WHERE names.connector IS NOT NULL
), heads(connector, first) AS (
    SELECT connector, (
        SELECT MIN(s.next_attempt_at) FROM submissions AS s
        WHERE s.state = '{QUEUED}' AND s.connector = names.connector
    ) FROM names WHERE connector IS NOT NULL
)"""

# Leased rows number at most the dispatchers' slots, so reading them all is cheap.
DUE_CONNECTORS = f"""{_QUEUED_HEADS}
SELECT connector, first FROM heads WHERE first <= :at
UNION ALL
SELECT connector, MIN(next_attempt_at) FROM submissions WHERE {LEASE_EXPIRED} GROUP BY connector
ORDER BY 2"""

NEXT_DUE = f"""{_QUEUED_HEADS}
SELECT (SELECT MIN(first) FROM heads) AS queued_first,
       (SELECT MIN(lease_until) FROM submissions WHERE state = '{LEASED}') AS lease_first"""


def claim_statement(
    due: str, *, one_connector: bool, skip_locked: bool, returning: str, not_busy: str
) -> str:
    """Lease the first `:room` rows of one of CLAIM_ORDER's ranges (for `:connector` only, if
    one_connector), returning `returning`; named parameters as `claim_values` gives them, and
    `:busy`, the CorrelationIDs `not_busy` (the backend's test of that list) leaves out."""
    only = " AND connector = :connector" if one_connector else ""
    if due == LEASE_EXPIRED:
        # The claiming dispatcher's own attempts still running: their leases look expired when
        # the hub's movable clock is moved on or an attempt overruns, but taking them again
        # would deliver the same transaction twice at once.
        only += f" AND {not_busy}"
    # SKIP LOCKED (PostgreSQL): hubs claiming at once each take different rows, none waits.
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    return (
        "UPDATE submissions SET state = :leased, lease_owner = :owner, lease_until = :until, "
        "attempts = attempts + 1 WHERE correlation_id IN ("
        f"SELECT correlation_id FROM submissions WHERE {due}{only} "
        f"ORDER BY next_attempt_at LIMIT :room{lock}) RETURNING {returning}"
    )


def claim_values(
    encode_time: Callable[[datetime], Any],
    *,
    owner: str,
    now: datetime,
    until: datetime,
    connector: str | None,
) -> dict[str, Any]:
    """`claim_statement`'s parameters but `room` and `busy`, times as the backend stores them."""
    return {
        "at": encode_time(now),
        "leased": LEASED,
        "owner": owner,
        "until": encode_time(until),
        "connector": connector,
    }


def first_seen(heads: Iterable[tuple[str, datetime]]) -> list[tuple[str, datetime]]:
    """Each connector once with its earliest due time, from rows earliest first (one can have
    both queued work and an expired lease)."""
    seen: dict[str, datetime] = {}
    for connector, since in heads:
        seen.setdefault(connector, since)
    return list(seen.items())
