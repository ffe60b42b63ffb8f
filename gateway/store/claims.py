"""Claiming due rows when several hubs share one database.

Each hub's background pass reads the same due rows; moving a row's next-attempt time from the
value it read to a later one, in a conditional update, lets exactly one hub take it. A hub that
dies after claiming leaves the claim to run out, so the work is done at least once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from gateway.store.models import Base


async def claim(
    session: AsyncSession,
    model: type[Base],
    key: InstrumentedAttribute[Any] | tuple[InstrumentedAttribute[Any], ...],
    due_at: InstrumentedAttribute[Any],
    seen: Iterable[tuple[Any, datetime | None]],
    until: datetime,
    *still: ColumnElement[bool],
) -> set[Any]:
    """The keys of the rows whose `due_at` this hub moved from the value seen to `until` (and
    for which every `still` condition holds): those it alone now works on. A key of several
    columns is given, and its values seen and returned, as tuples."""
    columns = key if isinstance(key, tuple) else (key,)
    claimed = set()
    for value, at in seen:
        values = value if isinstance(key, tuple) else (value,)
        row = [column == v for column, v in zip(columns, values, strict=True)]
        result = await session.execute(
            update(model).where(*row, due_at == at, *still).values({due_at.key: until})
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.add(value)
    return claimed
