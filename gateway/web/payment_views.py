"""Payments over HTTP: the JSON API for council systems and the citizen's hosted payment page.

    POST /api/payments                        council   → 201 {payment_id, state, next_url, ...}
                                                          (Idempotency-Key: a repeat → 200, the original)
    GET  /api/payments/{id}                   council   → 200 the payment
    POST /api/payments/{id}/cancel            council   → 204
    GET  /api/payments/{id}/refunds           council   → 200 {refunds: [...]}
    POST /api/payments/{id}/refunds           council   → 201 the refund  ({amount} in pence,
                                                          optional refund_amount_available)
    GET  /api/payments/reports/{council}.csv?from=YYYY-MM-DD&to=YYYY-MM-DD
                                              council   → 200 text/csv (payments and refunds)
    GET  /api/payments/webhooks/attempts      admin     → 200 {attempts: [...]}
    GET  /pay/{id}                            citizen   → 200 HTML card form (created → started)
    POST /pay/{id}                            citizen   → 303 to return_url?payment_id=… once
                                                          decided; 422 HTML with the error otherwise

"council" means `Authorization: Bearer <token>` with a token from `[payments] api_tokens`
(council code → token), or a trusted local peer (web/local_peers.py) while `[admin]
allow_loopback` is true; a token reaches only its own council's payments (others are 404).
The hosted page needs no credentials: its unguessable payment id is the capability, as GOV.UK
Pay's next_url is. API failures are problem+json.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from datetime import date
from html import escape
from typing import Any

from aiohttp import web
from yarl import URL

from gateway.audit.log import audit
from gateway.errors import ProblemError
from gateway.services.payments import lifecycle, reconciliation, webhooks
from gateway.services.payments.cards import CardInvalid, read_card
from gateway.services.payments.service import (
    PaymentError,
    PaymentService,
    payment_json,
    refund_json,
)
from gateway.store.payment_models import PaymentRow
from gateway.web.background import stop_task
from gateway.web.bodies import form as read_form
from gateway.web.bodies import json_object
from gateway.web.html import html_response, origin, page
from gateway.web.identity_views import require_admin
from gateway.web.keys import CONFIG, CONNECTORS, DB, ROUTES
from gateway.web.local_peers import is_trusted_local_peer

PAYMENTS = web.AppKey("payments", PaymentService)
_PAYMENTS_TASK = web.AppKey("payments_task", object)

LOOPBACK_CALLER = "loopback"


def add_payment_routes(app: web.Application) -> None:
    app.router.add_post("/api/payments", create_view)
    app.router.add_get("/api/payments/webhooks/attempts", attempts_view)
    app.router.add_get("/api/payments/reports/{council}.csv", report_view)
    app.router.add_get("/api/payments/{id}", get_view)
    app.router.add_post("/api/payments/{id}/cancel", cancel_view)
    app.router.add_post("/api/payments/{id}/notify", notify_view)
    app.router.add_post("/api/payments/{id}/refunds/{refund}/notify", notify_refund_view)
    app.router.add_get("/api/payments/{id}/refunds", list_refunds_view)
    app.router.add_post("/api/payments/{id}/refunds", refund_view)
    app.router.add_get("/pay/{id}", page_view)
    app.router.add_post("/pay/{id}", page_submit_view)


async def payment_services(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the payment service and its background pass (after DB and connectors)."""
    import asyncio

    from gateway.web.app import CLOCK  # here, not at the top: app.py imports the views

    config = app[CONFIG]
    service = PaymentService(app[DB], config.payments, app[ROUTES], app[CONNECTORS], app[CLOCK])
    app[PAYMENTS] = service
    task = asyncio.create_task(service.run(), name="payments")
    yield
    await stop_task(task, service.stop)
    await service.aclose()


# --- authentication and problems -----------------------------------------------------------------


