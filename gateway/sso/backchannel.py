"""Back-channel logout (OIDC Back-Channel Logout 1.0): tell each portal its session ended."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import structlog

from gateway.sso.provider import LogoutNotice

log = structlog.get_logger("gateway.sso")


@dataclass(frozen=True, slots=True)
class Delivery:
    client_id: str
    client_name: str
    delivered: bool
    detail: str


async def deliver(
    http: aiohttp.ClientSession, notices: Sequence[LogoutNotice], limit: float
) -> list[Delivery]:
    """POST every logout token at once; a portal that fails or hangs is logged, never waited on
    beyond `limit` seconds (the sign-on has already ended at the hub either way)."""
    return list(await asyncio.gather(*(_one(http, n, limit) for n in notices)))


async def _one(http: aiohttp.ClientSession, notice: LogoutNotice, limit: float) -> Delivery:
    client = notice.client
    assert client.backchannel_logout_uri is not None
    try:
        async with http.post(
            client.backchannel_logout_uri,
            data={"logout_token": notice.token},
            timeout=aiohttp.ClientTimeout(total=limit),
            allow_redirects=False,
        ) as response:
            ok = response.status in (200, 204)
            detail = f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    log.info(
        "sso.backchannel_logout",
        client_id=client.client_id,
        uri=client.backchannel_logout_uri,
        delivered=ok,
        detail=detail,
    )
    return Delivery(client.client_id, client.name, ok, detail)
