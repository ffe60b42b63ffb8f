"""Running the hub: a plain-HTTP listener (loopback, password clients, CRL/OCSP) and an HTTPS
listener with optional client certificates, on one application."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import ssl
from dataclasses import dataclass

import structlog
from aiohttp import web

from gateway.config import Config

log = structlog.get_logger("gateway.server")

# Measured under load (bench/README.md): the collector's passes were a tail of acknowledgement
# latency. Young collections every 700 allocations, and full ones walking every object the hub
# holds for life (modules, the ORM's mappings, schemas, the PKI). Once the hub is up, what it
# holds is moved out of the collector's sight and young collections run less often: about 15 %
# more acknowledgements/s and half the p99, for no measurable memory.
GC_THRESHOLDS = (50_000, 50, 100)


def settle_heap() -> None:
    """Freeze what startup built and space the collector's passes out (call once, when up)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@dataclass(frozen=True, slots=True)
class Listening:
    http_url: str
    https_url: str | None


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The HTTPS context from the hub's PKI, created on first use; None when HTTPS is off."""
    if not config.server.https_port:
        return None
    from gateway.pki.ca import Pki
    from gateway.pki.tls import server_ssl_context

    pki = Pki.ensure(config.pki_dir, base_url=config.pki_base_url, hosts=config.pki.hosts)
    return server_ssl_context(pki)


async def start(
    app: web.Application, config: Config, *, reuse_port: bool = False
) -> tuple[web.AppRunner, Listening]:
    """Start both listeners; the caller owns runner.cleanup().

    reuse_port: SO_REUSEPORT, so that worker processes share the ports and the kernel spreads
    connections among them."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    server = config.server
    # None leaves the socket option unset (its default), so a second hub on the port still fails.
    shared = True if reuse_port else None
    await web.TCPSite(runner, server.host, server.port, reuse_port=shared).start()
    shown = "127.0.0.1" if server.host in ("0.0.0.0", "") else server.host
    https_url = None
    context = tls_context(config)
    if context is not None:
        await web.TCPSite(
            runner, server.host, server.https_port, ssl_context=context, reuse_port=shared
        ).start()
        https_url = (
            f"https://localhost:{server.https_port}"
            if shown == "127.0.0.1"
            else f"https://{shown}:{server.https_port}"
        )
    return runner, Listening(f"http://{shown}:{server.port}", https_url)


async def serve_forever(
    app: web.Application,
    config: Config,
    *,
    reuse_port: bool = False,
    supervisor: int | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (dispatcher drained, DB closed).

    supervisor: the pid of the `--workers` supervisor; should it die without passing a signal
    on (SIGKILL), this worker stops as if signalled rather than serve on unsupervised.

    A hub on its own claims its ports first, as the supervisor does for its workers (which
    inherit its claim), so that a supervisor started on them later is refused at once rather
    than after its workers failed to bind (raises PortServed in turn)."""
    from gateway.web.workers import claim_ports

    claims = [] if reuse_port else claim_ports((config.server.port, config.server.https_port))
    try:
        await _serve(app, config, reuse_port=reuse_port, supervisor=supervisor)
    finally:
        for claim in claims:
            claim.close()


async def _serve(
    app: web.Application, config: Config, *, reuse_port: bool, supervisor: int | None
) -> None:
    runner, listening = await start(app, config, reuse_port=reuse_port)
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch = None
    if supervisor is not None:
        watch = asyncio.create_task(_watch_supervisor(supervisor, stop), name="supervisor")
    log.info("server.ready", http=listening.http_url, https=listening.https_url)
    try:
        await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
        await runner.cleanup()


async def _watch_supervisor(supervisor: int, stop: asyncio.Event) -> None:
    # Polled: no event announces a parent's death (Linux's PR_SET_PDEATHSIG is not portable).
    while os.getppid() == supervisor:  # noqa: ASYNC110
        await asyncio.sleep(1)
    log.warning("server.supervisor_gone", supervisor=supervisor)
    stop.set()
