"""PKI fixtures: a fresh PKI per test and its HTTP endpoints on a real socket."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from gateway.pki import Pki
from gateway.web.pki_views import add_pki_routes

BASE_URL = "http://127.0.0.1:8080"
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.init(tmp_path / "certs", base_url=BASE_URL, hosts=["hub.example.test"])


async def start(app: web.Application, ssl_context: object = None) -> tuple[web.AppRunner, int]:
    """Serve app on 127.0.0.1 with an ephemeral port."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)  # type: ignore[arg-type]
    await site.start()
    server = site._server
    assert server is not None
    port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, port


@pytest.fixture
async def pki_url(pki: Pki) -> AsyncIterator[str]:
    app = web.Application()
    add_pki_routes(app, lambda: pki)
    runner, port = await start(app)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
def run() -> Run:
    def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args], capture_output=True, text=True, timeout=30, cwd=cwd
        )

    return _run
