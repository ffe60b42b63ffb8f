"""A graceful stop in the middle of a delivery: the delivery is abandoned, not failed. The
acknowledged transaction is left to its lease, and the next hub on the database delivers it.
Real processes, a real (slow) supplier back office over HTTP."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from connectors.protocol import ConnectorContext, Failed, Outcome, Transaction
from examples.supplier_backoffice.app import STATE, make_app
from gateway.config import load_config, parse_config
from gateway.store import submissions as store
from gateway.store.engine import Database
from gateway.store.models import ERROR, LEASED, RESPONSE
from gateway.web.app import create_app
from tests.conftest import free_port
from tests.hub import wire
from tests.hub.faulty import Misbehaving, connector_set, route
from tests.hub.test_crash import BODY, CLASS, _post, _until_final
from tests.hub.test_crash import _config as crash_config
from tests.serving import serving

# Longer than the dispatcher's drain (5 s), so the stop comes while the back office still has
# the call; short enough that the restarted hub finds the lease run out without a long wait.
ROUTE_TIMEOUT = 15


def _config(tmp_path: Path, supplier: str) -> Path:
    return crash_config(tmp_path, supplier, timeout=ROUTE_TIMEOUT, retries="retries = 0")


async def _row_state(config: Path, cid: str) -> tuple[str, int, str | None]:
    db = Database.open(load_config(config).database_url)
    try:
        row = await store.get(db, cid)
    finally:
        await db.aclose()
    assert row is not None
    return row.state, row.attempts, row.last_error


async def test_sigterm_mid_delivery_leaves_it_to_the_next_hub(
    tmp_path: Path, spawn_hub: Any
) -> None:
    """SIGTERM while a back office is still working on a delivery (on a route with no retries):
    the hub exits 0 without answering the transaction; the next hub delivers it again with the
    same CorrelationID and the client's poll gets the back office's response."""
    app = make_app(hang_seconds=120)
    state = app[STATE]
    async with serving(app) as supplier, aiohttp.ClientSession() as session:
        config = _config(tmp_path, supplier)
        await session.post(f"{supplier}/_fault", json={"mode": "hang", "times": 1})
        hub = await asyncio.to_thread(spawn_hub, config)
        ack = await _post(
            session, f"{hub.url}/submission", wire.submission(CLASS, BODY, organisation="SUPPLIER")
        )
        assert ack.qualifier == "acknowledgement", ack.errors
        cid = ack.correlation_id
        assert cid
        async with asyncio.timeout(30):
            while state.requests < 1:  # noqa: ASYNC110 - the hub is inside the connector call
                await asyncio.sleep(0.05)

        hub.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(hub.proc.wait, 60)
        log = hub.log.read_text()
        assert code == 0, log[-3000:]
        assert "dispatcher.attempts_abandoned" in log and "Traceback" not in log, log[-3000:]

        # Stopping is not the back office failing: nothing recorded, the lease left to run out.
        row_state, attempts, last_error = await _row_state(config, cid)
        assert row_state not in (ERROR, RESPONSE), (row_state, last_error)
        assert attempts == 1 and last_error is None, (attempts, last_error)
        assert "dispatch.dead_letter" not in log

        # The hang was for one request only: the next delivery is answered at once.
        restarted = await asyncio.to_thread(spawn_hub, config)
        final = await _until_final(session, restarted.url, cid, ROUTE_TIMEOUT + 60)
        assert final.qualifier == "response", final.errors
        assert state.applied == [cid]
        assert state.requests == 2


class Stubborn(Misbehaving):
    """A back office client that turns being cancelled into a failure of its own."""

    def __init__(self, name: str) -> None:
        super().__init__(name, "held")
        self.called = asyncio.Event()

    async def handle(self, tx: Transaction, ctx: ConnectorContext) -> Outcome:
        self.calls.append(tx)
        self.called.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            return Failed("the call was cut short")
        return Failed("released")


async def test_a_stop_records_nothing_even_when_the_connector_swallows_the_cancel(
    tmp_path: Path,
) -> None:
    """runner.cleanup() (what SIGTERM runs) with a call still running after the drain's grace,
    whose connector answers Failed when cancelled: that answer is the hub stopping, not the back
    office, so the transaction stays leased, with no answer, retry or dead letter."""
    stubborn = Stubborn("stubborn")
    config = parse_config(
        {
            "data_dir": str(tmp_path / "var"),
            "pki": {"dir": str(tmp_path / "certs")},
            "demo": False,
            "server": {"port": free_port(), "https_port": 0},
            "dispatcher": {"idle_poll_seconds": 0.05},
            "connectors": {"stubborn": {"type": "test"}},
            "routes": [route("TEST-STUBBORN", "stubborn", timeout=60, retries=0)],
        }
    )
    app = create_app(config, connectors=connector_set(tmp_path, stubborn))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", config.server.port).start()
        url = f"http://127.0.0.1:{config.server.port}/submission"
        xml = wire.submission(
            "TEST-STUBBORN", "<Ping xmlns='urn:test:ping'/>", organisation="TESTORG"
        )
        async with aiohttp.ClientSession() as session:
            ack = await _post(session, url, xml)
        assert ack.qualifier == "acknowledgement", ack.errors
        async with asyncio.timeout(30):
            await stubborn.called.wait()
    finally:
        await runner.cleanup()

    db = Database.open(config.database_url)
    try:
        row = await store.get(db, ack.correlation_id or "")
        letters = await store.dead_letters(db)
    finally:
        await db.aclose()
    assert row is not None
    assert (row.state, row.attempts, row.last_error) == (LEASED, 1, None)
    assert not letters
