"""Reports through the admin API (admins only, like the rest of /admin).

    GET /admin/reports/bvpi157[?council=CODE]   → 200 the report (gateway/routing/bvpi157.py)

An organisation no route serves is 404, problem+json naming the ones that exist.
"""

from __future__ import annotations

from aiohttp import web

from gateway.errors import ProblemError
from gateway.reports import bvpi157_report
from gateway.routing.bvpi157 import UnknownCouncil
from gateway.web.identity_views import require_admin
from gateway.web.keys import DB, ROUTES


def add_report_routes(app: web.Application) -> None:
    app.router.add_get("/admin/reports/bvpi157", bvpi157_view)


async def bvpi157_view(request: web.Request) -> web.Response:
    from gateway.web.app import CLOCK  # here, not at the top: app.py imports this module

    require_admin(request)
    council = request.query.get("council") or None
    routes = request.app[ROUTES]
    try:
        report = await bvpi157_report(
            request.app[DB], routes, as_of=request.app[CLOCK](), council=council
        )
    except UnknownCouncil as exc:
        raise ProblemError(404, "Unknown council", str(exc), council=exc.code) from None
    return web.json_response(report.to_json())
