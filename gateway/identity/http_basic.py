"""Credentials from an `Authorization: Basic ...` header (RFC 7617, UTF-8)."""

from __future__ import annotations

import base64
import binascii


def decode_basic(header: str) -> tuple[str, str] | None:
    """(user, password) from the header, or None when it is not well-formed HTTP Basic; the user
    is stripped of surrounding whitespace, the password kept as sent."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip().encode("ascii"), validate=True).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or "\0" in decoded:
        return None
    return user.strip(), password
