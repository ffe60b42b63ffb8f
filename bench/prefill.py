"""Fill a hub database with stored submissions directly through the hub's own models.

Going through HTTP would take the hub minutes for 100,000; a bulk INSERT takes seconds, and the
rows are the ones the hub itself writes (same table, same column types), so a hub started on the
database sees an ordinary long-running store: answered transactions nobody has deleted yet.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert

from gateway.store.engine import Database
from gateway.store.models import ERROR, RESPONSE, Submission

BATCH = 5000

# About the size of a council's View Council Tax answer (the floor sends the same shape).
_RESPONSE_BODY = (
    b'<CTaxViewResponse xmlns="urn:govtalk-hub:la:ctax:view:v1"><AccountRef>%s</AccountRef>'
    b"<Council><Code>%s</Code><Name>Council</Name></Council><FinancialYear>2026-27</FinancialYear>"
    b"<Property><Address><PAON>1</PAON><Street>High Street</Street><Town>Town</Town>"
    b"<PostCode>SR1 1AA</PostCode></Address><Band>B</Band></Property>"
    b"<AnnualCharge>1650.00</AnnualCharge><Balance>0.00</Balance></CTaxViewResponse>"
)
_BUSINESS_ERROR = [
    {
        "number": 3001,
        "text": "The submission failed the council's business rules",
        "raised_by": "Department",
        "type": "business",
        "locations": [],
    }
]


def _rows(count: int, now: datetime, seed: int) -> Iterator[dict[str, Any]]:
    from gateway.demo import citizens_list

    rng = random.Random(seed)
    enrolled = [(c, e) for c in citizens_list() for e in c.enrolments]
    bodies = {e: e.example_body().encode() for _, e in enrolled}
    for n in range(count):
        # Half belong to the first citizen's first enrolment, so its data request (list) meets
        # the hub's LIST_LIMIT: the largest answer a list can give.
        citizen, enrolment = enrolled[0] if n % 2 == 0 else rng.choice(enrolled)
        received = now - timedelta(seconds=rng.uniform(60, 20 * 86400))
        answered = received + timedelta(seconds=rng.uniform(0.01, 5))
        failed = rng.random() < 0.05
        account = enrolment.account_ref.encode()
        request_body = bodies[enrolment]
        yield {
            "correlation_id": secrets.token_hex(16).upper(),
            "class": enrolment.class_,
            "base_class": enrolment.class_,
            "organisation": enrolment.organisation,
            "connector": f"council-{enrolment.organisation}",
            "sender_id": citizen.user_id,
            "auth_method": "clear",
            "auth_level": 1,
            "transaction_id": format(n, "X"),
            "keys": enrolment.keys,
            "gateway_test": False,
            "test_in_live": False,
            "request_body": request_body,
            "envelope_body": None,
            "received_at": received,
            "state": ERROR if failed else RESPONSE,
            "attempts": 1,
            "next_attempt_at": received,
            "lease_owner": None,
            "lease_until": None,
            "last_error": None,
            "response_body": None
            if failed
            else _RESPONSE_BODY % (account, enrolment.organisation.encode()),
            "errors": _BUSINESS_ERROR if failed else None,
            "error_application": enrolment.organisation if failed else None,
            "answered_at": answered,
            # Retention as the hub sets it: well in the future, so the purge leaves them be.
            "purge_after": answered + timedelta(days=60),
            "deleted_at": None,
        }


async def prefill(url: str, count: int, *, seed: int = 7) -> float:
    """Insert `count` answered, undeleted submissions into the (migrated) database; seconds."""
    started = time.perf_counter()
    db = Database.open(url)
    try:
        batch: list[dict[str, Any]] = []
        rows = _rows(count, datetime.now(UTC), seed)
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                await _insert(db, batch)
                batch = []
        if batch:
            await _insert(db, batch)
    finally:
        await db.aclose()
    return time.perf_counter() - started


async def _insert(db: Database, batch: list[dict[str, Any]]) -> None:
    # A Core insert on the mapped table: the column types (UTC datetimes, JSON) still apply, the
    # ORM's per-object bookkeeping, five times slower here, does not.
    async with db.transaction() as session:
        await session.execute(insert(cast(Table, Submission.__table__)), batch)