def caller_of(request: web.Request) -> tuple[str, str | None]:
    """(caller, council the caller is limited to or None) or ProblemError(401)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        for council, expected in request.app[CONFIG].payments.api_tokens.items():
            if hmac.compare_digest(expected.encode(), token.strip().encode()):
                return f"council:{council}", council
        raise _unauthorised("the bearer token is not one of [payments] api_tokens")
    # Behind a reverse proxy on the same host every peer is loopback: the operator turns
    # allow_loopback off there, and then only tokens speak for councils.
    if request.app[CONFIG].admin.allow_loopback and is_trusted_local_peer(request):
        return LOOPBACK_CALLER, None
    raise _unauthorised("use a council's bearer token ([payments] api_tokens)")


def _unauthorised(detail: str) -> ProblemError:
    challenge = 'Bearer realm="Government Gateway payments"'
    return ProblemError(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


async def _payment_for(request: web.Request) -> tuple[PaymentRow, str]:
    caller, council = caller_of(request)
    row = await request.app[PAYMENTS].get(request.match_info["id"])
    if row is None or (council is not None and row.organisation != council):
        raise ProblemError(404, "Not Found", "no such payment")
    return row, caller


def _next_url(request: web.Request, payment_id: str) -> str:
    base = request.app[CONFIG].server.public_url.rstrip("/")
    if not base:
        base = f"{request.scheme}://{request.host}"
    return f"{base}/pay/{payment_id}"


def _with_links(request: web.Request, row: PaymentRow) -> dict[str, Any]:
    body = payment_json(row)
    if row.state in lifecycle.OPEN_STATES:
        body["next_url"] = _next_url(request, row.id)
    return body


# --- the JSON API --------------------------------------------------------------------------------


async def create_view(request: web.Request) -> web.StreamResponse:
    caller, council = caller_of(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 255:
        raise ProblemError(400, "Bad Request", "Idempotency-Key must be 1 to 255 characters")
    body = await json_object(request)
    if council is not None and body.get("council") != council:
        raise ProblemError(403, "Forbidden", f"this token takes payments for {council} only")
    row, created = await request.app[PAYMENTS].create(caller, key, body)
    return web.json_response(
        _with_links(request, row),
        status=201 if created else 200,
        headers={"Location": f"/api/payments/{row.id}"},
    )


async def get_view(request: web.Request) -> web.StreamResponse:
    row, _ = await _payment_for(request)
    return web.json_response(_with_links(request, row))


async def cancel_view(request: web.Request) -> web.StreamResponse:
    row, _ = await _payment_for(request)
    await request.app[PAYMENTS].cancel(row.id)
    return web.Response(status=204)


async def notify_view(request: web.Request) -> web.StreamResponse:
    """Ask for the council's notification again (after the hub gave up on it, say)."""
    row, _ = await _payment_for(request)
    again = await request.app[PAYMENTS].renotify(row.id)
    return web.json_response(_with_links(request, again), status=202)


async def notify_refund_view(request: web.Request) -> web.StreamResponse:
    """Ask for a refund's notice to the council again."""
    row, _ = await _payment_for(request)
    refund_id = request.match_info["refund"]
    if refund_id not in {r.id for r in await request.app[PAYMENTS].refunds(row.id)}:
        raise ProblemError(404, "Not Found", "no such refund of this payment")
    again = await request.app[PAYMENTS].renotify_refund(refund_id)
    return web.json_response(refund_json(again), status=202)


async def list_refunds_view(request: web.Request) -> web.StreamResponse:
    row, _ = await _payment_for(request)
    refunds = await request.app[PAYMENTS].refunds(row.id)
    return web.json_response({"payment_id": row.id, "refunds": [refund_json(r) for r in refunds]})


async def refund_view(request: web.Request) -> web.StreamResponse:
    row, caller = await _payment_for(request)
    data = await json_object(request)
    refund = await request.app[PAYMENTS].refund(
        row.id, data.get("amount"), caller, data.get("refund_amount_available")
    )
    return web.json_response(refund_json(refund), status=201)


async def report_view(request: web.Request) -> web.StreamResponse:
    _, council = caller_of(request)
    wanted = request.match_info["council"]
    if wanted not in request.app[ROUTES].organisations():
        # The code goes into the download's file name: only a routed council's is echoed.
        raise ProblemError(404, "Not Found", "no council with this code is routed")
    if council is not None and wanted != council:
        raise ProblemError(403, "Forbidden", f"this token reads {council}'s report only")
    try:
        start = date.fromisoformat(request.query["from"])
        end = date.fromisoformat(request.query["to"])
    except (KeyError, ValueError):
        raise ProblemError(400, "Bad Request", "give from=YYYY-MM-DD and to=YYYY-MM-DD") from None
    if end < start:
        raise ProblemError(400, "Bad Request", "'to' is before 'from'")
    text = await reconciliation.report(request.app[DB], wanted, start, end)
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="payments-{wanted}-{start}-{end}.csv"'
        },
    )


