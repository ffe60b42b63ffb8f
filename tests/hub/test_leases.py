"""A delivery in flight keeps its transaction: moving the hub's clock (the admin API's movable
clock, as testers do for purge or PIN expiry) or a lease that overruns must not deliver it twice
at once, and an attempt superseded by a later one must not decide the answer."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from connectors.protocol import ConnectorContext, Failed, Outcome, Response, Transaction
from gateway.clock import MovableClock
from gateway.store import submissions as store
from gateway.web.keys import DB, DISPATCHER
from tests.conftest import Hub
from tests.hub import wire
from tests.hub.faulty import Misbehaving, connector_set, route, routed_row
from tests.hub.test_dsp import acknowledged, poll_until_final

BODY = '<Ping xmlns="urn:test:ping">hello</Ping>'


class PerAttempt(Misbehaving):
    """Holds attempt 1 until `first` is set, then fails it; holds later ones until `release`."""

    def __init__(self, name: str) -> None:
        super().__init__(name, "held")
        self.first = asyncio.Event()

    async def handle(self, tx: Transaction, ctx: ConnectorContext) -> Outcome:
        self.calls.append(tx)
        if tx.attempt == 1:
            await self.first.wait()
            return Failed("attempt 1 gave up")
        await self.release.wait()
        return Response(b'<Done xmlns="urn:test:done">applied</Done>')


async def start(
    hub_factory, tmp_path, clock: MovableClock, *connectors: Misbehaving, retries: int = 0
) -> Hub:
    # Timeouts far beyond the test: only the moved clock makes a lease look expired.
    config = {
        "demo": False,
        "connectors": {c.name: {"type": "test"} for c in connectors},
        "routes": [
            route(f"TEST-{c.name.upper()}", c.name, timeout=60, retries=retries) for c in connectors
        ],
    }
    return await hub_factory(config, connectors=connector_set(tmp_path, *connectors), clock=clock)


async def until(condition, seconds: float = 20) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - set by a connector call or the dispatcher
            await asyncio.sleep(0.02)


async def test_moving_the_clock_on_does_not_deliver_work_in_flight_again(
    hub_factory, tmp_path
) -> None:
    held = Misbehaving("held", "held")
    echo = Misbehaving("echo", "answer")
    clock = MovableClock()
    hub = await start(hub_factory, tmp_path, clock, held, echo)
    cid = await acknowledged(hub, wire.submission("TEST-HELD", BODY, organisation="TESTORG"))
    await until(lambda: held.calls)
    clock.advance(timedelta(hours=1))  # the held delivery's lease now looks expired
    # Queued work for another back office, due after the held one: once it is delivered, the
    # dispatcher has made a claim pass since the clock moved, the held connector's first.
    await store.insert(
        hub.app[DB],
        routed_row("EC40" * 8, "TEST-ECHO", "echo", at=clock()),
    )
    hub.app[DISPATCHER].wake()
    await until(lambda: echo.calls)
    assert [tx.attempt for tx in held.calls] == [1]
    held.release.set()
    reply = await poll_until_final(hub, "TEST-HELD", cid, seconds=20)
    assert reply.qualifier == "response"
    assert [tx.attempt for tx in held.calls] == [1]


async def test_a_superseded_attempt_does_not_decide_the_answer(hub_factory, tmp_path) -> None:
    # Attempt 2 is taken by the same dispatcher (owner) while attempt 1 still runs, as the hub's
    # own claim did once the clock moved: attempt 1 ends first, in a failure, then the back
    # office applies attempt 2. The client must get attempt 2's answer, with no dead letter.
    conn = PerAttempt("held")
    clock = MovableClock()
    # Two attempts allowed: a claim past them is given up on without a delivery.
    hub = await start(hub_factory, tmp_path, clock, conn, retries=1)
    dispatcher, db = hub.app[DISPATCHER], hub.app[DB]
    cid = await acknowledged(hub, wire.submission("TEST-HELD", BODY, organisation="TESTORG"))
    await until(lambda: conn.calls)
    clock.advance(timedelta(hours=1))
    [again] = await store.claim(
        db, owner=dispatcher.owner, limit=1, now=clock(), lease=dispatcher.lease, connector="held"
    )
    second = asyncio.create_task(dispatcher.process(again))
    await until(lambda: len(conn.calls) == 2)
    conn.first.set()
    await dispatcher.drain(grace=20)  # attempt 1 has ended and tried to record its 3000
    conn.release.set()
    await asyncio.wait_for(second, 20)
    reply = await poll_until_final(hub, "TEST-HELD", cid, seconds=20)
    assert reply.qualifier == "response", reply.errors
    assert await store.dead_letters(db) == []
