"""The identity JSON API: registration, enrolment with known facts, activation, the letters outbox.

    POST /api/registrations                     anyone      → 201 {user_id, kind}
    GET  /api/enrolments                        citizen     → 200 {enrolments: [...]}
    POST /api/enrolments                        citizen     → 202 {id, state, letter: "sent"}
    POST /api/enrolments/{id}/activation        citizen     → 200 {id, state: "active", keys}
    GET  /admin/letters[?user_id=]              admin       → 200 {letters: [...]}

Citizens authenticate with HTTP Basic (User ID + password); admin endpoints are for admins (the
gate in gateway/console/routes.py).
Every failure is problem+json (RFC 9457), with extension members where they help a client
(attempts_remaining, locked_until, expired_at).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.audit.log import audit
from gateway.errors import ProblemError
from gateway.identity import registration
from gateway.identity.certificates import CertificateRefused
from gateway.identity.enrolment import (
    EnrolmentService,
    build_services,
    route_lookup,
)
from gateway.identity.http_basic import decode_basic
from gateway.identity.passwords import dummy_hash, verify_secret
from gateway.services.letters import LetterService
from gateway.sso.errors import InvalidToken
from gateway.store.engine import Database
from gateway.store.models import INDIVIDUAL, Citizen
from gateway.web.bodies import json_object
from gateway.web.dsp_views import client_certificate
from gateway.web.keys import AUTH_GUARD, CLIENT_CERTIFICATES, CONFIG, CONNECTORS, DB, ROUTES, SSO
from gateway.web.local_peers import is_trusted_local_peer

ENROLMENTS = web.AppKey("enrolments", EnrolmentService)
LETTERS = web.AppKey("letters", LetterService)

REALM = "Government Gateway"
# Checked when the user ID is unknown, so a miss costs as long as a wrong password.


def add_identity_routes(app: web.Application) -> None:
    app.router.add_post("/api/registrations", register_view)
    app.router.add_get("/api/enrolments", list_enrolments_view)
    app.router.add_post("/api/enrolments", enrol_view)
    app.router.add_post("/api/enrolments/{id}/activation", activate_view)
    app.router.add_get("/admin/letters", letters_view)


async def identity_services(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the letters outbox and the enrolment service (after the DB and connectors)."""
    from gateway.web.app import CLOCK  # here, not at the top: app.py imports this module

    config = app[CONFIG]
    letters, enrolments = build_services(
        config.enrolment, app[DB], route_lookup(app[ROUTES], app[CONNECTORS]), app[CLOCK]
    )
    app[LETTERS] = letters
    app[ENROLMENTS] = enrolments
    yield


# --- authentication -----------------------------------------------------------------