async def attempts_view(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    return web.json_response({"attempts": await webhooks.list_attempts(request.app[DB])})


# --- the hosted payment page ---------------------------------------------------------------------


def _pounds(pence: int) -> str:
    return f"£{pence // 100:,}.{pence % 100:02d}"


def _summary(row: PaymentRow) -> str:
    return (
        "<dl>"
        f"<dt>Payment for</dt><dd>{escape(row.description)}</dd>"
        f"<dt>Reference</dt><dd>{escape(row.reference)}</dd>"
        f"<dt>Total amount</dt><dd>{_pounds(row.amount_pence)}</dd>"
        "</dl>"
    )


def _field(name: str, label: str, value: str, error: CardInvalid | None, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    message = ""
    described = ""
    if error is not None and error.field == name:
        message = f'<p id="{name}-error" class="error">Error: {escape(error.message)}</p>'
        described = f' aria-describedby="{name}-error" aria-invalid="true"'
    return (
        f'<div><label for="{name}">{escape(label)}</label>{message}'
        f'<input id="{name}" name="{name}" type="text" value="{escape(value)}"{described}{extra}>'
        "</div>"
    )


def card_form(row: PaymentRow, error: CardInvalid | None = None, values: Any = None) -> str:
    values = values or {}

    def value(name: str) -> str:
        # The card number and CVC are never echoed back.
        return "" if name in ("card-number", "cvc") else str(values.get(name, ""))

    summary = ""
    if error is not None:
        summary = (
            '<div role="alert" aria-labelledby="error-summary-title">'
            '<h2 id="error-summary-title">There is a problem</h2>'
            f'<ul><li><a href="#{error.field}">{escape(error.message)}</a></li></ul></div>'
        )
    main = (
        f"{summary}<h1>Enter card details</h1>{_summary(row)}"
        f'<form method="post" action="/pay/{escape(row.id)}" novalidate>'
        '<input type="hidden" name="action" value="pay">'
        + _field("card-number", "Card number", value("card-number"), error,
                 inputmode="numeric", autocomplete="cc-number", spellcheck="false")
        + "<fieldset><legend>Expiry date (for example 01/30)</legend>"
        + _field("expiry-month", "Month", value("expiry-month"), error,
                 inputmode="numeric", autocomplete="cc-exp-month", maxlength="2")
        + _field("expiry-year", "Year", value("expiry-year"), error,
                 inputmode="numeric", autocomplete="cc-exp-year", maxlength="4")
        + "</fieldset>"
        + _field("cardholder-name", "Name on card", value("cardholder-name"), error,
                 autocomplete="cc-name", spellcheck="false")
        + _field("cvc", "Card security code", value("cvc"), error,
                 inputmode="numeric", autocomplete="cc-csc", maxlength="4")
        + '<button type="submit">Continue</button></form>'
        f'<form method="post" action="/pay/{escape(row.id)}">'
        '<input type="hidden" name="action" value="cancel">'
        '<button type="submit">Cancel payment</button></form>'
    )  # fmt: skip
    return page(("Error: " if error is not None else "") + "Enter card details", main)


def _return_url(row: PaymentRow) -> str:
    return str(URL(row.return_url).update_query(payment_id=row.id))


def _form_targets(row: PaymentRow) -> list[str]:
    # Paying or cancelling answers 303 to the council's return_url; Chromium applies the page's
    # form-action to that redirect too, so the council's origin must be named or the person is
    # left looking at the card form after their money was taken.
    return [origin(row.return_url)]


def finished_page(row: PaymentRow) -> str:
    titles = {
        lifecycle.SUCCESS: "Your payment was successful",
        lifecycle.DECLINED: "Your payment was declined",
        lifecycle.ERROR: "Your payment could not be taken",
        lifecycle.EXPIRED: "Your payment session has expired",
        lifecycle.CANCELLED: "Your payment was cancelled",
    }
    title = titles.get(row.state, f"This payment is {row.state}")
    reason = f"<p>{escape(row.failure_message)}.</p>" if row.failure_message else ""
    main = (
        f"<h1>{escape(title)}</h1>{reason}{_summary(row)}"
        f'<p><a href="{escape(_return_url(row))}">Continue to the service</a></p>'
    )
    return page(title, main)


def _not_found_page(request: web.Request) -> web.Response:
    """The page for an unknown payment id; audited, since a run of these is someone guessing."""
    audit(
        "payments.page_refused",
        outcome="refused",
        status=404,
        reason="no such payment",
        method=request.method,
    )
    return html_response(page("Payment not found", "<h1>Payment not found</h1>"), 404)


async def page_view(request: web.Request) -> web.StreamResponse:
    service = request.app[PAYMENTS]
    try:
        row = await service.start(request.match_info["id"])
    except PaymentError:
        return _not_found_page(request)
    if row.state in lifecycle.FINAL_STATES:
        return html_response(finished_page(row))
    return html_response(card_form(row), form_targets=_form_targets(row))


async def page_submit_view(request: web.Request) -> web.StreamResponse:
    service = request.app[PAYMENTS]
    payment_id = request.match_info["id"]
    row = await service.get(payment_id)
    if row is None:
        return _not_found_page(request)
    form = await read_form(request)
    try:
        if form.get("action") == "cancel":
            row = await service.cancel(payment_id)
        else:
            card = read_card(
                str(form.get("card-number", "")),
                str(form.get("expiry-month", "")),
                str(form.get("expiry-year", "")),
                str(form.get("cvc", "")),
                str(form.get("cardholder-name", "")),
                today=service.clock().date(),
            )
            row = await service.pay(payment_id, card)
    except CardInvalid as exc:
        row = await service.start(payment_id)
        if row.state in lifecycle.FINAL_STATES:
            raise web.HTTPSeeOther(_return_url(row)) from None
        values = {k: str(v) for k, v in form.items()}
        return html_response(card_form(row, exc, values), 422, form_targets=_form_targets(row))
    except PaymentError:
        row = await service.get(payment_id) or row
    raise web.HTTPSeeOther(_return_url(row))
