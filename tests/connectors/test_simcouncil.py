"""The simulated council back office: dataset, services, rules, idempotency and test in live."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from lxml import etree

from connectors.protocol import (
    BusinessError,
    ConnectorContext,
    Failed,
    Identity,
    Outcome,
    Response,
    Transaction,
)
from connectors.simcouncil import (
    DEMO_COUNCILS,
    SPD_CLASS,
    SPD_NS,
    TIL_NS,
    VIEW_CLASS,
    VIEW_NS,
    SimulatedCouncilConnector,
    account_refs,
    example_request,
    generate,
    spd_eligible_account_refs,
)
from connectors.simcouncil import connector as connector_module
from connectors.simcouncil.charges import BAND_NINTHS, pence
from connectors.simcouncil.dates import YEAR_END, YEAR_START
from connectors.simcouncil.model import SINGLE_PERSON, Address, Person, Property
from connectors.simcouncil.move_in import CLASS as OPEN_CLASS
from connectors.simcouncil.move_in import build_open
from connectors.simcouncil.move_out import CLOSE_CLASS, REOPEN_CLASS, build_close, build_reopen
from connectors.simcouncil.service import Decision, Service, Situation
from connectors.simcouncil.spd import build_request as spd_request
from connectors.simcouncil.validation import BodySpec, schema
from connectors.simcouncil.view import REQUEST as VIEW_REQUEST
from connectors.simcouncil.view import RESPONSE as VIEW_RESPONSE
from connectors.simcouncil.view import build_request as view_request
from connectors.simcouncil.xmlbody import child, root

SUNDERLAND = "E08000024"
SEDGEMOOR = "E07000188"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


# -- helpers ---------------------------------------------------------------------------------


def make_ctx(data_dir: Path, code: str = SUNDERLAND, now: datetime = NOW) -> ConnectorContext:
    return ConnectorContext("simulated-council", {"council": code}, data_dir, clock=lambda: now)


def make_tx(
    class_: str,
    body: bytes,
    account_ref: str | None,
    *,
    correlation_id: str | None = None,
    test_in_live: bool = False,
    gateway_test: bool = False,
    organisation: str = SUNDERLAND,
) -> Transaction:
    """A transaction as the hub would route it: Keys carry the enrolment's CTaxAccountRef."""
    keys = {} if account_ref is None else {"CTaxAccountRef": account_ref}
    return Transaction(
        correlation_id=correlation_id or uuid.uuid4().hex.upper(),
        class_=class_,
        organisation=organisation,
        keys=keys,
        body=body,
        identity=Identity(user_id="8CK3SA26U1G4", auth_method="clear", auth_level=1),
        gateway_test=gateway_test,
        test_in_live=test_in_live,
    )


@dataclass(frozen=True)
class ViewReply:
    gross: int
    net: int
    balance: int
    discounts: list[tuple[str, int]]
    instalments: list[int]
    payments: list[int]


def read_view(outcome: Outcome) -> ViewReply:
    assert isinstance(outcome, Response), outcome
    doc = etree.fromstring(outcome.body)
    assert schema(VIEW_RESPONSE.schema_file).validate(doc)
    ns = {"v": VIEW_NS}

    def money(path: str) -> int:
        return pence(str(doc.findtext(path, namespaces=ns)))

    def texts(path: str) -> list[str]:
        return [str(t) for t in cast(list[str], doc.xpath(path, namespaces=ns))]

    return ViewReply(
        gross=money("v:AnnualCharge"),
        net=money("v:NetCharge"),
        balance=money("v:Balance"),
        discounts=list(
            zip(
                texts("v:Discounts/v:Discount/v:Type/text()"),
                [pence(t) for t in texts("v:Discounts/v:Discount/v:Amount/text()")],
                strict=True,
            )
        ),
        instalments=[pence(t) for t in texts("v:Instalments/v:Instalment/v:Amount/text()")],
        payments=[pence(t) for t in texts("v:Payments/v:Payment/v:Amount/text()")],
    )


def spd_text(outcome: Outcome, name: str) -> str:
    assert isinstance(outcome, Response), outcome
    doc = etree.fromstring(outcome.body)
    assert schema("ctax-spd-response-v1.xsd").validate(doc)
    return str(doc.findtext(f"{{{SPD_NS}}}{name}"))


def half_up(numerator: int, denominator: int) -> int:
    """Bills round halves up, unlike Python's round()."""
    return (2 * numerator + denominator) // (2 * denominator)


def only_error(outcome: Outcome) -> tuple[int, str, tuple[str, ...]]:
    assert isinstance(outcome, BusinessError), outcome
    assert len(outcome.errors) == 1, outcome.errors
    e = outcome.errors[0]
    return e.number, e.text, e.locations


def account_where(code: str, *, liable: int, discounted: bool) -> Property:
    return next(
        p
        for p in generate(code)
        if len(p.liable) == liable and p.has_discount(SINGLE_PERSON) == discounted
    )


def eligible(code: str = SUNDERLAND, index: int = 0) -> Property:
    ref = spd_eligible_account_refs(code)[index]
    return next(p for p in generate(code) if p.account_ref == ref)


