"""Two hub instances on one PostgreSQL behave as one hub: load spread across both, one killed
mid-run, and afterwards nothing is lost and nothing is done twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.hub import wire
from tests.hub.test_crash_load import (
    Load,
    _applicants,
    _balance,
    check_nothing_lost_or_doubled,
    view_request,
)
from tests.hub.test_dsp import VIEW

pytestmark = pytest.mark.postgres


async def test_two_instances_share_one_database_and_survive_losing_one(
    tmp_path: Path, spawn_hub: Any, pg_url: str
) -> None:
    # One configuration for both, as two hosts would share it; data_dir stands for the shared
    # volume holding the CA and the simulated councils' own stores.
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "var"}"\n'
        f'[database]\nurl = "{pg_url}"\n'
        f'[pki]\ndir = "{tmp_path / "certs"}"\n'
        "[dispatcher]\nidle_poll_seconds = 0.05\nlease_margin_seconds = 1\n"
        "[payments]\nsender_interval_seconds = 0.2\n"
    )
    # Started together: they take turns to migrate and seed (the startup lock).
    one, two = await asyncio.gather(
        asyncio.to_thread(spawn_hub, config), asyncio.to_thread(spawn_hub, config)
    )
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        before = await _balance(session, one.url)
        # Acknowledged by one instance, answered by the other.
        async with session.post(f"{one.url}/submission", data=view_request()) as resp:
            cid = wire.read(await resp.read()).correlation_id
        assert cid
        async with asyncio.timeout(20):
            while True:
                async with session.post(f"{two.url}/poll", data=wire.poll(VIEW, cid)) as resp:
                    if wire.read(await resp.read()).qualifier == "response":
                        break
                await asyncio.sleep(0.1)

        load = Load([one.url, two.url], await _applicants(session, two.url))
        workers = load.start(session)
        await asyncio.sleep(3)
        two.proc.kill()  # SIGKILL mid-run: its leased work must be finished by the other
        load.bases = [one.url]
        await asyncio.sleep(2)
        load.stop = True
        await asyncio.gather(*workers)
        await check_nothing_lost_or_doubled(session, one.url, load, before)
