"""`gateway serve --workers N`: N processes answering on one port, one database, a worker that
dies is replaced, and SIGTERM stops them all cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.hub import wire
from tests.hub.test_crash_load import view_request
from tests.hub.test_dsp import VIEW


async def _pids(url: str, tries: int = 60) -> set[int]:
    """The workers that answer /health, each request on a connection of its own."""
    seen: set[int] = set()
    for _ in range(tries):
        try:
            async with aiohttp.ClientSession() as session, session.get(f"{url}/health") as resp:
                seen.add((await resp.json())["pid"])
        except aiohttp.ClientConnectionError:
            # The moment a worker dies, a connection the kernel had queued for it is refused.
            await asyncio.sleep(0.05)
    return seen


async def test_workers_share_the_port_and_the_database(tmp_path: Path, spawn_hub: Any) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "var"}"\n[pki]\ndir = "{tmp_path / "certs"}"\n'
        "[dispatcher]\nidle_poll_seconds = 0.05\nlease_margin_seconds = 1\n"
    )
    hub = await asyncio.to_thread(spawn_hub, config, "--workers", "2")
    # The port answers as soon as the first worker listens; the second follows shortly.
    workers: set[int] = set()
    async with asyncio.timeout(30):
        while len(workers) < 2:
            workers |= await _pids(hub.url, tries=20)
    assert len(workers) == 2 and hub.proc.pid not in workers, workers

    # Acknowledged by whichever worker took the connection, answered by any, the same each time.
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{hub.url}/submission", data=view_request()) as resp:
            cid = wire.read(await resp.read()).correlation_id
        assert cid
    qualifiers = []
    async with asyncio.timeout(20):
        while len(qualifiers) < 10:
            async with aiohttp.ClientSession() as fresh:  # a new connection: any worker
                async with fresh.post(f"{hub.url}/poll", data=wire.poll(VIEW, cid)) as resp:
                    qualifier = wire.read(await resp.read()).qualifier
            if qualifier != "acknowledgement" or qualifiers:
                qualifiers.append(qualifier)
            await asyncio.sleep(0.05)
    assert set(qualifiers) == {"response"}, qualifiers

    # A worker killed outright is replaced; the port keeps answering meanwhile.
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    async with asyncio.timeout(30):
        while True:
            now = await _pids(hub.url, tries=30)
            if len(now) == 2 and victim not in now:
                break
            await asyncio.sleep(0.2)

    # SIGTERM to the supervisor stops every worker and exits 0.
    started = time.monotonic()
    hub.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(hub.proc.wait, 20) == 0
    assert time.monotonic() - started < 20
    for pid in now:
        assert not _alive(pid), pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _two_workers(tmp_path: Path, spawn_hub: Any) -> tuple[Any, set[int]]:
    """`serve --workers 2` on a default configuration, once both workers answer; their pids."""
    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\n[pki]\ndir = "{tmp_path / "certs"}"\n')
    hub = await asyncio.to_thread(spawn_hub, config, "--workers", "2")
    workers: set[int] = set()
    async with asyncio.timeout(30):
        while len(workers) < 2:
            workers |= await _pids(hub.url, tries=20)
    return hub, workers


async def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path, spawn_hub: Any) -> None:
    hub, workers = await _two_workers(tmp_path, spawn_hub)
    hub.proc.kill()  # SIGKILL: nothing is passed on to the workers
    async with asyncio.timeout(15):
        while any(_alive(pid) for pid in workers):  # noqa: ASYNC110 - other processes
            await asyncio.sleep(0.2)


def test_workers_that_cannot_start_end_the_supervisor(tmp_path: Path) -> None:
    """A port taken by another program: the workers die at once, and the supervisor gives up
    (exit non-zero) instead of restarting them for ever."""
    import socket
    import subprocess
    import sys

    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\n[pki]\ndir = "{tmp_path / "certs"}"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "gateway.cli", "--config", str(config), "serve",
                   "--port", str(port), "--https-port", "0", "--workers", "2"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, timeout=120)
    assert result.returncode != 0
    assert b"workers.crash_loop" in result.stdout + result.stderr


def _dsp_submissions(text: str) -> float:
    """gateway_dsp_messages_total for View Council Tax submissions, as a scrape reports it."""
    for family in text_string_to_metric_families(text):
        if family.name == "gateway_dsp_messages":
            return sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total")
                and s.labels == {"class": VIEW, "qualifier": "request", "function": "submit"}
            )
    return 0.0


async def test_metrics_count_every_workers_requests_whichever_worker_is_scraped(
    tmp_path: Path, spawn_hub: Any
) -> None:
    hub, _ = await _two_workers(tmp_path, spawn_hub)
    sent = 12
    for _ in range(sent):
        async with aiohttp.ClientSession() as fresh:  # a new connection: any worker
            async with fresh.post(f"{hub.url}/submission", data=view_request()) as resp:
                assert wire.read(await resp.read()).qualifier == "acknowledgement"
    counts = []
    for _ in range(8):
        async with aiohttp.ClientSession() as fresh, fresh.get(f"{hub.url}/metrics") as resp:
            assert resp.status == 200
            counts.append(_dsp_submissions(await resp.text()))
    assert counts == [sent] * 8
    hub.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(hub.proc.wait, 20) == 0