@pytest.fixture
async def council(tmp_path: Path) -> AsyncIterator[SimulatedCouncilConnector]:
    connector = SimulatedCouncilConnector(make_ctx(tmp_path))
    await connector.start()
    yield connector
    await connector.aclose()


async def view(c: SimulatedCouncilConnector, ref: str) -> ViewReply:
    return read_view(await c.handle(make_tx(VIEW_CLASS, view_request(ref), ref), c.ctx))


async def apply_spd(
    c: SimulatedCouncilConnector,
    prop: Property,
    *,
    applicant: Person | None = None,
    sole_adult: bool = True,
    effective_from: date = YEAR_START,
    **tx_options: Any,
) -> Outcome:
    body = spd_request(
        prop.account_ref,
        applicant or prop.liable[0],
        sole_adult=sole_adult,
        effective_from=effective_from,
    )
    tx = make_tx(SPD_CLASS, body, prop.account_ref, **tx_options)
    return await c.handle(tx, c.ctx)


# -- the dataset -----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [SUNDERLAND, SEDGEMOOR])
def test_dataset_is_deterministic_and_well_formed(code: str) -> None:
    info = DEMO_COUNCILS[code]
    props = generate(code)
    assert props == generate(code)
    assert len(props) >= 200
    refs = [p.account_ref for p in props]
    assert refs == account_refs(code)
    assert len(set(refs)) == len(refs)
    assert all(len(r) == 11 and r.startswith(info.prefix) and r[3:].isdigit() for r in refs)
    uprns = [p.uprn for p in props]
    assert len(set(uprns)) == len(uprns)
    assert all(len(u) == 12 and u.isdigit() for u in uprns)
    for p in props:
        assert p.annual_charge_pence == round(info.band_d_pence * BAND_NINTHS[p.band] / 9)
        assert len(p.instalments) == 10
        assert sum(i.amount_pence for i in p.instalments) == p.net_charge_pence
        assert [i.due_date.month for i in p.instalments] == [4, 5, 6, 7, 8, 9, 10, 11, 12, 1]
        assert p.balance_pence == p.net_charge_pence - sum(x.amount_pence for x in p.payments)
        assert 1 <= len(p.liable) <= 3
        if p.has_discount(SINGLE_PERSON):
            assert len(p.liable) == 1
            assert p.discount_pence == half_up(p.annual_charge_pence, 4)
    assert any(p.payments for p in props) and any(not p.payments for p in props)
    assert any(p.address.saon for p in props)


def test_dataset_is_the_same_in_a_fresh_interpreter() -> None:
    # Hash randomisation differs per process; the data must not depend on it.
    script = (
        "import hashlib, sys; from connectors.simcouncil.dataset import generate; "
        "print(hashlib.sha256(repr(generate(sys.argv[1])).encode()).hexdigest())"
    )
    here = hashlib.sha256(repr(generate(SEDGEMOOR)).encode()).hexdigest()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script, SEDGEMOOR], env=env, capture_output=True, check=True
        )
        assert out.stdout.decode().strip() == here


@pytest.mark.parametrize("code", [SUNDERLAND, SEDGEMOOR])
def test_band_ratios_band_d_against_band_h(code: str) -> None:
    props = generate(code)
    band_d = next(p for p in props if p.band == "D")
    band_h = next(p for p in props if p.band == "H")
    band_a = next(p for p in props if p.band == "A")
    assert band_d.annual_charge_pence == DEMO_COUNCILS[code].band_d_pence
    assert band_h.annual_charge_pence == 2 * band_d.annual_charge_pence  # 18/9
    assert abs(band_a.annual_charge_pence * 9 - band_d.annual_charge_pence * 6) < 9  # 6/9


def test_councils_differ_and_refs_carry_prefixes() -> None:
    assert generate(SUNDERLAND) != generate(SEDGEMOOR)
    assert account_refs(SUNDERLAND)[0].startswith("SUN")
    assert account_refs(SEDGEMOOR)[0].startswith("SED")
    towns = {p.address.town for p in generate(SEDGEMOOR)}
    assert {"Bridgwater", "Burnham-on-Sea", "Highbridge"} <= towns
    districts = {p.address.postcode.split()[0] for p in generate(SUNDERLAND)}
    assert districts <= {"SR1", "SR2", "SR3", "SR4", "SR5", "SR6"}


# -- construction and the store --------------------------------------------------------------


def test_unknown_or_missing_council_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown council"):
        SimulatedCouncilConnector(make_ctx(tmp_path, code="E99999999"))
    with pytest.raises(ValueError, match="council"):
        SimulatedCouncilConnector(ConnectorContext("sim", {}, tmp_path))


async def test_store_is_its_own_sqlite_file_in_wal_mode(
    council: SimulatedCouncilConnector, tmp_path: Path
) -> None:
    assert council.name == "simulated-council" and council.api_version == 1
    path = tmp_path / f"{SUNDERLAND}.sqlite"
    assert path.exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM accounts").fetchone()[0] == len(
            generate(SUNDERLAND)
        )


