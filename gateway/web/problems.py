"""The one place HTTP-level failures become answers: problem+json (RFC 9457) for non-DSP paths."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from gateway.audit import log as audit_log
from gateway.audit.log import audit
from gateway.errors import ProblemError
from gateway.sso.errors import OAuthError
from gateway.web.keys import AUDIT

log = structlog.get_logger("gateway.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, title: str, detail: str = "", **extensions: Any) -> web.Response:
    """An RFC 9457 problem+json answer, with extension members where they help a client."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extensions)
    return web.json_response(body, status=status, content_type="application/problem+json")


# A client's own request id is kept only when it is a plain token: it goes into every log line
# and audit record of the request (and back in the answer's header).
_CLIENT_REQUEST_ID = re.compile(r"[\w.:-]{1,64}", re.ASCII)


def _request_id(given: str) -> str:
    return given if _CLIENT_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id for every log line; answer refusals and HTTP exceptions as problem+json."""
    request_id = _request_id(request.headers.get("X-Request-ID", ""))
    structlog.contextvars.clear_contextvars()
    # The peer goes into every log line and audit record of the request: who sent what was refused.
    structlog.contextvars.bind_contextvars(
        request_id=request_id, path=request.path, peer=request.remote
    )
    if AUDIT in request.app:
        audit_log.current.set(request.app[AUDIT])
    try:
        if "\0" in request.path or "\0" in request.query_string or "%00" in request.raw_path:
            raise ProblemError(400, "Bad Request", "the URL may not contain NUL characters")
        response = await handler(request)
    except OAuthError as exc:
        # OAuth clients read RFC 6749 §5.2 bodies, not problem+json.
        body = {"error": exc.error, "error_description": exc.detail}
        response = web.json_response(body, status=exc.status, headers={"Cache-Control": "no-store"})
        response.headers.update(exc.headers)
        audit(
            "sso.refused", outcome="refused", error=exc.error, reason=exc.detail, status=exc.status
        )
    except ProblemError as exc:
        _audit_refusal(request, exc.status, exc.title, exc.detail)
        response = problem(exc.status, exc.title, exc.detail, **exc.members())
        response.headers.update(exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        text = exc.text or ""
        detail = "" if text == f"{exc.status}: {exc.reason}" else text
        # aiohttp's own refusals (no route, wrong method, body over client_max_size) are
        # refusals like any other: the trail shows a client probing or flooding.
        _audit_refusal(request, exc.status, exc.reason, detail)
        response = problem(exc.status, exc.reason, detail)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        log.exception("web.unhandled")
        response = problem(
            500, "Internal Server Error", "the hub failed; see its log for request " + request_id
        )
    response.headers["X-Request-ID"] = request_id
    return response


def _audit_refusal(request: web.Request, status: int, title: str, reason: str) -> None:
    audit(
        "api.refused",
        outcome="refused",
        status=status,
        title=title,
        reason=reason,
        method=request.method,
    )


UNLIMITED_PATHS = frozenset({"/health", "/ready"})


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Requests per minute per address: 429 (a GovTalk 1000 reply on the DSP endpoints)."""
    from gateway.limits import is_loopback
    from gateway.web.app import CLOCK
    from gateway.web.keys import CONFIG, DSP, RATE_LIMIT

    app = request.app
    if (
        request.path in UNLIMITED_PATHS
        or RATE_LIMIT not in app
        or (app[CONFIG].limits.exempt_loopback and is_loopback(request.remote))
    ):
        return await handler(request)
    wait = await app[RATE_LIMIT].retry_after(request.remote or "?", app[CLOCK]())
    if wait is None:
        return await handler(request)
    seconds = str(int(wait) + 1)
    text = f"Too many requests from this address; retry after {seconds} seconds"
    audit("limits.rate_limited", outcome="refused", address=request.remote, retry_after=seconds)
    if request.path in ("/submission", "/poll") and DSP in app:
        from gateway.govtalk.errors import GovTalkFault
        from gateway.web.dsp_views import endpoints_for

        body = app[DSP].refusal(GovTalkFault.of(1000, text), endpoints_for(request))
        return web.Response(
            body=body,
            status=429,
            content_type="text/xml",
            charset="utf-8",
            headers={"Retry-After": seconds},
        )
    raise ProblemError(429, "Too Many Requests", text, headers={"Retry-After": seconds})
