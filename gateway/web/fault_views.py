"""Fault injection through the admin API (admins only, like the rest of /admin).

    GET    /admin/faults                                 → 200 {faults: [...], catalogue: [...]}
    PUT    /admin/faults/{connector}  {fault, params?}   → 200 {connector, fault, params, set_at}
    DELETE /admin/faults/{connector}                     → 204 (404 when none is set)

An unknown fault, bad parameters or a fault the connector's type cannot have is 422; an unknown
connector 404 — problem+json naming the problem. Every set and clear is logged as a structured
`faults.set` / `faults.cleared` event (routing/fault_control.py); the tamper-evident audit trail
is a later issue. The scenario runner's `fault` step drives these endpoints.
"""

from __future__ import annotations

from aiohttp import web

from gateway.console.auth import admin_name
from gateway.routing import fault_control
from gateway.routing.faults import FaultRefused, catalogue_json
from gateway.web.bodies import json_object
from gateway.web.identity_views import require_admin
from gateway.web.keys import CONFIG, DB, DISPATCHER

_MEMBERS = frozenset({"fault", "params"})


def add_fault_routes(app: web.Application) -> None:
    app.router.add_get("/admin/faults", list_view)
    app.router.add_put("/admin/faults/{connector}", set_view)
    app.router.add_delete("/admin/faults/{connector}", clear_view)


async def list_view(request: web.Request) -> web.Response:
    require_admin(request)
    faults = await fault_control.list_faults(request.app[DB])
    return web.json_response(
        {"faults": [f.to_json() for f in faults], "catalogue": catalogue_json()}
    )


async def set_view(request: web.Request) -> web.Response:
    from gateway.web.app import CLOCK  # here, not at the top: app.py imports this module

    require_admin(request)
    data = await json_object(request)
    unknown = sorted(set(data) - _MEMBERS)
    if unknown:
        raise FaultRefused(f'unknown member \'{unknown[0]}\'; send {{"fault", "params"}}')
    profile = await fault_control.set_fault(
        request.app[DB],
        request.app[CONFIG].connectors,
        request.match_info["connector"],
        data.get("fault"),
        data.get("params"),
        now=request.app[CLOCK](),
        via="api",
        actor=admin_name(request),
    )
    _changed(request)
    return web.json_response(profile.to_json())


async def clear_view(request: web.Request) -> web.Response:
    require_admin(request)
    await fault_control.clear_fault(
        request.app[DB], request.match_info["connector"], via="api", actor=admin_name(request)
    )
    _changed(request)
    return web.Response(status=204)


def _changed(request: web.Request) -> None:
    # This process's dispatcher applies the change at once; others within their cache interval.
    if DISPATCHER in request.app:
        request.app[DISPATCHER].faults.forget()
