"""Mutual TLS with the hub's server context: curl and aiohttp as clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from subprocess import CompletedProcess

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.pki import Pki
from gateway.pki.tls import client_ssl_context, server_ssl_context
from tests.pki.conftest import Run, start

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

SEEN: web.AppKey[list[bytes | None]] = web.AppKey("seen", list)


async def whoami(request: web.Request) -> web.Response:
    assert request.transport is not None
    der = request.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
    request.app[SEEN].append(der)
    if der is None:
        return web.Response(text="anonymous")
    return web.Response(text=x509.load_der_x509_certificate(der).subject.rfc4514_string())


@pytest.fixture
async def https(pki: Pki) -> AsyncIterator[tuple[int, list[bytes | None]]]:
    app = web.Application()
    app[SEEN] = []
    app.router.add_get("/whoami", whoami)
    runner, port = await start(app, server_ssl_context(pki))
    yield port, app[SEEN]
    await runner.cleanup()


async def _curl(run: Run, port: int, pki: Pki, *extra: str | Path) -> CompletedProcess[str]:
    args = ["curl", "-sS", "--max-time", "10", "--cacert", pki.ca_bundle_path, *extra]
    return await asyncio.to_thread(lambda: run(*args, f"https://localhost:{port}/whoami"))


async def test_curl_with_a_client_certificate(pki: Pki, https, run: Run) -> None:
    port, seen = https
    issued = pki.issue("ivan", common_name="Ivan Petrov")
    result = await _curl(run, port, pki, "--cert", issued.cert_path, "--key", issued.key_path)
    assert result.returncode == 0, result.stderr
    assert "CN=Ivan Petrov" in result.stdout
    assert seen == [issued.cert.public_bytes(serialization.Encoding.DER)]


async def test_curl_without_a_certificate_still_connects(pki: Pki, https, run: Run) -> None:
    port, seen = https
    result = await _curl(run, port, pki)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "anonymous"
    assert seen == [None]


async def test_foreign_certificate_is_refused_at_the_handshake(
    pki: Pki, https, run: Run, tmp_path: Path
) -> None:
    port, seen = https
    stranger = Pki.init(tmp_path / "other", base_url="http://x.invalid").issue(
        "mallory", common_name="Mallory"
    )
    creds = ("--cert", stranger.cert_path, "--key", stranger.key_path)
    # Under TLS 1.3 the server refuses after the client's Finished, so curl sees only a closed
    # connection; under TLS 1.2 the refusal is visibly a handshake failure (curl exit 35).
    assert (await _curl(run, port, pki, *creds)).returncode != 0
    tls12 = await _curl(run, port, pki, "--tls-max", "1.2", *creds)
    assert tls12.returncode == 35, tls12.stderr
    assert seen == []


async def test_aiohttp_client_context(pki: Pki, https) -> None:
    port, seen = https
    issued = pki.issue("judy", common_name="Judy")
    ctx = client_ssl_context(pki.ca_bundle_path, issued.cert_path, issued.key_path)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"https://localhost:{port}/whoami", ssl=ctx) as resp:
            assert "CN=Judy" in await resp.text()
        # The hub's certificate names 127.0.0.1 too.
        bare = client_ssl_context(pki.ca_bundle_path)
        async with session.get(f"https://127.0.0.1:{port}/whoami", ssl=bare) as resp:
            assert await resp.text() == "anonymous"
    assert len(seen) == 2
