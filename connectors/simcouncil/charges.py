"""Council Tax arithmetic in integer pence: band ratios, discounts, instalment schedules."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from connectors.simcouncil.dates import YEAR_END, YEAR_START, days_in_year
from connectors.simcouncil.model import Instalment

# Statutory ninths of band D (Local Government Finance Act 1992, s.5).
BAND_NINTHS: dict[str, int] = {"A": 6, "B": 7, "C": 8, "D": 9, "E": 11, "F": 13, "G": 15, "H": 18}
SPD_PERCENT = 25


def round_half_up(value: Fraction) -> int:
    """Round to whole pence the way a bill is printed (halves up), not banker's rounding."""
    return int((value + Fraction(1, 2)).__floor__())


def band_charge(band_d_pence: int, band: str) -> int:
    """The gross annual charge for a band: band D times the band's ratio."""
    return round_half_up(Fraction(band_d_pence * BAND_NINTHS[band], 9))


def spd_amount(annual_charge_pence: int, effective_from: date) -> int:
    """The year's single-person discount, pro rata by day from the date it takes effect."""
    start = max(effective_from, YEAR_START)
    if start > YEAR_END:
        return 0
    days = (YEAR_END - start).days + 1
    return round_half_up(Fraction(annual_charge_pence * SPD_PERCENT * days, 100 * days_in_year()))


def spread(total_pence: int, count: int) -> list[int]:
    """Split a sum into equal whole-pence parts; the first takes the remainder."""
    if count <= 0:
        return []
    part = total_pence // count
    return [total_pence - part * (count - 1)] + [part] * (count - 1)


def schedule(net_pence: int, due_dates: tuple[date, ...]) -> tuple[Instalment, ...]:
    """A fresh instalment plan that sums exactly to the net charge."""
    amounts = spread(net_pence, len(due_dates))
    return tuple(
        Instalment(n, d, a) for n, (d, a) in enumerate(zip(due_dates, amounts, strict=True), 1)
    )


def respread(
    instalments: tuple[Instalment, ...], net_pence: int, today: date
) -> tuple[Instalment, ...]:
    """Re-plan after a change of net charge: due instalments stand, later ones share the rest."""
    # When less is now owed than has already fallen due, the latest due instalments are cut back
    # (never below zero) so the plan still sums to the net charge; overpayment shows as credit.
    left = net_pence
    fixed: list[Instalment] = []
    for inst in (i for i in instalments if i.due_date <= today):
        amount = min(inst.amount_pence, left)
        fixed.append(Instalment(inst.number, inst.due_date, amount))
        left -= amount
    remaining = [i for i in instalments if i.due_date > today]
    if not remaining:
        # Nothing left to spread over: the last instalment absorbs whatever is unallocated.
        last = fixed[-1]
        fixed[-1] = Instalment(last.number, last.due_date, last.amount_pence + left)
        return tuple(fixed)
    amounts = spread(left, len(remaining))
    return tuple(fixed) + tuple(
        Instalment(i.number, i.due_date, a) for i, a in zip(remaining, amounts, strict=True)
    )


def pounds(pence: int) -> str:
    """Integer pence as a decimal pounds string, e.g. 123456 -> "1234.56", -5 -> "-0.05"."""
    sign = "-" if pence < 0 else ""
    whole, frac = divmod(abs(pence), 100)
    return f"{sign}{whole}.{frac:02d}"


def pence(pounds_text: str) -> int:
    """A decimal pounds string back to integer pence (the inverse of pounds)."""
    value = Fraction(pounds_text) * 100
    if value.denominator != 1:
        raise ValueError(f"{pounds_text!r} is not a whole number of pence")
    return int(value)
