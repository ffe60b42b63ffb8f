"""The aiohttp application: wiring, lifecycle (every resource in cleanup_ctx) and routes."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import structlog
from aiohttp import web

from gateway import __version__
from gateway.clock import MovableClock, utcnow
from gateway.config import Config, LimitsConfig
from gateway.console.routes import add_console_routes
from gateway.dsp.engine import DocumentSubmission
from gateway.govtalk.model import TIL_SUFFIX
from gateway.identity.authenticate import (
    Authenticator,
    ClientCertificateAuthenticator,
    PasswordBackend,
)
from gateway.identity.certificates import CertificateValidator
from gateway.identity.replay import ReplayStore
from gateway.identity.revocation import RevocationChecker
from gateway.identity.signatures import SignedEnvelopeBackend
from gateway.limits import AuthGuard, Counters, MemoryCounters, RateLimit
from gateway.pki.ca import Pki
from gateway.prepare import pki_provider, prepare_database
from gateway.routing.dispatcher import Dispatcher
from gateway.routing.registry import ConnectorSet
from gateway.routing.table import RouteTable
from gateway.sso import sessions as sso_sessions
from gateway.store import submissions as store
from gateway.web.admin_views import add_admin_routes
from gateway.web.audit_lifecycle import audit_service
from gateway.web.background import sleep_unless_stopped, stop_task
from gateway.web.dsp_views import dsp_endpoint
from gateway.web.fault_views import add_fault_routes
from gateway.web.identity_views import add_identity_routes, identity_services
from gateway.web.journey_views import add_journey_routes, journey_services
from gateway.web.keys import (
    AUTH_GUARD,
    CLIENT_CERTIFICATES,
    CONFIG,
    CONNECTORS,
    DB,
    DISPATCHER,
    DISPATCHER_TASK,
    DSP,
    LIMIT_COUNTERS,
    RATE_LIMIT,
    REVOCATION,
    ROUTES,
)
from gateway.web.mail_views import add_mail_routes, mail_services
from gateway.web.metrics_views import add_metrics_routes, http_metrics, metrics_service
from gateway.web.payment_views import add_payment_routes, payment_services
from gateway.web.pki_views import add_pki_routes
from gateway.web.problems import rate_limit, request_context
from gateway.web.ready_views import ready_view
from gateway.web.report_views import add_report_routes
from gateway.web.sso_views import add_sso_routes, sso_services

log = structlog.get_logger("gateway.app")


async def _database(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    db = await prepare_database(config)
    app[DB] = db
    yield
    await db.aclose()


def limit_counters(limits: LimitsConfig) -> Counters:
    """The configured store for rate and lockout counts."""
    if limits.store == "redis":
        from gateway.limits_redis import RedisCounters

        return RedisCounters(limits.redis_url, limits.redis_prefix)
    return MemoryCounters()


async def _limit_counters(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[LIMIT_COUNTERS].aclose()


async def _connectors(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    connectors = (
        app[CONNECTORS]
        if CONNECTORS in app
        else ConnectorSet.build(config.connectors, config.data_dir, config.base_dir)
    )
    app[CONNECTORS] = connectors
    await connectors.start()
    yield
    await connectors.aclose()


async def _dispatch(app: web.Application) -> AsyncIterator[None]:
    config, clock = app[CONFIG], app[CLOCK]
    db, routes = app[DB], app[ROUTES]
    dispatcher = Dispatcher(db, routes, app[CONNECTORS], config, clock)
    app[DISPATCHER] = dispatcher
    pki = await asyncio.to_thread(app[PKI])
    revocation = RevocationChecker(
        timeout=config.pki.status_timeout,
        fail_open=config.pki.fail_open,
        clock=clock,
        revocations_changed=pki.index_version,
    )
    app[REVOCATION] = revocation
    validator = CertificateValidator(pki.trust_anchors, revocation, clock=clock)
    replay = ReplayStore(db, timedelta(seconds=config.pki.replay_window_seconds), clock=clock)
    sha1_classes = {r.class_ for r in routes if r.allow_sha1}
    client_certificates = ClientCertificateAuthenticator(db, validator)
    app[CLIENT_CERTIFICATES] = client_certificates
    authenticator = Authenticator(
        [
            PasswordBackend(db, allow_md5=config.auth.allow_md5),
            SignedEnvelopeBackend(
                db,
                validator,
                replay,
                allow_sha1=lambda class_: class_.removesuffix(TIL_SUFFIX) in sha1_classes,
                clock=clock,
            ),
        ],
        client_certificates=client_certificates,
    )
    app[DSP] = DocumentSubmission(
        config=config,
        db=db,
        routes=routes,
        authenticator=authenticator,
        dispatcher=dispatcher,
        clock=clock,
        guard=app[AUTH_GUARD],
    )
    task = asyncio.create_task(dispatcher.run(), name="dispatcher")
    app[DISPATCHER_TASK] = task
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # Returns once no attempt is inside a connector call (those still running after the grace
    # are cancelled, recording nothing): `_connectors`, cleaned up next, closes them.
    await dispatcher.drain()
    await revocation.aclose()


async def _purge(app: web.Application) -> AsyncIterator[None]:
    config, db, clock = app[CONFIG], app[DB], app[CLOCK]

    stopping = asyncio.Event()

    async def loop() -> None:
        while True:
            try:
                removed = await store.purge(db, clock())
                if removed:
                    log.info("store.purged", records=removed)
                ended = await sso_sessions.purge(db, clock())
                if ended:
                    log.info("sso.sessions_purged", sessions=ended)
            except Exception:
                log.exception("store.purge_failed")
            if not await sleep_unless_stopped(stopping, config.retention.purge_interval_seconds):
                return

    task = asyncio.create_task(loop(), name="purge")
    yield
    await stop_task(task, stopping.set)


async def health(request: web.Request) -> web.Response:
    # The pid tells an operator (and the tests) which worker of `serve --workers N` answered.
    return web.json_response({"status": "ok", "version": __version__, "pid": os.getpid()})


async def index(request: web.Request) -> web.Response:
    routes = request.app[ROUTES]
    return web.json_response(
        {
            "service": "GovTalk reference Government Gateway hub",
            "version": __version__,
            "submission": "/submission",
            "poll": "/poll",
            "routes": [{"class": r.class_, "organisation": r.organisation} for r in routes],
        }
    )


CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
PKI: web.AppKey[Callable[[], Pki]] = web.AppKey("pki")


def create_app(
    config: Config,
    *,
    connectors: ConnectorSet | None = None,
    clock: Callable[[], datetime] | None = None,
) -> web.Application:
    """Build the hub; `connectors` lets tests plug instances in without entry points."""
    if clock is None:
        clock = MovableClock() if config.server.movable_clock else utcnow
    app = web.Application(
        middlewares=[http_metrics, request_context, rate_limit],
        client_max_size=config.server.max_body_bytes + 1,
    )
    app[CONFIG] = config
    app[CLOCK] = clock
    limits = config.limits
    counters = limit_counters(limits)
    app[LIMIT_COUNTERS] = counters
    app[AUTH_GUARD] = AuthGuard(
        counters,
        per_sender=limits.auth_failures_per_sender,
        per_address=limits.auth_failures_per_address,
        window=timedelta(minutes=limits.auth_failure_window_minutes),
        duration=timedelta(minutes=limits.lockout_minutes),
        exempt_loopback=limits.exempt_loopback,
    )
    app[RATE_LIMIT] = RateLimit(limits.requests_per_minute, counters)
    app[ROUTES] = RouteTable(config.routes)
    add_metrics_routes(app)
    if connectors is not None:
        app[CONNECTORS] = connectors
    app.cleanup_ctx.extend(
        [
            metrics_service,
            _limit_counters,
            _database,
            audit_service,
            _connectors,
            _dispatch,
            _purge,
            identity_services,
            sso_services,
            mail_services,
            payment_services,
            journey_services,
        ]
    )
    app.router.add_post("/submission", dsp_endpoint)
    app.router.add_post("/poll", dsp_endpoint)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready_view)
    app.router.add_get("/", index)
    app[PKI] = pki_provider(config)
    add_pki_routes(app, app[PKI], clock)
    add_identity_routes(app)
    add_sso_routes(app)
    add_admin_routes(app)
    add_fault_routes(app)
    add_report_routes(app)
    add_mail_routes(app)
    add_payment_routes(app)
    add_journey_routes(app)
    add_console_routes(app)  # and the admin gate on /admin (gateway/console/routes.py)
    return app
