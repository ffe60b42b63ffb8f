"""The one place HTTP-level failures become answers: problem+json (RFC 9457) for non-DSP paths."""

from __future__ import annotations

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


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id for every log line; answer refusals and HTTP exceptions as problem+json."""
    request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id[:64], path=request.path)
    if AUDIT in request.app:
        audit_log.current.set(request.app[AUDIT])
    try:
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
        audit(
            "api.refused",
            outcome="refused",
            status=exc.status,
            title=exc.title,
            reason=exc.detail,
            method=request.method,
        )
        response = problem(exc.status, exc.title, exc.detail, **exc.members())
        response.headers.update(exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        text = exc.text or ""
        detail = "" if text == f"{exc.status}: {exc.reason}" else text
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
