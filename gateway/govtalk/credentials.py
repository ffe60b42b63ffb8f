"""The password forms of IDAuthentication (reference §4)."""

from __future__ import annotations

import base64
import hashlib


def md5_value(password: str) -> str:
    """The Value sent with Method MD5: base64 of the MD5 of the lower-cased UTF-8 password."""
    digest = hashlib.md5(password.lower().encode("utf-8"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")
