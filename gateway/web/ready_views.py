"""`/ready`: can this hub do its work now — database, dispatcher, CA material, audit trail,
the limit store."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from sqlalchemy import text

from gateway.web.keys import AUDIT, CONFIG, DB, DISPATCHER_TASK, LIMIT_COUNTERS


async def ready_view(request: web.Request) -> web.Response:
    """200 with every check passed, else 503 naming the ones that failed (for load balancers)."""
    from gateway.web.app import CLOCK, PKI

    app = request.app
    checks: dict[str, dict[str, Any]] = {}

    async def check(name: str, probe: Any) -> None:
        started = time.perf_counter()
        try:
            detail = await asyncio.wait_for(probe(), timeout=2)
            checks[name] = {"ok": True, **(detail or {})}
        except Exception as exc:  # a probe's failure is the answer, whatever it is
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        checks[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)

    async def database() -> None:
        async with app[DB].read() as session:
            await session.execute(text("SELECT 1"))

    async def dispatcher() -> dict[str, Any]:
        task = app.get(DISPATCHER_TASK)
        if task is None or task.done():
            raise RuntimeError("the dispatcher is not running")
        return {}

    async def pki() -> dict[str, Any]:
        ca = await asyncio.to_thread(app[PKI])
        # The CRL is signed on demand: producing one proves the CA key is loaded and usable.
        crl = await asyncio.to_thread(ca.crl, app[CLOCK]())
        return {"crl_bytes": len(crl)}

    async def audit() -> dict[str, Any]:
        trail = app.get(AUDIT)
        if trail is None:
            raise RuntimeError("the audit trail is not running")
        return {"dropped_events": trail.dropped}

    async def limits() -> dict[str, Any]:
        counters = app[LIMIT_COUNTERS]
        ping = getattr(counters, "ping", None)  # a shared store; memory needs no check
        if ping is not None:
            await ping()
        return {"store": app[CONFIG].limits.store}

    await asyncio.gather(
        check("database", database),
        check("dispatcher", dispatcher),
        check("pki", pki),
        check("audit", audit),
        check("limits", limits),
    )
    ok = all(c["ok"] for c in checks.values())
    return web.json_response(
        {"status": "ready" if ok else "not ready", "checks": checks},
        status=200 if ok else 503,
        headers={"Cache-Control": "no-store"},
    )
