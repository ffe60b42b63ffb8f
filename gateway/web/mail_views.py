"""The secure mail JSON API.

Citizens (HTTP Basic or a registered TLS client certificate, as for /api/enrolments):

    GET    /api/mail                      → 200 {messages: [metadata, newest first]}
    GET    /api/mail/{id}                 → 200 {…, subject, body}; marks it read (once)
    DELETE /api/mail/{id}                 → 204
    POST   /api/mail/{id}/reply {body[, subject]} → 201 {id, delivered}
    GET    /api/notifications             → 200 {notifications: [...]}

Another citizen's message, a deleted one or an unknown id is 404; an expired one 410.

Council systems (as one organisation):

    POST /api/council/mail {class, key_type, key_value, subject, body, sender_message_id,
                            expires_at?, sender?}           → 201 {id}
    GET  /api/council/mail/expired[?since=<report id>]      → 200 {reports: [...]}
    GET  /api/council/mail/replies                          → 200 {replies: [...]}

A council authenticates with `Authorization: Bearer <token>` from `[mail] council_tokens`
(organisation code → token). With no tokens configured (development), only trusted local peers
(web/local_peers.py, while [admin] allow_loopback holds) are answered, and they name their
organisation in an `X-Council` header.

Refusals are problem+json: 401/403 authentication, 404, 409 duplicate sender_message_id,
410 expired, 422 nobody (or several citizens) enrolled for the identifier, 507 mailbox full.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiohttp import web

from connectors.protocol import ConnectorContext, MailMessage
from gateway.audit.log import audit
from gateway.errors import ProblemError
from gateway.identity.enrolment import route_lookup
from gateway.services.mail.crypto import MailCrypto
from gateway.services.mail.service import (
    MAX_REPORT_ID,
    ConnectorMail,
    MailService,
    report_json,
)
from gateway.web.background import sleep_unless_stopped, stop_task
from gateway.web.bodies import json_object
from gateway.web.identity_views import LETTERS, citizen_from_request
from gateway.web.keys import CONFIG, CONNECTORS, DB, ROUTES
from gateway.web.local_peers import is_trusted_local_peer

log = structlog.get_logger("gateway.mail")

MAIL = web.AppKey("mail", MailService)


def add_mail_routes(app: web.Application) -> None:
    app.router.add_get("/api/mail", list_view)
    app.router.add_get("/api/mail/{id}", read_view)
    app.router.add_delete("/api/mail/{id}", delete_view)
    app.router.add_post("/api/mail/{id}/reply", reply_view)
    app.router.add_get("/api/notifications", notifications_view)
    app.router.add_post("/api/council/mail", council_send_view)
    app.router.add_get("/api/council/mail/expired", council_expired_view)
    app.router.add_get("/api/council/mail/replies", council_replies_view)


def build_mail_service(app: web.Application) -> MailService:
    from gateway.web.app import CLOCK  # here, not at the top: app.py may import this module

    config = app[CONFIG]
    crypto = MailCrypto.from_config(config.mail.keys, config.mail.current_key, config.data_dir)
    days = config.mail.default_expiry_days
    return MailService(
        app[DB],
        crypto,
        app[CLOCK],
        config.mail.capacity,
        default_expiry=timedelta(days=days) if days else None,
        lookup=route_lookup(app[ROUTES], app[CONNECTORS]),
    )


async def mail_services(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the DB, connectors and identity services): the mail service, each
    connector's ctx.mail, the PIN-letter copy, and the background expiry/redelivery task."""
    config = app[CONFIG]
    service = build_mail_service(app)
    app[MAIL] = service
    names = app[ROUTES].organisations()

    def sender(organisation: str, classes: frozenset[str], ctx: ConnectorContext) -> ConnectorMail:
        return ConnectorMail(service, organisation, classes, names.get(organisation, organisation))

    routes = app[ROUTES]
    app[CONNECTORS].attach_mail(list(routes), sender)
    if config.mail.pin_letters_to_mailbox and LETTERS in app:
        app[LETTERS].copy_to_mailbox = service.deliver_letter

    stopping = asyncio.Event()

    async def loop() -> None:
        while True:
            try:
                await service.expire()
                await service.deliver_pending()
            except Exception:
                log.exception("mail.background_failed")
            if not await sleep_unless_stopped(stopping, config.mail.expiry_interval_seconds):
                return

    task = asyncio.create_task(loop(), name="mail")
    yield
    await stop_task(task, stopping.set)


# --- helpers -------------------------------------------------------------------------------------


