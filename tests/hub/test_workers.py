"""`gateway serve --workers N`: N processes answering on one port, one database, a worker that
dies is replaced, and SIGTERM stops them all cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway.web.workers import claim_ports
from tests.conftest import ROOT
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


def _other_hub(tmp_path: Path, port: int, *serve_args: str) -> subprocess.CompletedProcess[str]:
    """`gateway serve` of another hub (its own data and PKI) on `port`, run to its end."""
    config = tmp_path / "other.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "other"}"\n[pki]\ndir = "{tmp_path / "other-certs"}"\n'
    )
    command = [sys.executable, "-m", "gateway.cli", "--config", str(config), "serve",
               "--port", str(port), "--https-port", "0", *serve_args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)


async def test_a_second_hub_on_the_workers_port_is_refused(tmp_path: Path, spawn_hub: Any) -> None:
    """SO_REUSEPORT would let a second `serve --workers N` share the port, splitting clients
    between hubs that share no data: it is refused before it prepares anything, as is a hub of
    one process; the first one's workers alone go on answering."""
    hub, workers = await _two_workers(tmp_path, spawn_hub)
    port = urlsplit(hub.url).port
    assert port
    for serve_args in (("--workers", "2"), ()):
        result = await asyncio.to_thread(_other_hub, tmp_path, port, *serve_args)
        assert result.returncode == 1, (serve_args, result.stderr[-2000:])
        message = f"port {port} is already served by another hub (pid {hub.proc.pid})"
        assert message in result.stderr, (serve_args, result.stderr[-2000:])
        assert not (tmp_path / "other-certs").exists()  # refused before the PKI was made
    assert await _pids(hub.url, tries=20) <= workers
    hub.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(hub.proc.wait, 30) == 0


async def test_workers_are_refused_the_port_of_a_single_process_hub(
    tmp_path: Path, spawn_hub: Any
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\n[pki]\ndir = "{tmp_path / "certs"}"\n')
    hub = await asyncio.to_thread(spawn_hub, config)
    port = urlsplit(hub.url).port
    assert port
    result = await asyncio.to_thread(_other_hub, tmp_path, port, "--workers", "2")
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"port {port} is already served by another hub (pid {hub.proc.pid})" in result.stderr
    # Once the first hub has stopped, its claim on the port has gone with it.
    hub.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(hub.proc.wait, 30) == 0
    for claim in claim_ports([port]):
        claim.close()


def _supervisor(worker: str, log: Path) -> subprocess.Popen[bytes]:
    """The supervisor's loop over two workers that each run the Python code `worker`; the
    output of all three goes to `log`."""
    code = (
        "import sys, tempfile\n"
        "from gateway.web.workers import _supervise\n"
        "sys.exit(_supervise(2, [sys.executable, '-c', sys.argv[1]], tempfile.mkdtemp()))\n"
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, worker], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )


def test_workers_killed_by_a_signal_end_the_supervisor_with_exit_code_1(tmp_path: Path) -> None:
    """A crash loop of workers killed by a signal: exit 1 (not the signal's negative number,
    which the shell shows as 247), and the log says which signal."""
    log = tmp_path / "supervisor.log"
    proc = _supervisor("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", log)
    try:
        assert proc.wait(timeout=120) == 1, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert "workers.crash_loop" in output and "SIGKILL" in output, output[-2000:]


def test_a_second_signal_kills_workers_that_do_not_stop(tmp_path: Path) -> None:
    """Workers stuck in their stop cannot keep the hub up: SIGTERM again kills them."""
    started = tmp_path / "workers"
    started.mkdir()
    stuck = (
        "import os, pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(started)!r}, str(os.getpid())).touch()\n"
        "time.sleep(600)\n"
    )
    log = tmp_path / "supervisor.log"
    proc = _supervisor(stuck, log)
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(pids) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
            pids = {int(path.name) for path in started.iterdir()}
        proc.send_signal(signal.SIGTERM)
        time.sleep(1)
        assert proc.poll() is None  # the workers ignore it: the supervisor waits for them
        assert all(_alive(pid) for pid in pids)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
        assert "workers.killed" in log.read_text()
        assert not any(_alive(pid) for pid in pids)  # killed, and reaped by the supervisor
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
