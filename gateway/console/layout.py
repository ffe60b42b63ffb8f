"""Rendering console pages: one Jinja2 environment (autoescaped), one response shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2
from aiohttp import web
from markupsafe import Markup

from gateway.console import auth

# Autoescape everything: request and response XML, citizens' names and council data are all
# untrusted text on these pages.
env = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

NAV = (
    ("transactions", "/console/transactions", "Transactions"),
    ("journeys", "/console/journeys", "Journeys"),
    ("connectors", "/console/connectors", "Connectors"),
    ("services", "/console/services", "Letters & mail"),
    ("audit", "/console/audit", "Audit"),
    ("settings", "/console/settings", "Routes & configuration"),
)

# Scripts, styles and the event stream from this origin only; no inline script, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A UTC timestamp as people read it ('' for None)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime(fmt)


env.filters["when"] = when


def html(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """The rendered page as a response (for callers that need the status or headers)."""
    section = context.pop("section", "")
    text = env.get_template(template).render(
        nav=NAV,
        section=section,
        admin=request.get(auth.ADMIN),
        csrf_field=Markup(auth.csrf_field(request)),
        request_path=request.path_qs,
        **context,
    )
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CSP
    # Not no-referrer: with it Chromium sends "Origin: null" on the console's own form posts,
    # and auth.check_csrf compares the Origin. Other sites still learn nothing.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    auth.set_csrf_cookie(request, response)
    return response


async def render(request: web.Request, template: str, **context: Any) -> web.Response:
    """Render a console template (extending base.html) as a no-store HTML response.

    Every template gets `nav`, `section` (the nav entry to mark current; pass it in context),
    `admin` (the AdminIdentity), `csrf_field` (the hidden input for POST forms) and
    `request_path`.
    """
    return html(request, template, **context)


def error_page(request: web.Request, status: int, title: str, detail: str) -> web.Response:
    """The console's HTML answer to a refusal or failure."""
    return html(request, "error.html", status=status, title=title, detail=detail)
