"""Submission rows for tests that talk to the store directly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.clock import utcnow
from gateway.store.models import QUEUED, Submission


def submission(correlation_id: str, *, at: datetime | None = None, **changes: Any) -> Submission:
    """A queued submission, received and due `at` (now), with only the columns the store needs;
    `changes` sets any others."""
    now = at or utcnow()
    values: dict[str, Any] = {
        "correlation_id": correlation_id, "class_": "T", "base_class": "T", "organisation": "O",
        "connector": "c", "sender_id": "U", "auth_method": "clear", "auth_level": 1.0,
        "transaction_id": None, "keys": {}, "gateway_test": False, "test_in_live": False,
        "request_body": b"<x/>", "received_at": now, "state": QUEUED, "attempts": 0,
        "next_attempt_at": now,
    }  # fmt: skip
    values.update(changes)
    return Submission(**values)
