"""`gateway serve --workers N`: N hub processes sharing the listening ports (SO_REUSEPORT) and one
database, under a supervisor that claims the ports against other hubs, prepares the database and
PKI first, restarts a worker that dies, and passes SIGINT / SIGTERM on for a graceful stop (a
second one, or a stop that takes too long, kills the workers)."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import FrameType

import click
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
# How long workers have to stop after SIGINT / SIGTERM before they are killed (a second signal
# kills them at once). Killing one costs nothing acknowledged: its leases run out to the next.
STOP_GRACE_SECONDS = 90.0


class PortServed(click.ClickException):
    """Another hub already serves a port this one would listen on: `gateway serve` ends with
    this message and exit code 1."""

    def __init__(self, port: int, holder: int | None) -> None:
        by = f" (pid {holder})" if holder is not None else ""
        super().__init__(f"port {port} is already served by another hub{by}")
        self.port = port
        self.holder = holder


def claim_ports(ports: Iterable[int]) -> list[socket.socket]:
    """Claim the ports for this hub while the sockets returned stay open, or raise PortServed.

    SO_REUSEPORT lets any process of the same user bind a port its workers listen on, so a
    second `serve --workers N` (another configuration, another database) would start without a
    word and take part of the first one's connections. The kernel cannot tell the two apart; so
    a hub first binds a name of its own per port in Linux's abstract socket namespace: like the
    port, it belongs to the network namespace, only one socket holds it, and it is freed with
    the last process that has it open (nothing on disk to go stale). Workers inherit the
    supervisor's, so a port stays claimed while any of them still serves it.
    """
    if not sys.platform.startswith("linux"):
        return []  # no abstract names; SO_REUSEPORT spreads no connections elsewhere either
    claims: list[socket.socket] = []
    try:
        for port in sorted({port for port in ports if port > 0}):
            claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            claims.append(claim)
            try:
                claim.bind(_claim_name(port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                raise PortServed(port, _claimed_by(port)) from None
            # Listening, so that a hub refused the port can ask whose claim it is.
            claim.listen()
    except BaseException:
        for claim in claims:
            claim.close()
        raise
    return claims


def _claim_name(port: int) -> bytes:
    return f"\0govtalk-gateway/port/{port}".encode()


def _claimed_by(port: int) -> int | None:
    """The pid of the process that claimed `port` (the credentials it listened with)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            probe.connect(_claim_name(port))
            credentials = probe.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
            )
    except OSError:
        return None  # gone meanwhile, or too many asking at once: the message goes without it
    pid: int = struct.unpack("3i", credentials)[0]
    return pid


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
    """Run the workers until a signal stops them; the exit code of the supervisor.

    Raises PortServed, before anything is prepared, when another hub serves one of the ports."""
    server = config.server
    claims = claim_ports((server.port, server.https_port))
    try:
        return _prepare_and_supervise(config, workers, command, claims)
    finally:
        for claim in claims:
            claim.close()


def _prepare_and_supervise(
    config: Config, workers: int, command: list[str], claims: Sequence[socket.socket]
) -> int:
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
        return _supervise(workers, command, metrics_dir, [claim.fileno() for claim in claims])
    finally:
        if not given:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(
    workers: int, command: list[str], metrics_dir: str, inherited: Sequence[int] = ()
) -> int:
    """inherited: file descriptors every worker keeps open (the port claims)."""
    stopping: float | None = None  # when the first SIGINT / SIGTERM came
    killed = False

    def kill(reason: str) -> None:
        nonlocal killed
        killed = True
        alive = [proc for proc in procs.values() if proc.poll() is None]
        if alive:
            log.warning("workers.killed", reason=reason, pids=[proc.pid for proc in alive])
        for proc in alive:
            proc.kill()

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if stopping is not None:
            # Asked again while they stop: a worker stuck in its stop must not keep the hub up.
            kill(f"{signal.Signals(signum).name} while stopping")
            return
        stopping = time.monotonic()
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
        proc = subprocess.Popen(command, env=env, pass_fds=inherited)
        log.info("workers.started", worker=index, pid=proc.pid)
        return proc

    deaths: list[float] = []
    procs = {index: start(index) for index in range(workers)}
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while any(proc.poll() is None for proc in procs.values()) or stopping is None:
        time.sleep(0.2)
        if stopping is not None:
            if not killed and time.monotonic() - stopping > STOP_GRACE_SECONDS:
                kill(f"not stopped after {STOP_GRACE_SECONDS:g}s")
            continue
        for index, proc in list(procs.items()):
            returned = proc.poll()
            if returned is None:
                continue
            now = time.monotonic()
            deaths[:] = [t for t in deaths if now - t < CRASH_WINDOW_SECONDS] + [now]
            if len(deaths) > MAX_RESTARTS:
                log.error("workers.crash_loop", worker=index, **_ended(returned))
                stop(signal.SIGTERM, None)
                # Not a signal's negative number, which the shell would show as 256 minus it.
                code = returned if returned > 0 else 1
                break
            # Its acknowledged work is in the database; another worker (or this one, restarted)
            # picks it up when its lease runs out.
            log.warning("workers.died", worker=index, **_ended(returned))
            procs[index] = start(index)
    return code


def _ended(returned: int) -> dict[str, int | str]:
    """How a worker ended, for the log: its exit code, or the signal that killed it."""
    if returned < 0:
        try:
            return {"signal": signal.Signals(-returned).name}
        except ValueError:
            return {"signal": str(-returned)}
    return {"exit_code": returned}
