"""Typed application state keys."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.audit.log import AuditLog
from gateway.config import Config
from gateway.dsp.engine import DocumentSubmission
from gateway.identity.authenticate import ClientCertificateAuthenticator
from gateway.identity.revocation import RevocationChecker
from gateway.limits import AuthGuard, Counters, RateLimit
from gateway.observability.metrics import HubMetrics
from gateway.routing.dispatcher import Dispatcher
from gateway.routing.registry import ConnectorSet
from gateway.routing.table import RouteTable
from gateway.sso.provider import Provider
from gateway.store.engine import Database

CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
ROUTES = web.AppKey("routes", RouteTable)
CONNECTORS = web.AppKey("connectors", ConnectorSet)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
DSP = web.AppKey("dsp", DocumentSubmission)
CLIENT_CERTIFICATES = web.AppKey("client_certificates", ClientCertificateAuthenticator)
SSO = web.AppKey("sso", Provider)
AUDIT = web.AppKey("audit", AuditLog)
DISPATCHER_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("dispatcher_task")
AUTH_GUARD = web.AppKey("auth_guard", AuthGuard)
RATE_LIMIT = web.AppKey("rate_limit", RateLimit)
LIMIT_COUNTERS: web.AppKey[Counters] = web.AppKey("limit_counters")
METRICS = web.AppKey("metrics", HubMetrics)
REVOCATION = web.AppKey("revocation", RevocationChecker)
