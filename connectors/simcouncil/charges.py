"""Council Tax arithmetic in integer pence: band ratios, discounts, instalment schedules."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from fractions import Fraction

from connectors.simcouncil.dates import YEAR_END, pro_rata, round_half_up
from connectors.simcouncil.model import Instalment, Property

# Statutory ninths of band D (Local Government Finance Act 1992, s.5).
BAND_NINTHS: dict[str, int] = {"A": 6, "B": 7, "C": 8, "D": 9, "E": 11, "F": 13, "G": 15, "H": 18}
SPD_PERCENT = 25


def band_charge(band_d_pence: int, band: str) -> int:
    """The gross annual charge for a band: band D times the band's ratio."""
    return round_half_up(Fraction(band_d_pence * BAND_NINTHS[band], 9))


def spd_amount(annual_charge_pence: int, effective_from: date) -> int:
    """The year's single-person discount, pro rata by day from the date it takes effect."""
    return pro_rata(annual_charge_pence, effective_from, YEAR_END, SPD_PERCENT)


def discount_amount(account: Property, percent: int, effective_from: date) -> int:
    """A discount on an account: percent of its charge for the days it is liable from that date."""
    start = max(effective_from, account.liable_from)
    return pro_rata(account.annual_charge_pence, start, account.liable_to, percent)


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


def refit(account: Property, today: date) -> Property:
    """The account's discounts and instalments fitted again to the days it is now liable.

    After a close (or the reopen that undoes it) the charge changes, so each discount is worked
    out afresh over the new period and the plan re-spread as respread does for a discount.
    """
    discounts = tuple(
        replace(d, amount_pence=discount_amount(account, d.percent, d.effective_from))
        for d in account.discounts
    )
    fitted = replace(account, discounts=discounts)
    return replace(
        fitted, instalments=respread(account.instalments, fitted.net_charge_pence, today)
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
