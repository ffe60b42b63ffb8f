"""The catalogue's promises that do not need a hub: how delays and failures are drawn, and what a
schema-invalid reply looks like (checked against the council's real response schema)."""

from __future__ import annotations

import statistics
from pathlib import Path
from random import Random

from lxml import etree

from connectors.protocol import BusinessError
from gateway.demo import citizens_list
from gateway.routing.faults import (
    Answer,
    CallThrough,
    FaultProfile,
    Raise,
    check,
    corrupt,
    decide,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "connectors" / "simcouncil" / "schemas"


def draws(fault: str, params: dict[str, object], n: int = 4000) -> list[object]:
    _, checked = check(fault, params, "simulated-council")
    rng = Random(20261128)
    profile = FaultProfile("c", fault, checked)
    return [decide(profile, rng) for _ in range(n)]


def delays(params: dict[str, object]) -> list[float]:
    found = draws("latency", params)
    assert all(isinstance(d, CallThrough) for d in found)
    return [d.delay for d in found if isinstance(d, CallThrough)]


def test_fixed_latency_is_exactly_ms() -> None:
    assert set(delays({"ms": 250})) == {0.25}


def test_uniform_latency_stays_within_jitter_of_the_mean() -> None:
    seconds = delays({"ms": 300, "jitter_ms": 100})
    assert 0.2 <= min(seconds) < 0.21 and 0.39 < max(seconds) <= 0.4
    assert abs(statistics.fmean(seconds) - 0.3) < 0.01


def test_normal_latency_has_jitter_as_its_spread_and_never_goes_below_zero() -> None:
    seconds = delays({"ms": 500, "jitter_ms": 50, "distribution": "normal"})
    assert abs(statistics.fmean(seconds) - 0.5) < 0.01
    assert abs(statistics.stdev(seconds) - 0.05) < 0.005
    assert min(delays({"ms": 10, "jitter_ms": 100, "distribution": "normal"})) == 0.0


def test_error_rate_fails_that_fraction_of_calls() -> None:
    for rate, low, high in ((0, 0, 0), (0.3, 0.27, 0.33), (1, 1, 1)):
        found = draws("error_rate", {"rate": rate})
        failed = sum(isinstance(d, Raise) for d in found) / len(found)
        assert low <= failed <= high, (rate, failed)
        assert all(isinstance(d, Raise | CallThrough) for d in found)


def test_business_error_answers_the_error_without_calling_the_back_office() -> None:
    [decision] = draws("business_error", {"location": "/CTaxViewRequest/AccountRef"}, n=1)
    assert isinstance(decision, Answer) and isinstance(decision.outcome, BusinessError)
    [error] = decision.outcome.errors
    assert (error.number, error.raised_by, error.type) == (3001, "Department", "business")
    assert error.locations == ("/CTaxViewRequest/AccountRef",)


def test_a_fault_this_hub_does_not_know_lets_calls_through() -> None:
    # A row written by a newer hub sharing the database: no guessing at what it meant.
    assert decide(FaultProfile("c", "brownout", {}), Random(1)) == CallThrough()


def test_corrupt_breaks_the_class_schema_and_nothing_else() -> None:
    schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "ctax-view-request-v1.xsd")))
    valid = citizens_list()[0].enrolments[0].example_body().encode("utf-8")
    assert schema.validate(etree.fromstring(valid))
    broken = etree.fromstring(corrupt(valid))
    assert not schema.validate(broken)
    original = etree.fromstring(valid)
    assert broken.tag == original.tag
    assert [c.tag for c in broken][1:] == [c.tag for c in original]
    assert corrupt(b"<not-closed>") == b"<not-closed>"
