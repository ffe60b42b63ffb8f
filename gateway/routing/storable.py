"""Connector-supplied text made fit to store and to serve before the dispatcher writes it.

A back office's strings (business error texts, its application name, a 429 or 4xx body quoted
in a Retry or Failed reason) reach answers, dead letters and GovTalk replies. PostgreSQL refuses
a NUL byte and an over-long VARCHAR, and lxml refuses any character XML 1.0 cannot carry: an
answer the database refuses is never recorded, and one a reply cannot carry fails every poll.
"""

from __future__ import annotations

import re
from typing import cast

from sqlalchemy import String

from gateway.store.models import Submission

# Characters XML 1.0 cannot carry (NUL, C0 controls but tab/LF/CR, non-characters, lone
# surrogates, which no UTF-8 database column takes either).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_CUT = "…"

# Read from the model, so a migration that widens the column widens this too.
APPLICATION_LENGTH: int = cast(String, Submission.__table__.c.error_application.type).length or 128


def storable(text: str, limit: int | None = None) -> str:
    """`text` with what XML 1.0 cannot carry replaced by U+FFFD, cut to `limit` characters."""
    if _NOT_XML.search(text) is not None:
        text = _NOT_XML.sub("\ufffd", text)
    if limit is not None and len(text) > limit:
        text = text[: limit - len(_CUT)] + _CUT
    return text