async def test_store_for_another_council_is_not_reused(tmp_path: Path) -> None:
    first_council = SimulatedCouncilConnector(make_ctx(tmp_path, SEDGEMOOR))
    await first_council.start()
    await first_council.aclose()
    (tmp_path / f"{SEDGEMOOR}.sqlite").rename(tmp_path / f"{SUNDERLAND}.sqlite")
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"{SEDGEMOOR}.sqlite{suffix}").unlink(missing_ok=True)
    with pytest.raises(ValueError, match="holds council"):
        await SimulatedCouncilConnector(make_ctx(tmp_path)).start()


# -- LA-CTAX-VIEW ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [SUNDERLAND, SEDGEMOOR])
async def test_view_shows_the_account(tmp_path: Path, code: str) -> None:
    prop = account_where(code, liable=1, discounted=True)
    c = SimulatedCouncilConnector(make_ctx(tmp_path, code))
    await c.start()
    try:
        reply = await view(c, prop.account_ref)
    finally:
        await c.aclose()
    assert reply.gross == prop.annual_charge_pence
    assert reply.discounts == [(SINGLE_PERSON, prop.discount_pence)]
    assert reply.net == prop.net_charge_pence
    assert reply.instalments == [i.amount_pence for i in prop.instalments]
    assert reply.payments == [p.amount_pence for p in prop.payments]
    assert reply.balance == reply.net - sum(reply.payments)


