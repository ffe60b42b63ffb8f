"""HttpForwardConnector: POST each transaction as JSON to a supplier's back office (see README)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import ssl
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, cast

import aiohttp
from lxml import etree

from connectors.protocol import (
    API_VERSION,
    BusinessError,
    ConnectorContext,
    Failed,
    Outcome,
    Response,
    Retry,
    Transaction,
)
from connectors.sdk import (
    BodyError,
    ConnectorConfigError,
    optional_bool,
    optional_float,
    optional_str,
    parse_body,
    require_str,
    resolve_path,
    trace_headers,
)
from gateway.govtalk.errors import CATALOGUE, DEPARTMENT, ErrorType, GovTalkError

WIRE_VERSION = 1
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRY_AFTER = 5.0
DEFAULT_MAX_REPLY_BYTES = 10 * 1024 * 1024
_SNIPPET = 200
_ERROR_TYPES: frozenset[str] = frozenset({"fatal", "recoverable", "business", "warning", "schema"})
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>\s*")
_USER_AGENT = f"govtalk-gateway-hub http-forward/{WIRE_VERSION}"
_DELTA_SECONDS = re.compile(r"[0-9]+")
# Set by `diverted` for one call (this task only): the hub's connection faults send the request
# to a local socket that resets or refuses, so the failure is met for real, through aiohttp.
_DIVERTED: ContextVar[str | None] = ContextVar("http_forward_diverted", default=None)


class SupplierServerError(Exception):
    """The supplier answered 5xx: transient, so the hub retries (3000 once retries run out)."""

    def __init__(self, status: int, snippet: str) -> None:
        super().__init__(f"supplier answered HTTP {status}: {snippet}")
        self.status = status
        self.snippet = snippet


class _ReplyTooLarge(Exception):
    pass


class HttpForwardConnector:
    """Forwards transactions to a supplier's back office over HTTP (JSON wire format v1)."""

    name = "http-forward"
    api_version = API_VERSION

    def __init__(self, ctx: ConnectorContext) -> None:
        options = ctx.options
        self._ctx = ctx
        self._url = require_str(options, "url")
        if not self._url.startswith(("http://", "https://")):
            raise ConnectorConfigError("option 'url' must be an http:// or https:// URL")
        self._timeout = optional_float(options, "timeout", DEFAULT_TIMEOUT, minimum=0.001)
        self._verify_tls = optional_bool(options, "verify_tls", True)
        ca_file = optional_str(options, "ca_file")
        self._ca_file = resolve_path(ca_file, options) if ca_file else None
        self._max_reply_bytes = int(
            optional_float(options, "max_reply_bytes", DEFAULT_MAX_REPLY_BYTES, minimum=1)
        )
        self._headers = _header_option(options.get("headers"))
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP session (one connection pool for the connector's life)."""
        if self._session is not None:
            return
        tls: ssl.SSLContext | bool = True
        if self._ca_file is not None:
            # An extra bundle, not a replacement: a supplier whose certificate chains to a public
            # CA must stay reachable. create_default_context(cafile=) would skip the system store.
            tls = ssl.create_default_context()
            tls.load_verify_locations(cafile=str(self._ca_file))
        if not self._verify_tls:
            tls = False
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls),
            # The whole exchange is bounded by asyncio.timeout in handle(); no second clock here.
            timeout=aiohttp.ClientTimeout(total=None),
            headers={"User-Agent": _USER_AGENT},
        )

    async def aclose(self) -> None:
        """Close the HTTP session."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @contextlib.contextmanager
    def diverted(self, url: str) -> Iterator[None]:
        """Within the block, this task's requests go to url instead of the configured one."""
        token = _DIVERTED.set(url)
        try:
            yield
        finally:
            _DIVERTED.reset(token)

    async def handle(self, tx: Transaction, ctx: ConnectorContext) -> Outcome:
        """POST the transaction; map the supplier's answer to an Outcome (or raise if transient)."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        url = _DIVERTED.get() or self._url
        try:
            payload = json.dumps(request_document(tx), ensure_ascii=False).encode("utf-8")
        except UnicodeDecodeError:
            return Failed("http-forward: the transaction body is not UTF-8")
        # Later names replace earlier ones case-insensitively (aiohttp merges into a CIMultiDict,
        # one value per name): the hub's own headers win over the option's, whatever its case.
        headers = {
            **self._headers,
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "Idempotency-Key": tx.idempotency_key,
            # The supplier's back office sees the hub's trace (traceparent), when tracing is on.
            **trace_headers(),
        }
        try:
            async with asyncio.timeout(self._timeout):
                async with self._session.post(
                    url, data=payload, headers=headers, allow_redirects=False
                ) as reply:
                    status = reply.status
                    retry_after = reply.headers.get("Retry-After")
                    try:
                        raw = await _read_capped(reply, self._max_reply_bytes)
                    except _ReplyTooLarge:
                        if not _transient(status):
                            raise
                        # The status already says "ask again"; an outsized error page (a proxy's,
                        # say) must not turn that into a permanent failure. Its body is not used.
                        raw = f"(a reply over {self._max_reply_bytes} bytes, not read)".encode()
        except TimeoutError as exc:
            # aiohttp's own timeouts are also OSErrors; the hub must see a plain timeout (2005).
            raise TimeoutError(
                f"http-forward: {url} did not answer within {self._timeout:g}s"
            ) from exc
        except _ReplyTooLarge:
            return Failed(
                f"http-forward: the supplier's reply exceeds {self._max_reply_bytes} bytes"
            )
        outcome = map_reply(status, retry_after, raw, now=ctx.clock())
        if isinstance(outcome, Failed):
            ctx.log.warning(f"http-forward {tx.correlation_id}: {outcome.reason}")
        return outcome


def request_document(tx: Transaction) -> dict[str, Any]:
    """The JSON document POSTed for one transaction (wire format v1)."""
    return {
        "api_version": WIRE_VERSION,
        "correlation_id": tx.correlation_id,
        "idempotency_key": tx.idempotency_key,
        "class": tx.class_,
        "organisation": tx.organisation,
        "keys": dict(tx.keys),
        "body": _XML_DECLARATION.sub("", tx.body.decode("utf-8"), count=1),
        "transaction_id": tx.transaction_id,
        "gateway_test": tx.gateway_test,
        "test_in_live": tx.test_in_live,
        "received_at": tx.received_at.isoformat() if tx.received_at else None,
        "identity": {
            "user_id": tx.identity.user_id,
            "auth_method": tx.identity.auth_method,
            "auth_level": tx.identity.auth_level,
        },
        "attempt": tx.attempt,
    }


def map_reply(status: int, retry_after: str | None, raw: bytes, *, now: datetime) -> Outcome:
    """Turn the supplier's HTTP answer into an Outcome; raise for transient 5xx."""
    if status == 429 or (status == 503 and retry_after is not None):
        after = parse_retry_after(retry_after, now=now)
        if after is None:
            after = DEFAULT_RETRY_AFTER
        return Retry(after=after, reason=f"supplier answered HTTP {status}: {_snippet(raw)}")
    if status >= 500:
        raise SupplierServerError(status, _snippet(raw))
    if status != 200:
        return Failed(f"http-forward: supplier answered HTTP {status}: {_snippet(raw)}")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Failed(f"http-forward: the supplier's reply is not JSON ({exc}): {_snippet(raw)}")
    if not isinstance(document, dict):
        return Failed("http-forward: the supplier's reply is not a JSON object")
    return map_reply_document(document)


