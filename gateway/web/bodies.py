"""Reading request bodies a client may have made hostile: every failure is a 400, never a 500.

NUL characters are refused everywhere: they are not text, and PostgreSQL cannot store them in a
text column (SQLite can), so accepting them would make the two backends answer differently.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from gateway.errors import ProblemError

NOT_JSON = "the body must be a JSON object"
NOT_FORM = "the form must be URL-encoded UTF-8 text"
NOT_DECODED = "the body could not be decoded by its Content-Encoding"
HAS_NUL = "text may not contain NUL characters"


def has_nul(value: Any) -> bool:
    """Whether a NUL character is anywhere in a decoded JSON value (keys included)."""
    pending = [value]
    while pending:  # not recursive: the value may be nested nearly as deep as the stack
        item = pending.pop()
        if isinstance(item, str):
            if "\0" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


async def json_body(request: web.Request) -> Any:
    """The body as JSON, whatever its shape."""
    try:
        raw = await request.read()
    except web.RequestPayloadError:  # a corrupt gzip, deflate, br or zstd stream
        raise ProblemError(400, "Bad Request", NOT_DECODED) from None
    try:
        data = json.loads(raw)
    # ValueError covers JSONDecodeError and UnicodeDecodeError; RecursionError is a body nested
    # deeper than the interpreter's stack, still well under the size cap.
    except (ValueError, RecursionError):
        raise ProblemError(400, "Bad Request", NOT_JSON) from None
    if has_nul(data):
        raise ProblemError(400, "Bad Request", HAS_NUL)
    return data


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object."""
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ProblemError(400, "Bad Request", NOT_JSON)
    return data


async def form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The url-encoded (or multipart) form."""
    try:
        fields = await request.post()
    except web.RequestPayloadError:
        raise ProblemError(400, "Bad Request", NOT_DECODED) from None
    except ValueError:  # UnicodeDecodeError: bytes that are not UTF-8
        raise ProblemError(400, "Bad Request", NOT_FORM) from None
    if has_nul([*fields.keys(), *(v for v in fields.values() if isinstance(v, str))]):
        raise ProblemError(400, "Bad Request", HAS_NUL)
    return fields