async def test_view_money_is_decimal_pounds(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    outcome = await council.handle(
        make_tx(VIEW_CLASS, view_request(prop.account_ref), prop.account_ref), council.ctx
    )
    assert isinstance(outcome, Response)
    doc = etree.fromstring(outcome.body)
    assert doc.tag == f"{{{VIEW_NS}}}CTaxViewResponse"
    gross = doc.findtext(f"{{{VIEW_NS}}}AnnualCharge")
    assert gross == f"{prop.annual_charge_pence // 100}.{prop.annual_charge_pence % 100:02d}"
    address = doc.find(f"{{{VIEW_NS}}}Property/{{{VIEW_NS}}}BS7666Address")
    assert address is not None
    assert address.findtext(f"{{{VIEW_NS}}}UniquePropertyReferenceNumber") == prop.uprn
    assert address.findtext(f"{{{VIEW_NS}}}PostCode") == prop.address.postcode


async def test_key_mismatch_is_refused_with_a_location(council: SimulatedCouncilConnector) -> None:
    mine, other = account_refs(SUNDERLAND)[:2]
    outcome = await council.handle(make_tx(VIEW_CLASS, view_request(other), mine), council.ctx)
    number, text, locations = only_error(outcome)
    assert number == 3001 and mine in text
    assert locations == ("/CTaxViewRequest/AccountRef",)


async def test_missing_key_is_refused(council: SimulatedCouncilConnector) -> None:
    ref = account_refs(SUNDERLAND)[0]
    outcome = await council.handle(make_tx(VIEW_CLASS, view_request(ref), None), council.ctx)
    assert only_error(outcome)[0] == 3001


async def test_unknown_account_is_refused(council: SimulatedCouncilConnector) -> None:
    ref = "SUN99999999"
    assert ref not in account_refs(SUNDERLAND)
    for body in (view_request(ref), spd_request(ref, Person("Ann", "Other"))):
        class_ = VIEW_CLASS if b"View" in body else SPD_CLASS
        number, text, locations = only_error(
            await council.handle(make_tx(class_, body, ref), council.ctx)
        )
        assert number == 3001 and "no account" in text
        assert locations[0].endswith("/AccountRef")


# -- LA-CTAX-SPD -----------------------------------------------------------------------------


async def test_spd_accepted_changes_the_next_view(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    before = await view(council, prop.account_ref)
    outcome = await apply_spd(council, prop)
    assert spd_text(outcome, "Status") == "accepted"
    assert spd_text(outcome, "Reference") == "SUN-SPD-000001"
    discount = half_up(prop.annual_charge_pence, 4)
    after = await view(council, prop.account_ref)
    assert after.gross == before.gross
    assert after.discounts == [(SINGLE_PERSON, discount)]
    assert after.net == before.net - discount
    assert after.balance == before.balance - discount
    assert sum(after.instalments) == after.net
    assert all(a >= 0 for a in after.instalments)
    assert pence(spd_text(outcome, "NewNetCharge")) == after.net
    assert pence(spd_text(outcome, "NewBalance")) == after.balance
    applications = await council.store.spd_applications(prop.account_ref)
    assert [a.reference for a in applications] == ["SUN-SPD-000001"]


async def test_spd_respreads_only_the_instalments_not_yet_due(tmp_path: Path) -> None:
    c = SimulatedCouncilConnector(make_ctx(tmp_path, now=datetime(2026, 6, 15, tzinfo=UTC)))
    await c.start()
    try:
        prop = eligible()
        before = await view(c, prop.account_ref)
        assert isinstance(await apply_spd(c, prop), Response)
        after = await view(c, prop.account_ref)
    finally:
        await c.aclose()
    assert after.instalments[:3] == before.instalments[:3]  # April-June already due on 15 June
    assert sum(after.instalments[3:]) == after.net - sum(before.instalments[:3])
    assert max(after.instalments[3:]) - min(after.instalments[3:]) <= 7  # remainder goes first


async def test_spd_from_mid_year_is_pro_rata(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    outcome = await apply_spd(council, prop, effective_from=date(2026, 10, 1))
    amount = pence(spd_text(outcome, "DiscountAmount"))
    assert amount == half_up(prop.annual_charge_pence * 182, 4 * 365)  # 1 Oct to 31 Mar


async def test_second_spd_is_refused(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    assert isinstance(await apply_spd(council, prop), Response)
    number, text, locations = only_error(await apply_spd(council, prop))
    assert number == 3001 and "already has" in text
    assert locations == ("/CTaxSPDRequest/AccountRef",)


async def test_spd_refused_when_the_discount_is_already_held(
    council: SimulatedCouncilConnector,
) -> None:
    prop = account_where(SUNDERLAND, liable=1, discounted=True)
    number, _, locations = only_error(await apply_spd(council, prop))
    assert number == 3001 and locations == ("/CTaxSPDRequest/AccountRef",)


@pytest.mark.parametrize(
    ("change", "location", "words"),
    [
        ({"sole_adult": False}, "/CTaxSPDRequest/SoleAdultDeclaration", "only adult"),
        ({"effective_from": date(2026, 3, 31)}, "/CTaxSPDRequest/EffectiveFrom", "before"),
        ({"effective_from": date(2027, 1, 15)}, "/CTaxSPDRequest/EffectiveFrom", "30 days"),
        ({"effective_from": date(2027, 4, 1)}, "/CTaxSPDRequest/EffectiveFrom", "after"),
        ({"applicant": Person("Zebedee", "Nobody")}, "/CTaxSPDRequest/Applicant", "not a liable"),
    ],
)
async def test_spd_business_rules(
    council: SimulatedCouncilConnector, change: dict[str, Any], location: str, words: str
) -> None:
    prop = eligible()
    number, text, locations = only_error(await apply_spd(council, prop, **change))
    assert number == 3001 and words in text
    assert locations == (location,)
    assert (await view(council, prop.account_ref)).discounts == []
    assert await council.store.spd_applications() == []


async def test_spd_applicant_name_matches_regardless_of_case(
    council: SimulatedCouncilConnector,
) -> None:
    prop = eligible()
    who = prop.liable[0]
    shouted = Person(who.forename.upper(), who.surname.lower())
    assert isinstance(await apply_spd(council, prop, applicant=shouted), Response)


async def test_spd_refused_when_others_are_liable(council: SimulatedCouncilConnector) -> None:
    prop = account_where(SUNDERLAND, liable=2, discounted=False)
    number, text, locations = only_error(await apply_spd(council, prop))
    assert number == 3001 and "liable people" in text
    assert locations == ("/CTaxSPDRequest/AccountRef",)


async def test_spd_reports_every_failed_rule(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    outcome = await apply_spd(
        council,
        prop,
        sole_adult=False,
        applicant=Person("No", "One"),
        effective_from=date(2020, 1, 1),
    )
    assert isinstance(outcome, BusinessError)
    assert [e.locations[0].rsplit("/", 1)[1] for e in outcome.errors] == [
        "Applicant",
        "SoleAdultDeclaration",
        "EffectiveFrom",
    ]
    assert {e.number for e in outcome.errors} == {3001}
    assert all(e.type == "business" for e in outcome.errors)


# -- idempotency -----------------------------------------------------------------------------


async def test_redelivery_answers_the_same_and_applies_once(tmp_path: Path) -> None:
    prop = eligible()
    c = SimulatedCouncilConnector(make_ctx(tmp_path))
    await c.start()
    first_answer = await apply_spd(c, prop, correlation_id="A" * 32)
    again = await apply_spd(c, prop, correlation_id="A" * 32)
    assert again == first_answer
    net_after = (await view(c, prop.account_ref)).net
    await c.aclose()

    # A new instance on the same data directory: as after a hub crash and restart.
    later = datetime(2026, 12, 20, tzinfo=UTC)
    reopened = SimulatedCouncilConnector(make_ctx(tmp_path, now=later))
    await reopened.start()
    try:
        assert await apply_spd(reopened, prop, correlation_id="A" * 32) == first_answer
        assert len(await reopened.store.spd_applications(prop.account_ref)) == 1
        assert (await view(reopened, prop.account_ref)).net == net_after
    finally:
        await reopened.aclose()


async def test_redelivered_refusal_is_the_first_refusal(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    refused = await apply_spd(council, prop, sole_adult=False, correlation_id="B" * 32)
    assert isinstance(refused, BusinessError)
    # Even though a fresh evaluation would now give a different answer, the first one stands.
    assert isinstance(await apply_spd(council, prop), Response)
    assert await apply_spd(council, prop, sole_adult=False, correlation_id="B" * 32) == refused


async def test_concurrent_redeliveries_apply_once(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    answers = await asyncio.gather(
        *(apply_spd(council, prop, correlation_id="C" * 32) for _ in range(5))
    )
    assert all(a == answers[0] for a in answers)
    assert isinstance(answers[0], Response)
    assert len(await council.store.spd_applications()) == 1


async def test_deliveries_committed_together_fail_alone(council: SimulatedCouncilConnector) -> None:
    # Concurrent deliveries share one council transaction (one fsync); one whose decision
    # fails must not take the others' answers with it, nor leave a record of its own.
    from connectors.simcouncil.store import Delivery, Write

    def delivery(n: int) -> Delivery:
        return Delivery(f"{n:032d}", VIEW_CLASS, "0" * 64, False, NOW)

    def decide(n: int) -> Any:
        def decision(account: Property | None, _next: int) -> Write:
            if n == 3:
                raise ValueError("the council's system fell over")
            return Write(Response(body=f"<Answer n='{n}'/>".encode()))

        return decision

    results = await asyncio.gather(
        *(council.store.apply_once(delivery(n), None, decide(n)) for n in range(6)),
        return_exceptions=True,
    )
    assert isinstance(results[3], ValueError)
    assert await council.store.recorded(f"{3:032d}") is None
    for n in (0, 1, 2, 4, 5):
        recorded = await council.store.recorded(f"{n:032d}")
        assert recorded is not None and recorded.outcome == Response(f"<Answer n='{n}'/>".encode())


async def test_gateway_test_is_recorded(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    outcome = await apply_spd(council, prop, gateway_test=True, correlation_id="D" * 32)
    assert isinstance(outcome, Response)
    (application,) = await council.store.spd_applications()
    assert application.gateway_test is True
    recorded = await council.store.recorded("D" * 32)
    assert recorded is not None and recorded.gateway_test and recorded.class_ == SPD_CLASS


# -- test in live ----------------------------------------------------------------------------


async def test_test_in_live_checks_but_changes_nothing(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    before = await view(council, prop.account_ref)
    outcome = await apply_spd(council, prop, test_in_live=True, correlation_id="E" * 32)
    assert isinstance(outcome, Response)
    doc = etree.fromstring(outcome.body)
    assert doc.tag == f"{{{TIL_NS}}}TestInLiveReceipt"
    assert schema("ctax-til-receipt-v1.xsd").validate(doc)
    assert doc.findtext(f"{{{TIL_NS}}}Advisory") == "Test in live: checked, not processed"
    assert doc.findtext(f"{{{TIL_NS}}}Class") == "LA-CTAX-SPD-TIL"
    assert await view(council, prop.account_ref) == before
    assert await council.store.spd_applications() == []
    assert await council.store.recorded("E" * 32) is None
    # The live submission afterwards is still accepted: nothing was used up.
    assert isinstance(await apply_spd(council, prop), Response)


async def test_test_in_live_still_applies_the_rules(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    outcome = await apply_spd(council, prop, sole_adult=False, test_in_live=True)
    assert only_error(outcome)[0] == 3001


async def test_til_suffix_left_on_the_class_is_test_in_live(
    council: SimulatedCouncilConnector,
) -> None:
    prop = eligible()
    body = spd_request(prop.account_ref, prop.liable[0])
    outcome = await council.handle(make_tx(SPD_CLASS + "-TIL", body, prop.account_ref), council.ctx)
    assert isinstance(outcome, Response) and b"TestInLiveReceipt" in outcome.body
    assert await council.store.spd_applications() == []


async def test_view_test_in_live_gives_the_advisory(council: SimulatedCouncilConnector) -> None:
    ref = account_refs(SUNDERLAND)[0]
    tx = make_tx(VIEW_CLASS, view_request(ref), ref, test_in_live=True)
    outcome = await council.handle(tx, council.ctx)
    assert isinstance(outcome, Response) and b"checked, not processed" in outcome.body


# -- a move: open, close and reopen ----------------------------------------------------------

MOVER = Person("Morgan", "Mover")
ROKER = Address("14", "Roker Terrace", "Sunderland", "SR6 9NN", locality="Roker")


def free_uprn(n: int = 1) -> str:
    """A UPRN the council holds no account for."""
    taken = {p.uprn for p in generate(SUNDERLAND)}
    return str(next(u for u in range(100_000_000_000 + n, 10**12) if str(u) not in taken))


def days_from(start: date, end: date = YEAR_END) -> int:
    return (end - start).days + 1


async def open_account(c: SimulatedCouncilConnector, move_in: date, uprn: str = "") -> str:
    body = build_open(MOVER, ROKER, uprn or free_uprn(), move_in)
    outcome = await c.handle(make_tx(OPEN_CLASS, body, None), c.ctx)
    assert isinstance(outcome, Response), outcome
    return str(etree.fromstring(outcome.body).findtext("{*}AccountRef"))


async def close(c: SimulatedCouncilConnector, ref: str, move_out: date, **options: Any) -> Outcome:
    return await c.handle(make_tx(CLOSE_CLASS, build_close(ref, move_out), ref, **options), c.ctx)


async def reopen(c: SimulatedCouncilConnector, ref: str, **options: Any) -> Outcome:
    body = build_reopen(ref, "move cancelled")
    return await c.handle(make_tx(REOPEN_CLASS, body, ref, **options), c.ctx)


async def test_view_of_an_account_opened_by_a_move_in(council: SimulatedCouncilConnector) -> None:
    # Moving in on 10 Nov (Sunderland's instalments fall on the 1st): December and January remain.
    ref = await open_account(council, date(2026, 11, 10))
    outcome = await council.handle(make_tx(VIEW_CLASS, view_request(ref), ref), council.ctx)
    reply = read_view(outcome)
    assert len(reply.instalments) == 2
    assert sum(reply.instalments) == reply.net == reply.balance
    assert isinstance(outcome, Response)
    doc = etree.fromstring(outcome.body)
    assert doc.findtext(f"{{{VIEW_NS}}}OpenedFrom") == "2026-11-10"
    dues = doc.findall(f"{{{VIEW_NS}}}Instalments/{{{VIEW_NS}}}Instalment")
    assert [i.findtext(f"{{{VIEW_NS}}}DueDate") for i in dues] == ["2026-12-01", "2027-01-01"]
    assert [i.findtext(f"{{{VIEW_NS}}}Number") for i in dues] == ["1", "2"]


async def test_an_account_opened_mid_year_is_charged_by_the_day(
    council: SimulatedCouncilConnector,
) -> None:
    ref = await open_account(council, date(2026, 12, 11))
    account = await council.store.account(ref)
    assert account is not None and account.opened_from == date(2026, 12, 11)
    gross = account.annual_charge_pence
    part = half_up(gross * days_from(date(2026, 12, 11)), 365)  # 111 days of 365
    assert gross == 147_635 and part == 44_897  # band A at Sunderland: £1,476.35, £448.97
    reply = await view(council, ref)
    assert (reply.gross, reply.net, reply.balance) == (gross, part, part)
    assert reply.instalments == [part]  # after the last instalment date but one: a single one
    # Opened on the first day of the year, the whole year in the usual ten.
    whole = await view(council, await open_account(council, YEAR_START, free_uprn(50)))
    assert whole.net == whole.gross and len(whole.instalments) == 10


async def test_the_demo_accounts_show_the_same_figures(council: SimulatedCouncilConnector) -> None:
    # DEMO0SUN0001's account, as the README's demo shows it: pro rata by day changes nothing
    # for an account liable all year.
    reply = await view(council, "SUN03608702")
    assert (reply.gross, reply.net, reply.balance) == (221_453, 221_453, 66_435)


async def test_spd_is_refused_on_a_closed_account(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    assert isinstance(await close(council, prop.account_ref, date(2026, 11, 1)), Response)
    for start in (date(2026, 12, 1), date(2026, 11, 1)):
        number, text, locations = only_error(await apply_spd(council, prop, effective_from=start))
        assert number == 3001 and "closed from 2026-11-01" in text
        assert locations == ("/CTaxSPDRequest/EffectiveFrom",)
    assert await council.store.spd_applications() == []
    # Before the move out there are days to discount, and only those are.
    outcome = await apply_spd(council, prop, effective_from=date(2026, 10, 1))
    gross = prop.annual_charge_pence
    expected = half_up(gross * 25 * days_from(date(2026, 10, 1), date(2026, 10, 31)), 100 * 365)
    assert pence(spd_text(outcome, "DiscountAmount")) == expected


async def test_spd_cannot_start_before_the_account_opened(
    council: SimulatedCouncilConnector,
) -> None:
    ref = await open_account(council, date(2026, 11, 10))
    account = await council.store.account(ref)
    assert account is not None
    number, text, locations = only_error(
        await apply_spd(council, account, effective_from=YEAR_START)
    )
    assert number == 3001 and "before account" in text and "2026-11-10" in text
    assert locations == ("/CTaxSPDRequest/EffectiveFrom",)
    outcome = await apply_spd(council, account, effective_from=date(2026, 11, 10))
    gross = account.annual_charge_pence
    discount = half_up(gross * 25 * days_from(date(2026, 11, 10)), 100 * 365)
    assert pence(spd_text(outcome, "DiscountAmount")) == discount
    after = await view(council, ref)
    assert after.net == half_up(gross * days_from(date(2026, 11, 10)), 365) - discount
    assert sum(after.instalments) == after.net


async def test_a_closed_account_is_charged_to_the_day_before_the_move_out(
    council: SimulatedCouncilConnector,
) -> None:
    prop = account_where(SUNDERLAND, liable=1, discounted=True)
    before = await view(council, prop.account_ref)
    assert isinstance(await close(council, prop.account_ref, date(2026, 12, 1)), Response)
    closed = await view(council, prop.account_ref)
    days = days_from(YEAR_START, date(2026, 11, 30))  # April to November: 244 days
    discount = half_up(prop.annual_charge_pence * 25 * days, 100 * 365)
    assert closed.discounts == [(SINGLE_PERSON, discount)]
    assert closed.net == half_up(prop.annual_charge_pence * days, 365) - discount
    assert closed.balance == closed.net - sum(closed.payments)
    assert sum(closed.instalments) == closed.net and min(closed.instalments) >= 0
    # Undone by the reopen: the whole year's charge and discount again. Instalments already due
    # that the close cut back stay as billed; those still to come take up the difference.
    assert isinstance(await reopen(council, prop.account_ref), Response)
    reopened = await view(council, prop.account_ref)
    assert (reopened.net, reopened.balance, reopened.discounts) == (
        before.net,
        before.balance,
        before.discounts,
    )
    assert sum(reopened.instalments) == reopened.net


async def test_closed_the_day_after_the_year_began_the_view_is_still_valid(
    council: SimulatedCouncilConnector,
) -> None:
    # One day's charge, less a quarter of it: the discount shrinks with the charge.
    prop = account_where(SUNDERLAND, liable=1, discounted=True)
    assert isinstance(await close(council, prop.account_ref, date(2026, 4, 2)), Response)
    closed = await view(council, prop.account_ref)
    day = half_up(prop.annual_charge_pence, 365)
    assert closed.net == day - half_up(prop.annual_charge_pence * 25, 100 * 365)
    assert closed.balance == closed.net - sum(closed.payments) < 0  # paid more: in credit


async def test_close_refuses_a_move_out_before_the_account_opened(
    council: SimulatedCouncilConnector,
) -> None:
    ref = await open_account(council, date(2026, 11, 10))
    number, text, locations = only_error(await close(council, ref, date(2026, 11, 1)))
    assert number == 3001 and "before the account opened" in text
    assert locations == ("/CTaxCloseRequest/MoveOutDate",)


async def test_open_test_in_live_gives_the_advisory_and_opens_nothing(
    council: SimulatedCouncilConnector,
) -> None:
    uprn = free_uprn()
    body = build_open(MOVER, ROKER, uprn, date(2026, 12, 11))
    outcome = await council.handle(make_tx(OPEN_CLASS, body, None, test_in_live=True), council.ctx)
    assert isinstance(outcome, Response), outcome
    doc = etree.fromstring(outcome.body)
    assert schema("ctax-til-receipt-v1.xsd").validate(doc)
    assert doc.findtext(f"{{{TIL_NS}}}Class") == "LA-CTAX-OPEN-TIL"
    would_be = doc.findtext(f"{{{TIL_NS}}}AccountRef")
    assert await council.store.account_for_uprn(uprn) is None
    assert would_be == await council.store.next_account_ref()
    # The live open afterwards takes that reference: test in live used nothing up.
    assert await open_account(council, date(2026, 12, 11), uprn) == would_be
    # And test in live still applies the open's rules: the property now has an account.
    again = await council.handle(make_tx(OPEN_CLASS + "-TIL", body, None), council.ctx)
    assert only_error(again)[0] == 3001


async def test_close_and_reopen_test_in_live_change_nothing(
    council: SimulatedCouncilConnector,
) -> None:
    prop = account_where(SUNDERLAND, liable=1, discounted=True)
    ref = prop.account_ref
    before = await council.store.account(ref)
    outcome = await close(council, ref, date(2026, 12, 1), test_in_live=True)
    assert isinstance(outcome, Response) and b"<Class>LA-CTAX-CLOSE-TIL</Class>" in outcome.body
    assert f"<AccountRef>{ref}</AccountRef>".encode() in outcome.body
    assert await council.store.account(ref) == before
    assert isinstance(await close(council, ref, date(2026, 12, 1)), Response)
    closed = await council.store.account(ref)
    outcome = await reopen(council, ref, test_in_live=True)
    assert isinstance(outcome, Response) and b"<Class>LA-CTAX-REOPEN-TIL</Class>" in outcome.body
    assert await council.store.account(ref) == closed


# -- bodies: schema, safety, classes ---------------------------------------------------------


async def test_schema_invalid_request_gives_4xxx_with_location(
    council: SimulatedCouncilConnector,
) -> None:
    ref = account_refs(SUNDERLAND)[0]
    bad = view_request(ref).replace(ref.encode(), b"not-a-ref")
    number, _, locations = only_error(
        await council.handle(make_tx(VIEW_CLASS, bad, ref), council.ctx)
    )
    assert number == 4001 and locations == ("/CTaxViewRequest/AccountRef",)


async def test_missing_element_points_at_it(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    request = root(SPD_NS, "CTaxSPDRequest")
    child(request, "AccountRef", prop.account_ref)
    applicant = child(request, "Applicant")
    child(applicant, "Forename", "Ann")
    child(applicant, "Surname", "Other")
    child(request, "SoleAdultDeclaration", "true")
    body = etree.tostring(request)
    outcome = await council.handle(make_tx(SPD_CLASS, body, prop.account_ref), council.ctx)
    number, _, locations = only_error(outcome)
    assert number == 4002 and locations == ("/CTaxSPDRequest/EffectiveFrom",)


async def test_error_types_are_schema_for_4xxx(council: SimulatedCouncilConnector) -> None:
    prop = eligible()
    body = spd_request(prop.account_ref, prop.liable[0]).replace(b">true<", b">perhaps<")
    outcome = await council.handle(make_tx(SPD_CLASS, body, prop.account_ref), council.ctx)
    assert isinstance(outcome, BusinessError)
    (error,) = outcome.errors
    assert (error.number, error.type, error.raised_by) == (4001, "schema", "Department")
    assert error.locations == ("/CTaxSPDRequest/SoleAdultDeclaration",)


async def test_wrong_document_for_the_class(council: SimulatedCouncilConnector) -> None:
    ref = account_refs(SUNDERLAND)[0]
    outcome = await council.handle(make_tx(SPD_CLASS, view_request(ref), ref), council.ctx)
    number, _, locations = only_error(outcome)
    assert number == 4004 and locations == ("/CTaxViewRequest",)


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<CTaxViewRequest xmlns="urn:govtalk-hub:la:ctax:view:v1">'
        b"<AccountRef>&b;</AccountRef></CTaxViewRequest>",
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<CTaxViewRequest xmlns="urn:govtalk-hub:la:ctax:view:v1">'
        b"<AccountRef>&x;</AccountRef></CTaxViewRequest>",
        b'<!DOCTYPE CTaxViewRequest><CTaxViewRequest xmlns="urn:govtalk-hub:la:ctax:view:v1">'
        b"<AccountRef>SUN00000001</AccountRef></CTaxViewRequest>",
    ],
)
async def test_doctype_is_refused(council: SimulatedCouncilConnector, body: bytes) -> None:
    ref = account_refs(SUNDERLAND)[0]
    number, text, locations = only_error(
        await council.handle(make_tx(VIEW_CLASS, body, ref), council.ctx)
    )
    assert number == 4005 and "DOCTYPE" in text and locations == ("/",)


async def test_not_well_formed_is_refused(council: SimulatedCouncilConnector) -> None:
    ref = account_refs(SUNDERLAND)[0]
    outcome = await council.handle(make_tx(VIEW_CLASS, b"<CTaxViewRequest", ref), council.ctx)
    assert only_error(outcome)[0] == 4000


async def test_unknown_class_is_not_served(council: SimulatedCouncilConnector) -> None:
    ref = account_refs(SUNDERLAND)[0]
    outcome = await council.handle(make_tx("HMRC-VAT-DEC", view_request(ref), ref), council.ctx)
    assert isinstance(outcome, Failed) and "not served" in outcome.reason


async def test_an_invalid_reply_is_a_failure_and_changes_nothing(
    council: SimulatedCouncilConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(request: etree._Element, account: Property | None, s: Situation) -> Decision:
        reply = root(VIEW_NS, "CTaxViewResponse")
        child(reply, "AccountRef", "oops")
        return Decision(reply=reply)

    bad = Service("LA-CTAX-BROKEN", VIEW_REQUEST, VIEW_RESPONSE, broken)
    monkeypatch.setitem(connector_module.SERVICES, bad.class_, bad)
    ref = account_refs(SUNDERLAND)[0]
    tx = make_tx(bad.class_, view_request(ref), ref, correlation_id="F" * 32)
    outcome = await council.handle(tx, council.ctx)
    assert isinstance(outcome, Failed) and "invalid reply" in outcome.reason
    assert await council.store.recorded("F" * 32) is None


def test_request_schemas_accept_only_requests() -> None:
    spec = BodySpec(VIEW_NS, "CTaxViewResponse", "ctax-view-request-v1.xsd")
    doc = etree.fromstring(f'<{spec.root} xmlns="{VIEW_NS}"/>'.encode())
    assert not schema(spec.schema_file).validate(doc)


# -- examples --------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [SUNDERLAND, SEDGEMOOR])
async def test_example_requests_are_accepted(tmp_path: Path, code: str) -> None:
    c = SimulatedCouncilConnector(make_ctx(tmp_path, code))
    await c.start()
    try:
        refs = spd_eligible_account_refs(code)
        assert len(refs) >= 10
        for ref in refs:
            for class_ in (VIEW_CLASS, SPD_CLASS + "-TIL", SPD_CLASS):
                body = example_request(class_, ref, code)
                outcome = await c.handle(make_tx(class_, body, ref, organisation=code), c.ctx)
                assert isinstance(outcome, Response), (class_, ref, outcome)
        assert len(await c.store.spd_applications()) == len(refs)
    finally:
        await c.aclose()


def test_example_request_refuses_what_it_cannot_make() -> None:
    held = account_where(SUNDERLAND, liable=1, discounted=True).account_ref
    with pytest.raises(ValueError, match="spd_eligible"):
        example_request(SPD_CLASS, held, SUNDERLAND)
    with pytest.raises(ValueError, match="no account"):
        example_request(VIEW_CLASS, "SUN99999999", SUNDERLAND)
    with pytest.raises(ValueError, match="no example"):
        example_request("LA-CTAX-OTHER", held, SUNDERLAND)