def council_from_request(request: web.Request) -> str:
    """The organisation a council system speaks for, or ProblemError(401/403)."""
    config = request.app[CONFIG]
    tokens = config.mail.council_tokens
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if tokens:
        if scheme.lower() == "bearer" and token.strip():
            given = token.strip().encode()
            for organisation, expected in tokens.items():
                if hmac.compare_digest(given, expected.encode()):
                    return organisation
        challenge = 'Bearer realm="Government Gateway mail"'
        raise ProblemError(
            401,
            "Unauthorized",
            "a council bearer token is required",
            headers={"WWW-Authenticate": challenge},
        )
    # As at the payments API: a loopback peer speaks for councils only at the hub's own names (not
    # a DNS-rebound page) and only while [admin] allow_loopback holds (off behind a local proxy).
    if not (request.app[CONFIG].admin.allow_loopback and is_trusted_local_peer(request)):
        raise ProblemError(
            403, "Forbidden", "with no council tokens configured, only trusted local peers"
        )
    organisation = request.headers.get("X-Council", "").strip()
    if organisation not in request.app[ROUTES].organisations():
        raise ProblemError(
            403, "Forbidden", "name a council this hub routes to in the X-Council header"
        )
    return organisation


def _field(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ProblemError(400, "Bad Request", f"'{name}' must be a non-empty string")
    return value


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ProblemError(400, "Bad Request", "'expires_at' must be ISO 8601") from None
    if when.tzinfo is None:
        raise ProblemError(400, "Bad Request", "'expires_at' needs a time zone")
    try:
        when.astimezone(UTC)  # stored in UTC: an offset can carry it past the year 9999
    except OverflowError:
        raise ProblemError(
            400, "Bad Request", "'expires_at' is out of range: in UTC it falls outside 0001-9999"
        ) from None
    return when


def _mail_json(message: MailMessage) -> dict[str, Any]:
    data = asdict(message)
    data["class"] = data.pop("class_")
    data["keys"] = dict(message.keys)
    data["sent_at"] = message.sent_at.isoformat()
    return data


# --- citizen views -------------------------------------------------------------------------------


async def list_view(request: web.Request) -> web.Response:
    user_id = await citizen_from_request(request)
    messages = await request.app[MAIL].list(user_id)
    return web.json_response({"user_id": user_id, "messages": [m.to_json() for m in messages]})


async def read_view(request: web.Request) -> web.Response:
    user_id = await citizen_from_request(request)
    message = await request.app[MAIL].read(user_id, request.match_info["id"])
    audit("mail.read", actor=user_id, message_id=message.summary.id)
    return web.json_response(message.to_json())


async def delete_view(request: web.Request) -> web.Response:
    user_id = await citizen_from_request(request)
    await request.app[MAIL].delete(user_id, request.match_info["id"])
    return web.Response(status=204)


async def reply_view(request: web.Request) -> web.Response:
    user_id = await citizen_from_request(request)
    data = await json_object(request)
    body = _field(data, "body")
    subject = _field(data, "subject", required=False)
    assert body is not None
    reply = await request.app[MAIL].reply(user_id, request.match_info["id"], body, subject)
    return web.json_response({"id": reply.id, "delivered": reply.delivered}, status=201)


async def notifications_view(request: web.Request) -> web.Response:
    user_id = await citizen_from_request(request)
    items = await request.app[MAIL].notifications(user_id)
    return web.json_response({"user_id": user_id, "notifications": items})


# --- council views -------------------------------------------------------------------------------


async def council_send_view(request: web.Request) -> web.Response:
    organisation = council_from_request(request)
    data = await json_object(request)
    names = request.app[ROUTES].organisations()
    values = {
        name: _field(data, name)
        for name in ("class", "key_type", "key_value", "subject", "body", "sender_message_id")
    }
    sender = _field(data, "sender", required=False) or names.get(organisation, organisation)
    message_id = await request.app[MAIL].send_to_citizen(
        organisation,
        str(values["class"]),
        str(values["key_type"]),
        str(values["key_value"]),
        str(values["subject"]),
        str(values["body"]),
        sender=sender,
        sender_message_id=str(values["sender_message_id"]),
        expires_at=_when(_field(data, "expires_at", required=False)),
    )
    return web.json_response({"id": message_id, "organisation": organisation}, status=201)


async def council_expired_view(request: web.Request) -> web.Response:
    organisation = council_from_request(request)
    try:
        since = int(request.query.get("since", "0"))
        # Beyond the id column's range the database refuses the number (500, not an answer).
        if not 0 <= since <= MAX_REPORT_ID:
            raise ValueError(since)
    except ValueError:
        raise ProblemError(
            400, "Bad Request", f"'since' must be a report id (0 to {MAX_REPORT_ID})"
        ) from None
    reports = await request.app[MAIL].expiry_reports(organisation, since)
    return web.json_response({"reports": [report_json(r) for r in reports]})


async def council_replies_view(request: web.Request) -> web.Response:
    organisation = council_from_request(request)
    replies = await request.app[MAIL].replies(organisation)
    return web.json_response({"replies": [_mail_json(m) for m in replies]})
