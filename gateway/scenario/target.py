"""Where scenarios run: an embedded hub (fresh temporary SQLite, demo data) or a hub at a URL."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp


@dataclass(frozen=True, slots=True)
class Target:
    url: str  # plain HTTP base URL (password clients, admin API on loopback)
    https_url: str | None  # HTTPS with client certificates, if the hub offers it
    ca_bundle: Path | None  # the hub's CA chain, to trust its HTTPS certificate
    pki_dir: Path | None  # embedded only: where the demo citizens' certificates are
    embedded: bool


def _loopback_socket() -> socket.socket:
    """A loopback socket on a port the OS picks, held from now on: a port chosen and let go
    until the hub (its PKI made first) binds it can be taken meanwhile by any connection's
    own end, and the run fails with 'address already in use'."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def _port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def embedded_hub() -> AsyncIterator[Target]:
    """A hub in this process on free loopback ports, with a movable clock, gone afterwards."""
    from aiohttp import web

    from gateway.clock import MovableClock
    from gateway.config import parse_config
    from gateway.web.app import create_app
    from gateway.web.server import tls_context

    with (
        tempfile.TemporaryDirectory(prefix="gateway-scenario-") as tmp,
        _loopback_socket() as plain,
        _loopback_socket() as secure,
    ):
        root = Path(tmp)
        ports = {"port": _port(plain), "https_port": _port(secure)}
        config = parse_config(
            {
                "data_dir": str(root / "var"),
                "pki": {"dir": str(root / "certs")},
                "server": {**ports, "movable_clock": True},
                "dispatcher": {"idle_poll_seconds": 0.05},
            }
        )
        # View Council Tax with a short deadline and one retry, so a scenario that makes a back
        # office hang or fail sees its 2005 or 3000 in seconds (the simulated councils answer in
        # milliseconds, so nothing else notices).
        config = dataclasses.replace(
            config,
            routes=tuple(
                dataclasses.replace(r, timeout=2.0, retries=1, backoff=0.1)
                if r.class_ == "LA-CTAX-VIEW"
                else r
                for r in config.routes
            ),
        )
        app = create_app(config, clock=MovableClock())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.SockSite(runner, plain).start()
            context = tls_context(config)
            https = None
            if context is not None:
                await web.SockSite(runner, secure, ssl_context=context).start()
                https = f"https://localhost:{config.server.https_port}"
            yield Target(
                url=f"http://127.0.0.1:{config.server.port}",
                https_url=https,
                ca_bundle=config.pki_dir / "ca-bundle.pem",
                pki_dir=config.pki_dir,
                embedded=True,
            )
        finally:
            await runner.cleanup()


@contextlib.asynccontextmanager
async def remote_hub(url: str, https_url: str | None, workdir: Path) -> AsyncIterator[Target]:
    """A running hub: its CA chain is fetched from /pki/ca-bundle.pem to trust its HTTPS."""
    base = url.rstrip("/")
    ca = workdir / "hub-ca-bundle.pem"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/pki/ca-bundle.pem") as resp:
            if resp.status == 200:
                ca.write_bytes(await resp.read())
    yield Target(
        url=base,
        https_url=https_url.rstrip("/") if https_url else None,
        ca_bundle=ca if ca.exists() else None,
        pki_dir=None,
        embedded=False,
    )
