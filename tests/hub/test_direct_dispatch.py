"""The submit path hands a stored submission straight to its dispatcher, in a reserved slot; a
submission that could not be stored must give its slot back, or the hub would stop delivering."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.store import submissions
from tests.hub.test_dsp import VIEW, poll_until_final, submit, view_submission

ONE_SLOT = {"dispatcher": {"concurrency": 1, "per_connector": 1, "idle_poll_seconds": 0.05}}


async def test_a_submission_that_was_not_stored_gives_its_slot_back(
    hub_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await hub_factory(ONE_SLOT)
    original = submissions.insert
    failures = [OSError("disk full")]

    async def insert_failing_once(db: Any, submission: Any) -> None:
        if failures:
            raise failures.pop()
        await original(db, submission)

    monkeypatch.setattr(submissions, "insert", insert_failing_once)
    refused = await submit(hub, view_submission())
    assert refused.qualifier == "error" and refused.error_number == 1000
    # With the hub's only slot lost, this one would be acknowledged and never answered.
    for _ in range(3):
        ack = await submit(hub, view_submission())
        assert ack.qualifier == "acknowledgement"
        final = await poll_until_final(hub, VIEW, ack.correlation_id or "")
        assert final.qualifier == "response", final.raw


async def test_submissions_beyond_the_free_slots_wait_their_turn(hub_factory: Any) -> None:
    hub = await hub_factory(ONE_SLOT)
    acks = [await submit(hub, view_submission()) for _ in range(6)]
    assert all(a.qualifier == "acknowledgement" for a in acks)
    for ack in acks:
        final = await poll_until_final(hub, VIEW, ack.correlation_id or "")
        assert final.qualifier == "response"
        assert final.correlation_id == ack.correlation_id
