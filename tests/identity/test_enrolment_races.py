"""Concurrent attempts at one enrolment on PostgreSQL (READ COMMITTED): wrong PINs and wrong
known facts sent together are each counted, so none slips past the attempt limit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.engine import Database
from gateway.store.models import EnrolmentRow
from tests.identity_journey.conftest import (  # noqa: F401 (fixtures)
    IdentityHub,
    IdentityHubFactory,
    identity_hub_factory,
)
from tests.identity_journey.test_journey import (
    PASSWORD,
    account,
    activate,
    enrol,
    facts_for,
    letters,
    pin_of,
    register,
)

pytestmark = pytest.mark.postgres

ATTEMPTS = 8  # with max_attempts 3: at most 2 may be answered "wrong, try again"


def hold_commits(monkeypatch: pytest.MonkeyPatch, together: int) -> None:
    """Hold each enrolment attempt's transaction just before its commit until `together` are
    held, or a second has passed: attempts that read the row unlocked then all write what they
    read, where attempts that lock it take turns."""
    real = Database.transaction
    held = 0
    everyone = asyncio.Event()

    @contextlib.asynccontextmanager
    async def transaction(db: Database) -> AsyncIterator[AsyncSession]:
        nonlocal held
        async with real(db) as session:
            yield session
            if not any(isinstance(row, EnrolmentRow) for row in session.identity_map.values()):
                return
            held += 1
            if held >= together:
                everyone.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(everyone.wait(), 1)
            everyone.set()  # one waited its fill: the rest (taking turns) need not

    monkeypatch.setattr(Database, "transaction", transaction)


async def test_wrong_pins_sent_together_still_lock_the_enrolment(
    pg_url: str,  # before the hub, so the hub stops before its database is dropped
    identity_hub_factory: IdentityHubFactory,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub: IdentityHub = await identity_hub_factory({"database": {"url": pg_url}})
    user_id = await register(hub)
    status, data, _ = await enrol(hub, user_id, facts_for(account(14)))
    assert status == 202, data
    enrolment_id = data["id"]
    [letter] = await letters(hub, user_id)
    pin = pin_of(letter)
    wrong = "ZZZZZZZZ" if pin != "ZZZZZZZZ" else "YYYYYYYY"

    hold_commits(monkeypatch, ATTEMPTS)
    answers = await asyncio.gather(
        *(activate(hub, user_id, enrolment_id, wrong) for _ in range(ATTEMPTS))
    )
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [422] * 2 + [423] * (ATTEMPTS - 2), answers
    # Locked: even the PIN from the letter is refused now.
    status, data, _ = await activate(hub, user_id, enrolment_id, pin)
    assert status == 423, data


async def test_wrong_known_facts_sent_together_still_lock_the_enrolment(
    pg_url: str,  # before the hub, so the hub stops before its database is dropped
    identity_hub_factory: IdentityHubFactory,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub: IdentityHub = await identity_hub_factory({"database": {"url": pg_url}})
    user_id = await register(hub)
    prop = account(15)
    wrong = facts_for(prop, Surname="Nobody-Of-That-Name")

    # The first attempts find no enrolment yet: they must not each start one of their own.
    hold_commits(monkeypatch, ATTEMPTS)
    answers = await asyncio.gather(*(enrol(hub, user_id, wrong) for _ in range(ATTEMPTS)))
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [422] * 2 + [423] * (ATTEMPTS - 2), answers
    status, data, _ = await enrol(hub, user_id, facts_for(prop))
    assert status == 423, data
    assert await letters(hub, user_id) == []
    status, data, _ = await hub.call("GET", "/api/enrolments", auth=(user_id, PASSWORD))
    assert status == 200 and len(data["enrolments"]) == 1, data
