"""HTTP publication of the development PKI: CRL, OCSP responder and CA certificates."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote

from aiohttp import web
from cryptography.x509 import ocsp

from gateway.clock import utcnow
from gateway.pki.ca import Pki
from gateway.pki.ocsp import MAX_REQUEST_BYTES, unsuccessful

CRL_TYPE = "application/pkix-crl"
OCSP_RESPONSE_TYPE = "application/ocsp-response"
PEM_TYPE = "application/x-pem-file"
CRL_CACHE = timedelta(seconds=60)
OCSP_GET_PREFIX = "/pki/ocsp/"


@dataclass
class _CachedCrl:
    key: tuple[object, ...]
    made: datetime  # on the hub's clock
    der: bytes


class _PkiViews:
    """The handlers, sharing one CRL cache."""

    def __init__(self, pki: Callable[[], Pki], clock: Callable[[], datetime]) -> None:
        self._pki = pki
        # The hub's clock, which checks these answers: on real time, a hub clock moved on would
        # find every answer stale (or not yet valid) and refuse every certificate.
        self._clock = clock
        self._crl: _CachedCrl | None = None

    async def crl(self, request: web.Request) -> web.Response:
        pki = self._pki()
        # Reissued at most once a minute, and at once after any revocation (index change).
        key = (pki.dir, pki.citizen_ca.serial_number, pki.index_version())
        now = self._clock()
        cached = self._crl
        if (
            cached is None
            or cached.key != key
            or not timedelta(0) <= now - cached.made <= CRL_CACHE
        ):
            der = await asyncio.to_thread(pki.crl, now)
            cached = self._crl = _CachedCrl(key, now, der)
        return web.Response(body=cached.der, content_type=CRL_TYPE)

    async def ocsp_post(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_REQUEST_BYTES:
            return _ocsp(unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST))
        body = await request.read()  # bounded by the app's client_max_size
        return await self._answer(body)

    async def ocsp_get(self, request: web.Request) -> web.Response:
        # RFC 6960 appendix A.1: the URL-encoded base64 DER follows the responder URL. Take it
        # from the raw path: a decoded path could have turned an encoded '/' into a separator.
        encoded = request.rel_url.raw_path[len(OCSP_GET_PREFIX) :]
        try:
            der = base64.b64decode(unquote(encoded), validate=True)
        except (binascii.Error, ValueError):
            return _ocsp(unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST))
        return await self._answer(der)

    async def _answer(self, der: bytes) -> web.Response:
        pki = self._pki()
        return _ocsp(await asyncio.to_thread(pki.ocsp_response, der, self._clock()))

    async def root_pem(self, request: web.Request) -> web.Response:
        return _pem(self._pki().root_path.read_bytes())

    async def citizen_pem(self, request: web.Request) -> web.Response:
        return _pem(self._pki().citizen_ca_path.read_bytes())

    async def bundle_pem(self, request: web.Request) -> web.Response:
        return _pem(self._pki().ca_bundle_path.read_bytes())


def _ocsp(der: bytes) -> web.Response:
    # Responses are fresh for the request that asked: no shared caching of nonce-bearing answers.
    return web.Response(
        body=der, content_type=OCSP_RESPONSE_TYPE, headers={"Cache-Control": "no-store"}
    )


def _pem(data: bytes) -> web.Response:
    return web.Response(body=data, content_type=PEM_TYPE)


def add_pki_routes(
    app: web.Application, pki: Callable[[], Pki], clock: Callable[[], datetime] = utcnow
) -> None:
    """Register /pki/crl, /pki/ocsp (POST and GET) and the CA certificate downloads."""
    views = _PkiViews(pki, clock)
    app.router.add_get("/pki/crl", views.crl)
    app.router.add_post("/pki/ocsp", views.ocsp_post)
    app.router.add_get("/pki/ocsp/{b64request:.+}", views.ocsp_get)
    app.router.add_get("/pki/root-ca.pem", views.root_pem)
    app.router.add_get("/pki/citizen-ca.pem", views.citizen_pem)
    app.router.add_get("/pki/ca-bundle.pem", views.bundle_pem)
