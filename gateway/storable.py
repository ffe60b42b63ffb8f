"""Text made fit to store and to serve as XML.

Strings from outside (a back office's business error texts, its application name, a 429 or 4xx
body quoted in a reason; a client's request headers in audit records; a reply shown in a JUnit
report) reach database columns and XML. PostgreSQL refuses a NUL byte, UTF-8 cannot carry a lone
surrogate (what undecodable header bytes become), and lxml refuses any character XML 1.0 cannot
carry: one such string would make an answer unrecordable, every poll a 1000, or the audit trail
stop.
"""

from __future__ import annotations

import re

# Characters XML 1.0 cannot carry (NUL, C0 controls but tab/LF/CR, non-characters, lone
# surrogates, which no UTF-8 database column takes either).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_CUT = "…"


def storable(text: str, limit: int | None = None) -> str:
    """`text` with what XML 1.0 cannot carry replaced by U+FFFD, cut to `limit` characters."""
    if _NOT_XML.search(text) is not None:
        text = _NOT_XML.sub("\ufffd", text)
    if limit is not None and len(text) > limit:
        text = text[: limit - len(_CUT)] + _CUT
    return text
