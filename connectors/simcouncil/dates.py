"""The charge year the demo data is for, its instalment dates, and the council's idea of today."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

# The dataset is fixed to one charge year so that the same council code always gives the same data.
YEAR_START = date(2026, 4, 1)
YEAR_END = date(2027, 3, 31)
YEAR_LABEL = "2026-27"
INSTALMENT_COUNT = 10

_LONDON = ZoneInfo("Europe/London")


def instalment_due_dates(day: int) -> tuple[date, ...]:
    """The ten due dates, April to January, on the given day of each month."""
    months = [(YEAR_START.year, m) for m in range(4, 13)] + [(YEAR_END.year, 1)]
    return tuple(date(y, m, day) for y, m in months[:INSTALMENT_COUNT])


def days_in_year() -> int:
    return (YEAR_END - YEAR_START).days + 1


def council_today(now: datetime) -> date:
    """The calendar date in England at this instant (a naive time is taken as UTC)."""
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return aware.astimezone(_LONDON).date()
