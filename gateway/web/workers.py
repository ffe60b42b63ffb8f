"""`gateway serve --workers N`: N hub processes sharing the listening ports (SO_REUSEPORT) and one
database, under a supervisor that prepares the database and PKI first, restarts a worker that
dies, and passes SIGINT / SIGTERM on for a graceful stop."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import structlog

from gateway.config import Config
from gateway.observability.metrics import MULTIPROCESS_ENV

log = structlog.get_logger("gateway.workers")

WORKER_ENV = "GATEWAY_WORKER"
# The supervisor's pid, so that a worker outliving it (the supervisor SIGKILLed) stops itself.
SUPERVISOR_ENV = "GATEWAY_SUPERVISOR_PID"
# A worker that dies this many times within CRASH_WINDOW_SECONDS is failing to start (a port in
# use, a broken configuration), not crashing in service: the supervisor gives up rather than
# restart it in a tight loop.
MAX_RESTARTS = 5
CRASH_WINDOW_SECONDS = 60.0


def prepare(config: Config) -> None:
    """What every worker would otherwise race to do at start: migrate, seed, create the PKI."""
    from gateway.prepare import pki_provider, prepare_database

    pki_provider(config)()

    async def database() -> None:
        db = await prepare_database(config)
        await db.aclose()

    asyncio.run(database())


def worker_command(config_path: Path | None, serve_args: Sequence[str]) -> list[str]:
    """The command line of one worker: this `gateway serve`, one process, port shared."""
    command = [sys.executable, "-m", "gateway.cli"]
    if config_path is not None:
        command += ["--config", str(config_path)]
    return [*command, "serve", *serve_args, "--reuse-port"]


def supervise(config: Config, workers: int, command: list[str]) -> int:
    """Run the workers until a signal stops them; the exit code of the supervisor."""
    prepare(config)
    if config.limits.store == "memory":
        log.warning(
            "workers.limits_per_worker",
            detail="[limits] store is memory: each worker counts rates and lockouts alone; "
            'set store = "redis" to count them together',
        )
    # Counters every worker adds to, so that /metrics is one hub's whichever worker answers
    # (gateway/observability/metrics.py); a directory of this run's own unless one is given.
    given = os.environ.get(MULTIPROCESS_ENV)
    metrics_dir = given or tempfile.mkdtemp(prefix="gateway-metrics-")
    try:
        return _supervise(workers, command, metrics_dir)
    finally:
        if not given:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(workers: int, command: list[str], metrics_dir: str) -> int:
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    def start(index: int) -> subprocess.Popen[bytes]:
        env = dict(
            os.environ,
            **{
                WORKER_ENV: str(index),
                SUPERVISOR_ENV: str(os.getpid()),
                MULTIPROCESS_ENV: metrics_dir,
            },
        )
        proc = subprocess.Popen(command, env=env)
        log.info("workers.started", worker=index, pid=proc.pid)
        return proc

    deaths: list[float] = []
    procs = {index: start(index) for index in range(workers)}
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while any(proc.poll() is None for proc in procs.values()) or not stopping:
        time.sleep(0.2)
        if stopping:
            continue
        for index, proc in list(procs.items()):
            returned = proc.poll()
            if returned is None:
                continue
            now = time.monotonic()
            deaths[:] = [t for t in deaths if now - t < CRASH_WINDOW_SECONDS] + [now]
            if len(deaths) > MAX_RESTARTS:
                log.error("workers.crash_loop", worker=index, exit_code=returned)
                stop(signal.SIGTERM, None)
                code = returned or 1
                break
            # Its acknowledged work is in the database; another worker (or this one, restarted)
            # picks it up when its lease runs out.
            log.warning("workers.died", worker=index, exit_code=returned)
            procs[index] = start(index)
    return code