def _unauthorised(detail: str) -> ProblemError:
    challenge = f'Basic realm="{REALM}", charset="UTF-8"'
    return ProblemError(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who a JSON API request acts for, and how strongly they proved it."""

    user_id: str
    method: str  # "sso" | "certificate" | "clear" (a password)
    level: int  # the Gateway's authentication level: 2 with a certificate, else 1


async def citizen_from_request(request: web.Request) -> str:
    """The authenticated citizen's User ID, or ProblemError(401)."""
    return (await signed_in(request)).user_id


async def signed_in(request: web.Request) -> SignedIn:
    """The authenticated citizen, or ProblemError(401).

    An SSO access token with the `gateway` scope (a portal acting for its signed-in citizen),
    else a TLS client certificate registered to the citizen, else HTTP Basic with User ID and
    password, checked against the scrypt hash.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return await _citizen_by_token(request, token.strip())
    der = client_certificate(request)
    if der is not None:
        try:
            return SignedIn(await request.app[CLIENT_CERTIFICATES].user_for(der), "certificate", 2)
        except CertificateRefused as exc:
            raise _unauthorised(exc.reason) from None
    if not header:
        raise _unauthorised("sign in with HTTP Basic: your User ID and password")
    decoded = decode_basic(header)
    if decoded is None:
        raise _unauthorised("the Authorization header is not valid HTTP Basic")
    user_id, password = decoded
    if not await guarded_password_check(request, user_id, password):
        raise _unauthorised("the User ID or password was not recognised")
    return SignedIn(user_id, "clear", 1)


async def guarded_password_check(request: web.Request, user_id: str, password: str) -> bool:
    """check_password behind the lockout: ProblemError(429) while the sender or address is
    locked out; a failure counts towards it, a success clears the sender's count."""
    from gateway.web.app import CLOCK  # here, not at the top: app.py imports this module

    guard, now = request.app[AUTH_GUARD], request.app[CLOCK]()
    locked = await guard.locked(user_id, request.remote, now)
    if locked is not None:
        raise ProblemError(
            429,
            "Too Many Requests",
            locked.text(),
            headers={"Retry-After": str(locked.seconds(now))},
        )
    if await check_password(request.app[DB], user_id, password):
        await guard.succeeded(user_id)
        return True
    await guard.failed(user_id, request.remote, now)
    return False


async def _citizen_by_token(request: web.Request, token: str) -> SignedIn:
    from gateway.sso.provider import API_SCOPE
    from gateway.web.sso_views import presented_certificate

    provider = request.app[SSO]
    await provider.keyring.refresh()
    claims, session, _ = await provider.access(token, presented_certificate(request))
    if API_SCOPE not in str(claims["scope"]).split():
        raise InvalidToken(f"the token was not granted the '{API_SCOPE}' scope")
    return SignedIn(session.user_id, "sso", session.level)


async def check_password(db: Database, user_id: str, password: str) -> bool:
    """Whether the password is the citizen's; an unknown User ID costs as long as a wrong one."""
    stored = None
    if user_id and len(user_id) <= 64:
        async with db.read() as session:
            citizen = await session.get(Citizen, user_id)
            stored = citizen.password_hash if citizen is not None else None
    ok = await asyncio.to_thread(verify_secret, password, stored or dummy_hash())
    return stored is not None and ok


def require_admin(request: web.Request) -> None:
    """Admin endpoints answer admins only: the admin gate (console/routes.py) decides who is."""
    from gateway.console import auth  # the console imports this module

    if auth.ADMIN in request:
        return
    if auth.installed(request.app) or not is_trusted_local_peer(request):
        raise ProblemError(403, "Forbidden", "the admin API answers only admins")


def _string(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ProblemError(400, "Bad Request", f"'{name}' must be a non-empty string")
    return value


# --- views ---------------------------------------------------------------------------------------


async def register_view(request: web.Request) -> web.Response:
    data = await json_object(request)
    kind = _string(data, "kind", required=False) or INDIVIDUAL
    display_name = _string(data, "display_name", required=False) or ""
    password = _string(data, "password", required=False)
    certificate = _string(data, "certificate_pem", required=False)
    db: Database = request.app[DB]
    user_id = await registration.register(
        db,
        kind=kind,
        display_name=display_name,
        password=password,
        certificate_pem=certificate,
        clock=request.app[ENROLMENTS].clock,
    )
    audit("identity.registered", actor=user_id, kind=kind, certificate=certificate is not None)
    return web.json_response(
        {"user_id": user_id, "kind": kind, "display_name": " ".join(display_name.split())},
        status=201,
        headers={"Location": "/api/enrolments"},
    )


async def list_enrolments_view(request: web.Request) -> web.Response:
    user_id = await citizen_from_request(request)
    views = await request.app[ENROLMENTS].list(user_id)
    return web.json_response({"user_id": user_id, "enrolments": [v.to_json() for v in views]})


async def enrol_view(request: web.Request) -> web.Response:
    user_id = await citizen_from_request(request)
    data = await json_object(request)
    class_ = _string(data, "class")
    organisation = _string(data, "organisation")
    facts = data.get("facts")
    if not isinstance(facts, dict) or not all(isinstance(v, str) for v in facts.values()):
        raise ProblemError(400, "Bad Request", "'facts' must be an object of strings")
    assert class_ is not None and organisation is not None
    view = await request.app[ENROLMENTS].request(user_id, class_, organisation, facts)
    audit(
        "enrolment.facts_accepted",
        actor=user_id,
        enrolment=view.id,
        class_=view.class_,
        organisation=view.organisation,
    )
    body = view.to_json()
    body["letter"] = "sent"
    return web.json_response(
        body, status=202, headers={"Location": f"/api/enrolments/{view.id}/activation"}
    )


async def activate_view(request: web.Request) -> web.Response:
    user_id = await citizen_from_request(request)
    try:
        enrolment_id = int(request.match_info["id"])
        if not 0 < enrolment_id < 2**63:  # beyond any database's row ids
            raise ValueError(enrolment_id)
    except ValueError:
        raise ProblemError(404, "No such enrolment", "no such enrolment") from None
    data = await json_object(request)
    pin = _string(data, "pin")
    assert pin is not None
    view = await request.app[ENROLMENTS].activate(user_id, enrolment_id, pin)
    audit("enrolment.activated", actor=user_id, enrolment=view.id, class_=view.class_)
    return web.json_response(view.to_json())


async def letters_view(request: web.Request) -> web.Response:
    require_admin(request)
    user_id = request.query.get("user_id") or None
    letters = await request.app[LETTERS].list(user_id)
    return web.json_response({"letters": [letter.to_json() for letter in letters]})
