"""The simulated electoral registration connector: test in live (-TIL) checks and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from connectors.electoral.connector import (
    NS,
    SCHEMAS,
    ElectoralRegistrationConnector,
    build_request,
)
from connectors.protocol import (
    BusinessError,
    ConnectorContext,
    Failed,
    Identity,
    Response,
    Transaction,
)
from connectors.sdk import load_schema

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

ORG = "ER-E08000024"
NOW = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
BODY = build_request(
    "Morgan", "Mover", (["1 High Street"], "TA6 1AA"), (["14 Roker Terrace"], "SR6 9NN"),
    "2026-12-11",
)  # fmt: skip

Make = Callable[..., ElectoralRegistrationConnector]


@pytest.fixture
async def electoral(tmp_path: Path) -> AsyncIterator[Make]:
    made: list[ElectoralRegistrationConnector] = []

    def make(**options: Any) -> ElectoralRegistrationConnector:
        ctx = ConnectorContext("er", {"organisation": ORG, **options}, tmp_path, clock=lambda: NOW)
        made.append(ElectoralRegistrationConnector(ctx))
        return made[-1]

    yield make
    for connector in made:
        await connector.aclose()


def notify(
    cid: str, *, body: bytes = BODY, class_: str = "ER-NOTIFY-MOVE", til: bool = False
) -> Transaction:
    return Transaction(
        correlation_id=cid.ljust(32, "0"),
        class_=class_,
        organisation=ORG,
        keys={},
        body=body,
        identity=Identity("DEMO0MOV0001", "clear", 1),
        test_in_live=til,
    )


def fields(outcome: object) -> dict[str, str]:
    assert isinstance(outcome, Response), outcome
    root = etree.fromstring(outcome.body)
    assert root.tag == f"{{{NS}}}ERNotifyMoveResponse"
    return {etree.QName(el).localname: el.text or "" for el in root}


async def test_test_in_live_answers_the_would_be_reference_and_records_nothing(
    electoral: Make,
) -> None:
    er = electoral()
    til = await er.handle(notify("A", til=True), er.ctx)
    assert fields(til) == {
        "Reference": f"{ORG}-000001",  # the one a live notification would take: not reserved
        "Organisation": ORG,
        "ReceivedAt": "2026-11-28T10:00:00",
        "Status": "checked-not-processed",
        "Advisory": "Test in live: checked, not processed",
    }
    assert isinstance(til, Response)
    load_schema(SCHEMAS / "er-notify-move-response-v1.xsd").assertValid(etree.fromstring(til.body))
    assert await er.notifications() == []
    # The same correlation id live afterwards is a first delivery, and takes that reference.
    live = await er.handle(notify("A"), er.ctx)
    assert fields(live) == {
        "Reference": f"{ORG}-000001",
        "Organisation": ORG,
        "ReceivedAt": "2026-11-28T10:00:00",
    }
    assert [ref for _, ref, _ in await er.notifications()] == [f"{ORG}-000001"]
    # A later test in live sees the live row, and still writes nothing.
    again = await er.handle(notify("B", til=True), er.ctx)
    assert fields(again)["Reference"] == f"{ORG}-000002"
    assert len(await er.notifications()) == 1


async def test_a_til_suffix_left_on_the_class_is_test_in_live_too(electoral: Make) -> None:
    er = electoral()
    outcome = await er.handle(notify("A", class_="ER-NOTIFY-MOVE-TIL"), er.ctx)
    assert fields(outcome)["Status"] == "checked-not-processed"
    assert await er.notifications() == []


async def test_test_in_live_runs_the_schema_checks(electoral: Make) -> None:
    er = electoral()
    bad = await er.handle(notify("A", body=b"<x/>", til=True), er.ctx)
    assert isinstance(bad, BusinessError) and bad.errors[0].number == 4001
    broken = await er.handle(notify("B", body=b"<x", til=True), er.ctx)
    assert isinstance(broken, BusinessError) and broken.errors[0].number == 4000
    assert await er.notifications() == []


async def test_test_in_live_does_not_use_up_a_simulated_fault(electoral: Make) -> None:
    er = electoral(fail_first_n=1)
    assert fields(await er.handle(notify("A", til=True), er.ctx))["Status"]
    # The fault is still due: the first live delivery meets it, the second gets through.
    failed = await er.handle(notify("B"), er.ctx)
    assert isinstance(failed, Failed) and "simulated fault" in failed.reason
    assert fields(await er.handle(notify("C"), er.ctx))["Reference"] == f"{ORG}-000001"


async def test_test_in_live_on_an_unavailable_service_fails(electoral: Make) -> None:
    er = electoral(unavailable=True)
    outcome = await er.handle(notify("A", til=True), er.ctx)
    assert isinstance(outcome, Failed) and "unavailable" in outcome.reason