def map_reply_document(document: Mapping[str, Any]) -> Outcome:
    """Map a 200 reply's JSON object to Response, BusinessError or Failed."""
    outcome = document.get("outcome")
    if outcome == "response":
        body = document.get("body")
        if not isinstance(body, str):
            return Failed("http-forward: a 'response' reply needs a string 'body'")
        try:
            root = parse_body(_XML_DECLARATION.sub("", body, count=1).encode("utf-8"))
        except BodyError as exc:
            return Failed(f"http-forward: the reply body is invalid: {exc}")
        return Response(body=etree.tostring(root, encoding="utf-8"))
    if outcome == "business_error":
        errors = document.get("errors")
        if not isinstance(errors, list) or not errors:
            return Failed("http-forward: a 'business_error' reply needs a non-empty 'errors' list")
        parsed: list[GovTalkError] = []
        for index, item in enumerate(errors):
            error = _business_error(item)
            if isinstance(error, str):
                return Failed(f"http-forward: errors[{index}] {error}")
            parsed.append(error)
        application = document.get("application", "")
        if not isinstance(application, str):
            return Failed("http-forward: 'application' must be a string")
        return BusinessError(errors=tuple(parsed), application=application)
    if outcome == "failed":
        reason = document.get("reason")
        return Failed(
            f"http-forward: the supplier failed the transaction: "
            f"{reason if isinstance(reason, str) else 'no reason given'}"
        )
    return Failed(f"http-forward: unknown outcome {outcome!r} in the supplier's reply")


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    # ASCII digits only: str.isdigit() also takes "²" and other digits float() refuses.
    if _DELTA_SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if now.tzinfo is None:
        return None
    if when.tzinfo is None:
        # An HTTP-date is always GMT (RFC 9110 5.6.7); parsedate leaves the asctime form and a
        # "-0000" zone without a tzinfo, and a recipient must accept all three forms.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _transient(status: int) -> bool:
    """A status the hub retries whatever the body says (see map_reply)."""
    return status == 429 or status >= 500


def _business_error(item: object) -> GovTalkError | str:
    # Returns the error, or a description of what is wrong with the item.
    if not isinstance(item, dict):
        return "is not an object"
    number = item.get("number")
    if isinstance(number, bool) or not isinstance(number, int):
        return "needs an integer 'number'"
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        return "needs a non-empty string 'text'"
    locations = item.get("locations", [])
    if not isinstance(locations, list) or not all(isinstance(loc, str) for loc in locations):
        return "'locations' must be a list of strings"
    type_ = item.get("type")
    if type_ is not None and type_ not in _ERROR_TYPES:
        return f"has unknown 'type' {type_!r}"
    if number in CATALOGUE or 4000 <= number < 5000:
        error = GovTalkError.of(number, text, locations=tuple(locations))
    else:
        # Departments number their own business rules; they are theirs, not the hub's catalogue.
        error = GovTalkError(number, text, DEPARTMENT, "business", tuple(locations))
    if type_ is not None:
        error = replace(error, type=cast(ErrorType, type_))
    return error


def _header_option(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConnectorConfigError("option 'headers' must be a table of string values")
    return dict(value)


async def _read_capped(reply: aiohttp.ClientResponse, limit: int) -> bytes:
    # A supplier bug must not exhaust the hub's memory: read at most limit bytes.
    if reply.content_length is not None and reply.content_length > limit:
        raise _ReplyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in reply.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _ReplyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _snippet(raw: bytes) -> str:
    text = raw[: _SNIPPET * 4].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text[:_SNIPPET] + ("…" if len(text) > _SNIPPET else "")
