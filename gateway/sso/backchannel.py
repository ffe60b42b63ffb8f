"""Back-channel logout (OIDC Back-Channel Logout 1.0): tell each portal its session ended.

Owed from the sign-out on (recorded with the session's end, gateway/sso/sessions.py), tried at
once by the sign-out, then by the retry pass (`retry_pass`) until the portal accepts it or 12
hours have gone; every attempt's outcome is recorded, and giving up is audited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import structlog

from gateway.audit.log import audit
from gateway.sso.provider import LogoutNotice, Provider

log = structlog.get_logger("gateway.sso")


@dataclass(frozen=True, slots=True)
class Delivery:
    client_id: str
    client_name: str
    delivered: bool
    detail: str


async def deliver(
    http: aiohttp.ClientSession, provider: Provider, notices: Sequence[LogoutNotice]
) -> list[Delivery]:
    """POST every logout token at once and record each outcome; a portal that fails or hangs is
    never waited on beyond [sso] backchannel_timeout (the sign-on has ended at the hub either
    way) and is tried again by the retry pass."""
    limit = provider.config.backchannel_timeout
    deliveries = await asyncio.gather(*(_one(http, n, limit) for n in notices))
    for notice, delivery in zip(notices, deliveries, strict=True):
        error = None if delivery.delivered else delivery.detail
        if await provider.sessions.logout_outcome(notice.sid, delivery.client_id, error):
            audit(
                "sso.backchannel_given_up",
                outcome="failed",
                client_id=delivery.client_id,
                sid_prefix=notice.sid[:8],
                error=error,
            )
    return list(deliveries)


async def retry_pass(http: aiohttp.ClientSession, provider: Provider) -> int:
    """Send the back-channel logouts due again; how many were tried."""
    notices = await provider.due_logouts()
    if notices:
        await deliver(http, provider, notices)
    return len(notices)


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
