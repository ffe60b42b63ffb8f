"""The hub's clock: one place to read UTC now (later issues let scenarios move it)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
