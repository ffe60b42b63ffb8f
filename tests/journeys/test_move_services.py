"""The services the change-of-address journey uses, as connectors: close/reopen/open at the
simulated councils and the electoral registration notification."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from connectors.electoral.connector import ElectoralRegistrationConnector, build_request
from connectors.protocol import BusinessError, ConnectorContext, Failed, Identity, Response
from connectors.protocol import Transaction as Tx
from connectors.simcouncil.connector import SimulatedCouncilConnector
from connectors.simcouncil.model import Address, Person
from connectors.simcouncil.move_in import build_open
from connectors.simcouncil.move_out import build_close, build_reopen
from tests.journeys.conftest import SEDGEMOOR, SUNDERLAND
from tests.journeys.test_change_of_address import new_uprn, old_account

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

WHO = Identity("DEMO0MOV0001", "clear", 1)


def tx(cid: str, class_: str, org: str, body: bytes, keys: dict[str, str] | None = None) -> Tx:
    return Tx(cid.ljust(32, "0"), class_, org, keys or {}, body, WHO)


def council(tmp_path: Path, code: str) -> SimulatedCouncilConnector:
    return SimulatedCouncilConnector(ConnectorContext(code, {"council": code}, tmp_path))


async def test_close_is_idempotent_refused_twice_and_undone_by_reopen(tmp_path: Path) -> None:
    sed = council(tmp_path, SEDGEMOOR)
    ref = old_account()
    keys = {"CTaxAccountRef": ref}
    close = build_close(ref, date(2026, 12, 10))
    first = await sed.handle(tx("A", "LA-CTAX-CLOSE", SEDGEMOOR, close, keys), sed.ctx)
    assert isinstance(first, Response) and b"<ClosedFrom>2026-12-10</ClosedFrom>" in first.body
    again = await sed.handle(tx("A", "LA-CTAX-CLOSE", SEDGEMOOR, close, keys), sed.ctx)
    assert again == first  # the same correlation id: the first answer
    twice = await sed.handle(tx("B", "LA-CTAX-CLOSE", SEDGEMOOR, close, keys), sed.ctx)
    assert isinstance(twice, BusinessError)
    assert twice.errors[0].number == 3001
    assert twice.errors[0].locations == ("/CTaxCloseRequest/AccountRef",)
    account = await sed.store.account(ref)
    assert account is not None and account.closed_from == date(2026, 12, 10)

    reopen = build_reopen(ref, "move cancelled")
    undone = await sed.handle(tx("C", "LA-CTAX-REOPEN", SEDGEMOOR, reopen, keys), sed.ctx)
    assert isinstance(undone, Response)
    account = await sed.store.account(ref)
    assert account is not None and account.closed_from is None
    nothing = await sed.handle(tx("D", "LA-CTAX-REOPEN", SEDGEMOOR, reopen, keys), sed.ctx)
    assert isinstance(nothing, BusinessError)
    await sed.aclose()


async def test_close_refuses_another_enrolments_account_and_dates_out_of_year(
    tmp_path: Path,
) -> None:
    sed = council(tmp_path, SEDGEMOOR)
    ref = old_account()
    wrong = await sed.handle(
        tx("E", "LA-CTAX-CLOSE", SEDGEMOOR, build_close(ref, date(2026, 12, 1)), {}), sed.ctx
    )
    assert isinstance(wrong, BusinessError)
    late = await sed.handle(
        tx(
            "F",
            "LA-CTAX-CLOSE",
            SEDGEMOOR,
            build_close(ref, date(2027, 6, 1)),
            {"CTaxAccountRef": ref},
        ),
        sed.ctx,
    )
    assert isinstance(late, BusinessError)
    assert late.errors[0].locations == ("/CTaxCloseRequest/MoveOutDate",)
    await sed.aclose()


async def test_open_gives_a_new_account_and_refuses_a_taken_property_or_foreign_postcode(
    tmp_path: Path,
) -> None:
    sun = council(tmp_path, SUNDERLAND)
    who = Person("Morgan", "Mover")
    uprn = new_uprn()
    home = Address("14", "Roker Terrace", "Sunderland", "SR6 9NN", locality="Roker")
    body = build_open(who, home, uprn, date(2026, 12, 11))
    opened = await sun.handle(tx("G", "LA-CTAX-OPEN", SUNDERLAND, body), sun.ctx)
    assert isinstance(opened, Response)
    ref = opened.body.split(b"<AccountRef>")[1].split(b"<")[0].decode()
    account = await sun.store.account(ref)
    assert account is not None and account.uprn == uprn and account.liable == (who,)
    assert all(i.due_date >= date(2026, 12, 11) for i in account.instalments)
    taken = await sun.handle(tx("H", "LA-CTAX-OPEN", SUNDERLAND, body), sun.ctx)
    assert isinstance(taken, BusinessError) and "already has" in taken.errors[0].text
    away = Address("1", "High Street", "Bridgwater", "TA6 1AA")
    foreign = await sun.handle(
        tx("I", "LA-CTAX-OPEN", SUNDERLAND, build_open(who, away, new_uprn(7), date(2026, 12, 11))),
        sun.ctx,
    )
    assert isinstance(foreign, BusinessError)
    assert foreign.errors[0].locations == ("/CTaxOpenRequest/BS7666Address/PostCode",)
    await sun.aclose()


async def test_electoral_registration_faults_and_idempotency(tmp_path: Path) -> None:
    ctx = ConnectorContext("er", {"organisation": "ER-E08000024", "fail_first_n": 1}, tmp_path)
    er = ElectoralRegistrationConnector(ctx)
    body = build_request(
        "Morgan", "Mover", (["1 High Street"], "TA6 1AA"), (["14 Roker Terrace"], "SR6 9NN"),
        "2026-12-11",
    )  # fmt: skip
    first = await er.handle(tx("J", "ER-NOTIFY-MOVE", "ER-E08000024", body), ctx)
    assert isinstance(first, Failed) and "unavailable" in first.reason
    ok = await er.handle(tx("K", "ER-NOTIFY-MOVE", "ER-E08000024", body), ctx)
    assert isinstance(ok, Response) and b"ER-E08000024-000001" in ok.body
    assert await er.handle(tx("K", "ER-NOTIFY-MOVE", "ER-E08000024", body), ctx) == ok
    bad = await er.handle(tx("L", "ER-NOTIFY-MOVE", "ER-E08000024", b"<x/>"), ctx)
    assert isinstance(bad, BusinessError) and bad.errors[0].number == 4001
    await er.aclose()
    # The fault count survives a restart: the next instance does not fail again.
    again = ElectoralRegistrationConnector(ctx)
    later = await again.handle(tx("M", "ER-NOTIFY-MOVE", "ER-E08000024", body), ctx)
    assert isinstance(later, Response)
    await again.aclose()
