"""A hub killed with SIGKILL right after acknowledging loses nothing: after a restart, polling the
CorrelationID yields the response. Real processes, a real supplier back office over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from examples.supplier_backoffice.app import STATE, make_app
from tests.conftest import ROOT
from tests.hub import wire
from tests.serving import serving

CLASS = "LA-CTAX-VIEW"
BODY = (
    '<CTaxViewRequest xmlns="urn:govtalk-hub:example:ctax-view:v1">'
    "<AccountReference>10000002</AccountReference></CTaxViewRequest>"
)


@asynccontextmanager
async def _supplier() -> AsyncIterator[tuple[str, web.Application]]:
    """The example back office, hanging on demand (its `_fault` endpoint); its URL and app."""
    app = make_app(hang_seconds=60)
    async with serving(app) as url:
        yield url, app


def _config(
    tmp_path: Path,
    supplier: str,
    *,
    timeout: float = 2,
    retries: str = "retries = 5\nbackoff = 0.2",
) -> Path:
    """A hub forwarding CLASS to the back office at `supplier`, with these route settings."""
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
data_dir = "{tmp_path / "var"}"
demo = false

[dispatcher]
idle_poll_seconds = 0.1
lease_margin_seconds = 1

[connectors.supplier]
type = "http-forward"
url = "{supplier}/transactions"
timeout = {timeout}

[[routes]]
class = "{CLASS}"
organisation = "SUPPLIER"
connector = "supplier"
timeout = {timeout}
{retries}
auth_level = 0
"""
    )
    return path


async def _post(session: aiohttp.ClientSession, url: str, xml: str) -> wire.Reply:
    async with session.post(url, data=xml.encode()) as resp:
        assert resp.status == 200
        return wire.read(await resp.read())


async def _until_final(
    session: aiohttp.ClientSession, url: str, cid: str, seconds: float
) -> wire.Reply:
    async with asyncio.timeout(seconds):
        while True:
            reply = await _post(session, f"{url}/poll", wire.poll(CLASS, cid))
            if reply.qualifier != "acknowledgement":
                return reply
            await asyncio.sleep(0.1)


async def test_sigkill_mid_dispatch_then_restart_answers_the_poll(
    tmp_path: Path, spawn_hub
) -> None:
    async with _supplier() as (supplier, app):
        state = app[STATE]
        config = _config(tmp_path, supplier)
        async with aiohttp.ClientSession() as session:
            await session.post(f"{supplier}/_fault", json={"mode": "hang"})
            hub = await asyncio.to_thread(spawn_hub, config)
            acks = []
            for _ in range(5):
                ack = await _post(
                    session,
                    f"{hub.url}/submission",
                    wire.submission(CLASS, BODY, organisation="SUPPLIER"),
                )
                assert ack.qualifier == "acknowledgement", ack.errors
                acks.append(ack.correlation_id)
            async with asyncio.timeout(5):
                while state.requests < 1:  # noqa: ASYNC110 - the hub is inside a connector call
                    await asyncio.sleep(0.05)
            hub.proc.kill()
            hub.proc.wait()

            await session.post(f"{supplier}/_fault", json={"mode": "none"})
            restarted = await asyncio.to_thread(spawn_hub, config)
            for cid in acks:
                final = await _until_final(session, restarted.url, cid, 20)
                assert final.qualifier == "response", final.errors
                assert final.body is not None and b"10000002" in wire.etree.tostring(final.body)
            # Delivered at least once, applied once per CorrelationID.
            assert sorted(state.applied) == sorted(acks)


async def test_sigkill_straight_after_ack_loses_nothing(tmp_path: Path, spawn_hub) -> None:
    async with _supplier() as (supplier, _app):
        config = _config(tmp_path, supplier)
        async with aiohttp.ClientSession() as session:
            hub = await asyncio.to_thread(spawn_hub, config)
            ack = await _post(
                session,
                f"{hub.url}/submission",
                wire.submission(CLASS, BODY, organisation="SUPPLIER"),
            )
            hub.proc.kill()  # the acknowledgement is all the client has
            hub.proc.wait()
            assert ack.correlation_id
            restarted = await asyncio.to_thread(spawn_hub, config)
            final = await _until_final(session, restarted.url, ack.correlation_id, 20)
            assert final.qualifier == "response"


async def test_sigterm_shuts_down_cleanly_and_leaves_queued_work_for_the_next_start(
    tmp_path: Path, spawn_hub
) -> None:
    """SIGTERM: the hub stops accepting, lets in-flight work end, exits 0; acknowledged work that
    was not finished is done after the next start, once each; the audit trail is intact."""
    async with _supplier() as (supplier, app):
        state = app[STATE]
        config = _config(tmp_path, supplier)
        async with aiohttp.ClientSession() as session:
            await session.post(f"{supplier}/_fault", json={"mode": "hang"})
            hub = await asyncio.to_thread(spawn_hub, config)
            acks = []
            for _ in range(3):
                ack = await _post(
                    session,
                    f"{hub.url}/submission",
                    wire.submission(CLASS, BODY, organisation="SUPPLIER"),
                )
                assert ack.correlation_id
                acks.append(ack.correlation_id)
            async with asyncio.timeout(5):
                while state.requests < 1:  # noqa: ASYNC110 - the hub is inside a connector call
                    await asyncio.sleep(0.05)
            started = time.monotonic()
            hub.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(hub.proc.wait, 30)
            assert code == 0, hub.log.read_text()[-2000:]
            assert time.monotonic() - started < 20
            log = hub.log.read_text()
            assert "hub.stopping" in log and "Traceback" not in log
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{hub.url}/health") as resp:
                    raise AssertionError(f"still answering after exit: {resp.status}")

            await session.post(f"{supplier}/_fault", json={"mode": "none"})
            restarted = await asyncio.to_thread(spawn_hub, config)
            for cid in acks:
                final = await _until_final(session, restarted.url, cid, 30)
                assert final.qualifier == "response", final.errors
            assert sorted(state.applied) == sorted(acks)
        verify = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gateway.cli", "--config", str(config), "audit", "verify"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert verify.returncode == 0, verify.stderr
        assert "audit trail intact" in verify.stdout
