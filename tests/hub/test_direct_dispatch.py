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


async def test_a_handed_over_delivery_is_byte_for_byte_what_a_redelivery_sends(
    hub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A back office keyed by idempotency compares requests: the first delivery (the object the
    # submit path stored) and any redelivery (read back from the store) must be the same JSON.
    import json

    from connectors.http_forward.connector import request_document
    from gateway.web.keys import DB, DISPATCHER

    dispatcher = hub.app[DISPATCHER]
    build = dispatcher._transaction
    delivered: list[Any] = []

    async def spy(submission: Any) -> Any:
        tx = await build(submission)
        delivered.append(tx)
        return tx

    monkeypatch.setattr(dispatcher, "_transaction", spy)
    ack = await submit(hub, view_submission())
    await poll_until_final(hub, VIEW, ack.correlation_id or "")
    stored = await submissions.get(hub.app[DB], ack.correlation_id or "")
    assert stored is not None
    redelivery = await build(stored)

    def wire_json(tx: Any) -> str:
        document = request_document(tx)
        document.pop("attempt")
        return json.dumps(document, sort_keys=True)

    assert wire_json(delivered[0]) == wire_json(redelivery)
