"""Council Tax arithmetic of the simulated council: ratios, discounts, instalment plans, pounds."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.simcouncil.charges import (
    band_charge,
    pence,
    pounds,
    respread,
    schedule,
    spd_amount,
    spread,
)
from connectors.simcouncil.dates import (
    YEAR_END,
    YEAR_START,
    council_today,
    instalment_due_dates,
    pro_rata,
)

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

DUE = instalment_due_dates(1)


def test_band_charges_follow_the_statutory_ninths() -> None:
    assert band_charge(221_453, "D") == 221_453
    assert band_charge(221_453, "H") == 442_906
    assert band_charge(221_453, "A") == 147_635  # 147635.33
    assert band_charge(900, "E") == 1_100
    assert band_charge(5, "B") == 4  # 3.89 rounds up
    assert band_charge(7, "A") == 5  # 4.67 rounds up; halves can never arise in ninths


def test_spread_gives_the_remainder_to_the_first() -> None:
    assert spread(100_003, 10) == [10_003] + [10_000] * 9
    assert spread(9, 10) == [9] + [0] * 9
    assert spread(5, 0) == []


def test_instalments_fall_april_to_january() -> None:
    assert DUE[0] == date(2026, 4, 1) and DUE[-1] == date(2027, 1, 1)
    assert len(instalment_due_dates(15)) == 10
    assert [i.number for i in schedule(1000, DUE)] == list(range(1, 11))


def test_spd_is_a_quarter_for_the_whole_year_and_pro_rata_after() -> None:
    assert spd_amount(221_453, YEAR_START) == 55_363  # 55363.25
    assert spd_amount(221_453, date(2020, 5, 1)) == 55_363
    assert spd_amount(221_453, YEAR_END) == round(221_453 / 4 / 365)
    assert spd_amount(221_453, YEAR_END + timedelta(days=1)) == 0


def test_pro_rata_counts_the_days_of_the_year_both_ends_included() -> None:
    assert pro_rata(147_635, YEAR_START) == 147_635
    assert pro_rata(147_635, date(2026, 12, 11)) == 44_897  # 111 days: 44897.4
    assert pro_rata(147_635, YEAR_START, date(2026, 11, 30)) == 98_693  # 244 days: 98692.99
    assert pro_rata(147_635, date(2026, 12, 11), YEAR_END, 25) == 11_224  # 11224.30
    assert pro_rata(147_635, date(2026, 12, 11), date(2026, 12, 10)) == 0
    assert pro_rata(147_635, YEAR_END + timedelta(days=1)) == 0
    for start in (date(2020, 5, 1), YEAR_START, date(2026, 10, 1), YEAR_END):
        assert spd_amount(221_453, start) == pro_rata(221_453, start, YEAR_END, 25)


def test_respread_keeps_what_is_due_and_shares_the_rest() -> None:
    plan = schedule(100_000, DUE)
    after = respread(plan, 75_000, date(2026, 6, 15))
    assert [i.amount_pence for i in after[:3]] == [10_000] * 3
    assert sum(i.amount_pence for i in after) == 75_000
    assert [i.amount_pence for i in after[3:]] == [6_432] + [6_428] * 6


def test_respread_cuts_back_when_less_is_owed_than_is_due() -> None:
    after = respread(schedule(100_000, DUE), 75_000, date(2026, 11, 28))
    assert [i.amount_pence for i in after] == [10_000] * 7 + [5_000, 0, 0]


def test_respread_after_the_last_instalment() -> None:
    after = respread(schedule(100_000, DUE), 75_000, date(2027, 3, 1))
    assert [i.amount_pence for i in after] == [10_000] * 7 + [5_000, 0, 0]


@given(
    net=st.integers(min_value=0, max_value=10_000_000),
    cut=st.integers(min_value=0, max_value=10_000_000),
    day=st.integers(min_value=0, max_value=400),
)
def test_respread_always_sums_to_the_net_charge(net: int, cut: int, day: int) -> None:
    new_net = max(net - cut, 0)
    today = YEAR_START - timedelta(days=10) + timedelta(days=day)
    after = respread(schedule(net, DUE), new_net, today)
    assert sum(i.amount_pence for i in after) == new_net
    assert all(i.amount_pence >= 0 for i in after)
    assert [i.due_date for i in after] == list(DUE)


@given(st.integers(min_value=-(10**11), max_value=10**11))
def test_pounds_round_trip(amount: int) -> None:
    assert pence(pounds(amount)) == amount


def test_pounds_format() -> None:
    assert pounds(123_456) == "1234.56"
    assert pounds(5) == "0.05"
    assert pounds(-5) == "-0.05"
    assert pounds(0) == "0.00"


def test_council_today_is_the_date_in_england() -> None:
    from datetime import UTC, datetime

    assert council_today(datetime(2026, 6, 30, 23, 30, tzinfo=UTC)) == date(2026, 7, 1)  # BST
    assert council_today(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == date(2026, 12, 31)
    assert council_today(datetime(2026, 6, 30, 23, 30)) == date(2026, 7, 1)
