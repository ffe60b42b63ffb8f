"""The charge year the demo data is for, its instalment dates, its days, and the council's today."""

from __future__ import annotations

from datetime import UTC, date, datetime
from fractions import Fraction
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


def round_half_up(value: Fraction) -> int:
    """Round to whole pence the way a bill is printed (halves up), not banker's rounding."""
    return int((value + Fraction(1, 2)).__floor__())


def pro_rata(annual_pence: int, start: date, end: date = YEAR_END, percent: int = 100) -> int:
    """Percent of a year's amount for the days of the year from start to end, both included.

    Council Tax is a daily charge, so the whole charge, and every discount, for part of the year is
    this one day count: an account opened or closed mid-year, a discount from a date. Here, not in
    charges, because the account model derives its charge from it and charges imports the model.
    """
    first, last = max(start, YEAR_START), min(end, YEAR_END)
    if first > last:
        return 0
    days = (last - first).days + 1
    return round_half_up(Fraction(annual_pence * percent * days, 100 * days_in_year()))


def council_today(now: datetime) -> date:
    """The calendar date in England at this instant (a naive time is taken as UTC)."""
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return aware.astimezone(_LONDON).date()
