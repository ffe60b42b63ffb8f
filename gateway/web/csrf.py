"""The double-submit CSRF check the console's and the sign-on's forms share."""

from __future__ import annotations

import hmac


def double_submitted(cookie: str | None, sent: object) -> bool:
    """Whether a form's token is the browser's CSRF cookie; a missing or empty cookie never is."""
    if not cookie or not isinstance(sent, str):
        return False
    # As bytes: compare_digest refuses str that is not ASCII (a 500 instead of a refusal).
    return hmac.compare_digest(_raw(cookie), _raw(sent))


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
