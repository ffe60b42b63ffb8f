"""Journey and leg records: create, load, and guarded step updates (state lives in the DB)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.engine import Database
from gateway.store.journey_models import IN_PROGRESS, PENDING, Journey, JourneyLeg
from gateway.store.models import Submission


async def create(db: Database, journey: Journey, legs: Sequence[JourneyLeg]) -> bool:
    """Store a new journey with its legs; False when one with this CorrelationID exists."""
    try:
        async with db.transaction() as session:
            session.add(journey)
            await session.flush()
            for leg in legs:
                session.add(leg)
    except IntegrityError:
        return False
    return True


async def get(db: Database, correlation_id: str) -> tuple[Journey, list[JourneyLeg]] | None:
    async with db.read() as session:
        journey = await session.get(Journey, correlation_id)
        if journey is None:
            return None
        legs = await session.scalars(
            select(JourneyLeg)
            .where(JourneyLeg.journey_id == correlation_id)
            .order_by(JourneyLeg.position)
        )
        return journey, list(legs.all())


async def in_progress(db: Database, limit: int = 500) -> list[str]:
    async with db.read() as session:
        rows = await session.scalars(
            select(Journey.correlation_id)
            .where(Journey.state == IN_PROGRESS)
            .order_by(Journey.updated_at)
            .limit(limit)
        )
        return list(rows.all())


class Conflict(Exception):
    """Another coordinator moved this leg first: the step is dropped (and rolled back)."""


async def submit_leg(db: Database, leg: JourneyLeg, submission: Submission, now: datetime) -> bool:
    """Insert the leg's submission and mark the leg submitted, atomically and only once."""
    try:
        async with db.transaction() as session:
            session.add(submission)
            await session.flush()
            result = await session.execute(
                update(JourneyLeg)
                .where(
                    JourneyLeg.id == leg.id,
                    JourneyLeg.state == PENDING,
                    JourneyLeg.attempts == leg.attempts,
                )
                .values(
                    state="submitted",
                    attempts=leg.attempts + 1,
                    correlation_id=submission.correlation_id,
                    updated_at=now,
                )
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise Conflict
            await _touch(session, leg.journey_id, now)
    except Conflict:
        return False
    return True


async def step(
    db: Database,
    journey_id: str,
    *,
    now: datetime,
    legs: Sequence[tuple[JourneyLeg, str, dict[str, Any]]] = (),
    new_legs: Sequence[JourneyLeg] = (),
    journey: dict[str, Any] | None = None,
) -> bool:
    """Apply leg updates (each guarded by the state it was read in), add legs, update the
    journey: all or nothing."""
    try:
        async with db.transaction() as session:
            for leg, expected, values in legs:
                result = await session.execute(
                    update(JourneyLeg)
                    .where(
                        JourneyLeg.id == leg.id,
                        JourneyLeg.state == expected,
                        JourneyLeg.attempts == leg.attempts,
                    )
                    .values(**values, updated_at=now)
                )
                if not result.rowcount:  # type: ignore[attr-defined]
                    raise Conflict
            for new in new_legs:
                session.add(new)
            values = dict(journey or {})
            result = await session.execute(
                update(Journey)
                .where(Journey.correlation_id == journey_id, Journey.state == IN_PROGRESS)
                .values(**values, updated_at=now)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise Conflict
    except (Conflict, IntegrityError):
        return False
    return True


async def _touch(session: Any, journey_id: str, now: datetime) -> None:
    await session.execute(
        update(Journey).where(Journey.correlation_id == journey_id).values(updated_at=now)
    )
