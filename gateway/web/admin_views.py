"""Admin API for test tooling (admins only: the gate in gateway/console/routes.py): certificates
on demand, and the hub's clock.

    POST /admin/certificates                   {user_id, common_name?}  → 201 {serial, pem, key}
    POST /admin/certificates/{serial}/revoke   {reason?}                → 200 {serial, reason}
    GET  /admin/clock                                                    → 200 {now, movable}
    POST /admin/clock                          {advance_seconds | set}  → 200 {now, movable}

The scenario runner uses these to issue and revoke certificates and to move time, so a scenario
runs the same against the embedded hub and against one started with `[server] movable_clock`.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta

from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.audit.log import audit
from gateway.clock import MovableClock
from gateway.errors import ProblemError
from gateway.identity import citizens
from gateway.identity.registration import UnknownUser, add_certificate
from gateway.pki.ca import NAME_LENGTH, check_name, name_rule
from gateway.pki.errors import PkiError
from gateway.web.bodies import json_object
from gateway.web.identity_views import require_admin
from gateway.web.keys import DB


def add_admin_routes(app: web.Application) -> None:
    app.router.add_post("/admin/certificates", issue_view)
    app.router.add_post("/admin/certificates/{serial}/revoke", revoke_view)
    app.router.add_get("/admin/clock", clock_view)
    app.router.add_post("/admin/clock", move_clock_view)


async def issue_view(request: web.Request) -> web.Response:
    """Issue a citizen certificate from the hub's PKI and register it to the user."""
    from gateway.web.app import CLOCK, PKI

    require_admin(request)
    data = await json_object(request)
    user_id = data.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise ProblemError(400, "Bad Request", "'user_id' is required")
    common_name = data.get("common_name") or user_id
    if not isinstance(common_name, str) or not common_name.strip() or len(common_name) > 64:
        raise ProblemError(400, "Bad Request", "'common_name' must be text of 1 to 64 characters")
    # The certificate's name is the User ID and a suffix, so the User ID must fit the PKI's rule.
    suffix = f"-{secrets.token_hex(4)}"
    try:
        check_name(user_id + suffix)
    except PkiError:
        rule = name_rule(NAME_LENGTH - len(suffix))
        raise ProblemError(400, "Bad Request", f"'user_id' must be {rule}") from None
    # Before issuing: a refusal must not leave a certificate and its key behind.
    if await citizens.find(request.app[DB], user_id) is None:
        raise UnknownUser(f"no user {user_id}")
    pki = await asyncio.to_thread(request.app[PKI])
    now = request.app[CLOCK]()
    issued = await asyncio.to_thread(
        pki.issue,
        user_id + suffix,
        common_name=common_name,
        # Valid from the hub's (perhaps moved) now, so a scenario that moved the clock still works.
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=365),
    )
    pem = issued.cert.public_bytes(Encoding.PEM)
    try:
        await add_certificate(request.app[DB], user_id, pem, clock=request.app[CLOCK])
    except ProblemError:
        # The user was removed since the check: their certificate must not stay usable.
        await asyncio.to_thread(pki.revoke, issued.serial, "cessation_of_operation", now)
        raise
    audit("admin.certificate_issued", actor=user_id, serial=format(issued.serial, "x"))
    return web.json_response(
        {
            "serial": format(issued.serial, "x"),
            "user_id": user_id,
            "certificate_pem": pem.decode("ascii"),
            "key_pem": issued.key_path.read_text(encoding="ascii"),
            "fingerprint": issued.fingerprint,
        },
        status=201,
    )


async def revoke_view(request: web.Request) -> web.Response:
    from gateway.web.app import CLOCK, PKI

    require_admin(request)
    try:
        serial = int(request.match_info["serial"], 16)
    except ValueError:
        raise ProblemError(404, "Not Found", "serials are hexadecimal") from None
    data = await json_object(request) if request.can_read_body else {}
    reason = data.get("reason") or "unspecified"
    if not isinstance(reason, str):
        raise ProblemError(400, "Bad Request", "'reason' must be text")
    pki = await asyncio.to_thread(request.app[PKI])
    try:
        await asyncio.to_thread(pki.revoke, serial, reason, request.app[CLOCK]())
    except (PkiError, ValueError) as exc:
        raise ProblemError(422, "Cannot revoke", str(exc)) from None
    audit("admin.certificate_revoked", serial=format(serial, "x"), reason=reason)
    return web.json_response({"serial": format(serial, "x"), "reason": reason})


def _clock_json(request: web.Request) -> dict[str, object]:
    from gateway.web.app import CLOCK

    clock = request.app[CLOCK]
    return {"now": clock().isoformat(), "movable": isinstance(clock, MovableClock)}


async def clock_view(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response(_clock_json(request))


async def move_clock_view(request: web.Request) -> web.Response:
    from gateway.web.app import CLOCK

    require_admin(request)
    clock = request.app[CLOCK]
    if not isinstance(clock, MovableClock):
        raise ProblemError(
            409, "The clock is real", "start the hub with [server] movable_clock = true to move it"
        )
    data = await json_object(request)
    if "advance_seconds" in data:
        seconds = data["advance_seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ProblemError(400, "Bad Request", "'advance_seconds' must be a number")
        clock.advance(timedelta(seconds=seconds))
    elif "set" in data:
        try:
            when = datetime.fromisoformat(str(data["set"]))
            clock.set(when)
        except ValueError as exc:
            raise ProblemError(400, "Bad Request", f"'set': {exc}") from None
    else:
        raise ProblemError(400, "Bad Request", "give advance_seconds or set")
    audit("admin.clock_moved", now=clock().isoformat())
    return web.json_response(_clock_json(request))
