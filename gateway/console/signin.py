"""Signing in to the console with the admin credentials, and signing out."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from gateway.audit.log import audit
from gateway.console import auth, layout
from gateway.web.keys import CONFIG


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/sign-in", sign_in_view)
    app.router.add_post("/console/sign-in", sign_in_submit)
    app.router.add_post("/console/sign-out", sign_out_view)


def _next(value: str) -> str:
    """Only a console path on this hub: never an open redirect."""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console"):
        return "/console/transactions"
    if value.startswith("//") or "\\" in value:
        return "/console/transactions"
    return value


def sign_in_page(
    request: web.Request, *, status: int = 200, message: str = "", user: str = ""
) -> web.Response:
    """The sign-in form; `next` is where a successful sign-in goes."""
    target = request.query.get("next") or (
        request.path_qs if request.path.startswith("/console") else ""
    )
    if request.path == "/console/sign-in" and request.method == "GET":
        target = request.query.get("next", "")
    return layout.html(
        request,
        "sign_in.html",
        status=status,
        message=message,
        next=_next(target or "/console/transactions"),
        user=user,
    )


async def sign_in_view(request: web.Request) -> web.Response:
    if not request.app[CONFIG].admin.password_hash:
        raise auth.AdminRefused(
            404, "Not Found", "no admin password is configured ([admin] password_hash)"
        )
    return sign_in_page(request)


async def sign_in_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    auth.check_csrf(request, form)
    user, password = str(form.get("user", "")), str(form.get("password", ""))
    target = _next(str(form.get("next", "")))
    if await auth.check_credentials(request, user, password):
        audit("console.signed_in", actor=user, via="password")
        response = web.HTTPSeeOther(target)
        auth.set_session(request, response, user)
        raise response
    audit("console.sign_in_refused", outcome="refused", user=user[:64], via="form")
    return layout.html(
        request,
        "sign_in.html",
        status=401,
        message="That user name and password are not the admin's.",
        next=target,
        user=user,
    )


async def sign_out_view(request: web.Request) -> web.StreamResponse:
    admin = request.get(auth.ADMIN)
    audit("console.signed_out", actor=admin.name if admin else None)
    response = web.HTTPSeeOther("/console/sign-in" if admin else "/console/transactions")
    auth.clear_session(response)
    raise response
