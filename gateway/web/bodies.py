"""Reading request bodies a client may have made hostile: every failure is a 400, never a 500."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from gateway.errors import ProblemError

NOT_JSON = "the body must be a JSON object"
NOT_FORM = "the form must be URL-encoded UTF-8 text"
NOT_DECODED = "the body could not be decoded by its Content-Encoding"


async def json_body(request: web.Request) -> Any:
    """The body as JSON, whatever its shape."""
    try:
        raw = await request.read()
    except web.RequestPayloadError:  # a corrupt gzip, deflate, br or zstd stream
        raise ProblemError(400, "Bad Request", NOT_DECODED) from None
    try:
        return json.loads(raw)
    # ValueError covers JSONDecodeError and UnicodeDecodeError; RecursionError is a body nested
    # deeper than the interpreter's stack, still well under the size cap.
    except (ValueError, RecursionError):
        raise ProblemError(400, "Bad Request", NOT_JSON) from None


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object."""
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ProblemError(400, "Bad Request", NOT_JSON)
    return data


async def form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The url-encoded (or multipart) form."""
    try:
        return await request.post()
    except web.RequestPayloadError:
        raise ProblemError(400, "Bad Request", NOT_DECODED) from None
    except ValueError:  # UnicodeDecodeError: bytes that are not UTF-8
        raise ProblemError(400, "Bad Request", NOT_FORM) from None
