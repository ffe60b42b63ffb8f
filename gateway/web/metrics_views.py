"""GET /metrics (Prometheus text format), the middleware that counts requests, and the lifecycle
step that puts this hub's metrics in scope for its background tasks. See docs/metrics.md."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client.exposition import choose_encoder

from gateway import observability
from gateway.observability import tracing
from gateway.observability.metrics import (
    UNMATCHED,
    HubMetrics,
    queue_snapshot,
    scrape_registry,
)
from gateway.web.identity_views import require_admin
from gateway.web.keys import CONFIG, DB, DISPATCHER, METRICS, REVOCATION

log = structlog.get_logger("gateway.metrics")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_metrics_routes(app: web.Application) -> None:
    """This hub's metrics (its own registry) and GET /metrics."""
    config = app[CONFIG]
    hub = HubMetrics(
        routed_classes={r.class_ for r in config.routes},
        connectors={r.connector for r in config.routes},
    )
    # Looked up at each scrape: the checker is made later, in the dispatch lifecycle step.
    hub.certificate_status_ages = lambda: app[REVOCATION].cached_ages() if REVOCATION in app else []
    hub.queue_waits = lambda: app[DISPATCHER].queue_waits() if DISPATCHER in app else {}
    app[METRICS] = hub
    app.router.add_get("/metrics", metrics_view)


async def metrics_service(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx, before the dispatcher: tasks started after this record into this hub."""
    observability.current.set(app[METRICS])
    yield


def require_scraper(request: web.Request) -> None:
    """Who may read /metrics: admins, as for /admin (loopback peers by default; a scraper off
    the host uses the [admin] credentials or an admin certificate)."""
    require_admin(request)


async def metrics_view(request: web.Request) -> web.Response:
    require_scraper(request)
    hub = request.app[METRICS]
    try:
        hub.snapshot = await queue_snapshot(request.app[DB])
    except Exception:
        # The counters are still worth serving; the queue gauges are left out, not made up.
        log.exception("metrics.queue_snapshot_failed")
        hub.snapshot = None
    # Prometheus asks for OpenMetrics in Accept; anything else gets the classic text format.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encode(scrape_registry(hub)), headers={"Content-Type": content_type})


def route_template(request: web.Request) -> str:
    """The matched resource's canonical path (`/api/journeys/{id}`), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def http_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: counts every answer (problem+json ones included) and spans the request."""
    hub = request.app.get(METRICS)
    if hub is not None:
        observability.current.set(hub)
    route = route_template(request)
    started = time.perf_counter()
    status: int | None = None  # stays None if cancelled: no answer was given
    with tracing.server_span(request.method, route, request.headers, request.path) as span:
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:  # redirects: request_context answers the rest
            status = exc.status
            raise
        except Exception:
            status = 500
            raise
        finally:
            if status is not None:
                tracing.finish_server_span(span, status)
            if hub is not None and status is not None:
                hub.http_request(route, request.method, status, time.perf_counter() - started)
