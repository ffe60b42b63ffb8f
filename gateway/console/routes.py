"""The console's routes, and the one gate every /console and /admin request passes.

Page modules add their routes and never check who is asking: `admin_gate` does, here, for the
console's pages (an HTML sign-in page or refusal), the admin JSON API (problem+json, through
web/problems.py) and the few admin-only paths elsewhere. Console POSTs are refused without the
CSRF token (auth.check_csrf) before any page module sees them.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from aiohttp import web

from gateway.audit.log import audit
from gateway.console import audit as audit_page  # not `audit`: the trail's function is
from gateway.console import (
    auth,
    connectors,
    journeys,
    layout,
    live,
    refusals,
    services,
    settings,
    signin,
    transactions,
)
from gateway.errors import ProblemError
from gateway.web.keys import CONFIG
from gateway.web.problems import Handler

log = structlog.get_logger("gateway.console")

STATIC = Path(__file__).parent / "static"
# Reachable without being an admin: the sign-in form and the stylesheet and script it uses.
_OPEN_PREFIXES = ("/console/sign-in", "/console/static/")
# Admin-only paths outside /admin (they call require_admin too).
_OTHER_ADMIN_PATHS = frozenset({"/api/payments/webhooks/attempts", "/metrics"})


def add_console_routes(app: web.Application) -> None:
    """Register every console page and the admin gate on the hub's app."""
    auth.install(app)
    app.middlewares.append(admin_gate)
    app.router.add_get("/console", _home)
    app.router.add_get("/console/", _home)
    app.router.add_static("/console/static/", STATIC, append_version=False)
    signin.add_routes(app)
    live.add_routes(app)
    transactions.add_routes(app)
    refusals.add_routes(app)
    connectors.add_routes(app)
    # The other console pages add themselves here, one line each.
    journeys.add_routes(app)
    services.add_routes(app)
    audit_page.add_routes(app)
    settings.add_routes(app)


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/transactions")


def _is_console(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


@web.middleware
async def admin_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admins only on /console and /admin; the console's failures as HTML pages."""
    path = request.path
    if _is_console(path):
        return await _console(request, handler)
    if path.startswith("/admin/") or path in _OTHER_ADMIN_PATHS:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            auth.refuse_cross_site(request)  # problem+json 403, an api.refused record
        identity = await auth.admin_identity(request)
        if identity is None:
            raise auth.refusal(request)  # problem+json and an api.refused record (problems.py)
        request[auth.ADMIN] = identity
    return await handler(request)


async def _console(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if not request.path.startswith(_OPEN_PREFIXES):
            identity = await auth.admin_identity(request)
            if identity is None:
                return _refused(request)
            request[auth.ADMIN] = identity
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                auth.check_csrf(request, await request.post())
        return await handler(request)
    except ProblemError as exc:
        _audit(request, exc.status, exc.detail)
        response = layout.error_page(request, exc.status, exc.title, exc.detail)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        _audit(request, exc.status, exc.reason)
        default = {
            404: "There is no console page at this address.",
            405: "This page does not answer that kind of request.",
        }.get(exc.status, exc.reason)
        custom = exc.text and exc.text != f"{exc.status}: {exc.reason}"
        detail = exc.text if custom and exc.text else default
        return layout.error_page(request, exc.status, exc.reason, detail)
    except Exception:
        log.exception("console.failed")
        return layout.error_page(
            request,
            500,
            "Something went wrong",
            "The console could not show this page; the hub's log has the details.",
        )


def _refused(request: web.Request) -> web.Response:
    from gateway.console.signin import sign_in_page

    refusal = auth.refusal(request)
    _audit(request, refusal.status, refusal.detail)
    if refusal.status == 401 and request.app[CONFIG].admin.password_hash:
        # The sign-in form itself, at the address asked for: 401, and back here afterwards.
        return sign_in_page(request, status=401)
    response = layout.error_page(request, refusal.status, refusal.title, refusal.detail)
    response.headers.update(refusal.headers)
    return response


def _audit(request: web.Request, status: int, reason: str) -> None:
    audit(
        "console.refused",
        outcome="refused",
        status=status,
        reason=reason,
        method=request.method,
        path=request.path[:200],
        address=request.remote,
    )
