"""HTTP transport for the DSP: POST on /submission and /poll, size cap before parsing."""

from __future__ import annotations

from aiohttp import web

from gateway.dsp.engine import Endpoints
from gateway.govtalk.errors import GovTalkFault
from gateway.web.keys import CONFIG, DSP

CONTENT_TYPE = "text/xml"


def endpoints_for(request: web.Request) -> Endpoints:
    public = request.app[CONFIG].server.public_url
    if public:
        return Endpoints(public.rstrip("/"))
    return Endpoints(f"{request.scheme}://{_host(request)}")


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host(request: web.Request) -> str:
    """Where the client reached the hub: its Host header, else the socket it connected to."""
    if request.headers.get("Host"):
        return request.host
    # An HTTP/1.0 client may send no Host; aiohttp then gives the bare address, and a poll URL
    # without the port would send the client's polls elsewhere.
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not isinstance(sockname, tuple) or len(sockname) < 2:
        return request.host
    address, port = str(sockname[0]), int(sockname[1])
    host = f"[{address}]" if ":" in address else address
    return host if _DEFAULT_PORTS.get(request.scheme) == port else f"{host}:{port}"


def client_certificate(request: web.Request) -> bytes | None:
    """The DER certificate the client presented over TLS (optional at the TLS layer)."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return bytes(der) if der else None


async def _read_capped(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds limit (decompressed bytes count, so bombs stop early)."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(65536):
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _reply(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=CONTENT_TYPE, charset="utf-8")


async def dsp_endpoint(request: web.Request) -> web.Response:
    """Every message type is accepted on both URLs; protocol errors are still HTTP 200."""
    engine = request.app[DSP]
    endpoints = endpoints_for(request)
    limit = request.app[CONFIG].server.max_body_bytes
    declared = request.content_length
    try:
        too_big = declared is not None and declared > limit
        raw = None if too_big else await _read_capped(request, limit)
    except web.RequestPayloadError as exc:
        # A corrupt gzip, deflate, br or zstd stream: the document cannot be read, a 1001.
        text = f"The document could not be decoded ({exc.__cause__ or exc})"
        response = _reply(engine.refusal(GovTalkFault.of(1001, text), endpoints))
        # What is left of the body cannot be decoded either, so it cannot be read past: aiohttp
        # would try (and log the failure) before reusing the connection.
        response.force_close()
        return response
    if raw is None:
        # Content-Length counts compressed bytes; only a body sent as-is has a size to state.
        stated = declared if too_big else None
        response = _reply(engine.too_large(stated, endpoints))
        # The rest of the body is never read: the connection cannot be reused.
        response.force_close()
        return response
    reply = await engine.handle(
        raw, endpoints, client_certificate=client_certificate(request), remote=request.remote
    )
    return _reply(reply)
