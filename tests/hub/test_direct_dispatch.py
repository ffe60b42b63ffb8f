"""The submit path hands a stored submission straight to its dispatcher, in a reserved slot; a
submission that could not be stored must give its slot back, or the hub would stop delivering."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.store import submissions
from tests.hub.rows import submission
from tests.hub.test_dsp import VIEW, poll_until_final, submit, view_submission

ONE_SLOT = {"dispatcher": {"concurrency": 1, "per_connector": 1, "idle_poll_seconds": 0.05}}


async def test_a_submission_that_was_not_stored_gives_its_slot_back(
    hub_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await hub_factory(ONE_SLOT)
    original = submissions.insert
    failures = [OSError("disk full")]

    async def insert_failing_once(db: Any, submission: Any, **audited: Any) -> None:
        if failures:
            raise failures.pop()
        await original(db, submission, **audited)

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


async def test_a_claimed_row_reads_back_as_the_stored_object_was(migrated_url: str) -> None:
    # Claiming reads rows through UPDATE … RETURNING, where SQLite gives an integral REAL back
    # as an int: the redelivery's JSON said "auth_level": 0 where the first said 0.0 (409).
    import json
    from datetime import timedelta

    from connectors.protocol import Identity, Transaction
    from gateway.clock import utcnow
    from gateway.store.engine import Database
    from gateway.store.models import Submission

    def document(s: Submission) -> str:
        identity = Identity(s.sender_id, s.auth_method, s.auth_level, ())
        tx = Transaction(
            correlation_id=s.correlation_id, class_=s.base_class, organisation=s.organisation,
            keys=dict(s.keys), body=s.request_body, envelope_body=None,
            identity=identity, transaction_id=s.transaction_id, gateway_test=s.gateway_test,
            test_in_live=s.test_in_live, received_at=s.received_at, attempt=0,
        )  # fmt: skip
        from connectors.http_forward.connector import request_document

        return json.dumps(request_document(tx), sort_keys=True)

    db = Database.open(migrated_url)
    try:
        now = utcnow()
        stored = submission(
            "C" * 32, at=now, sender_id=None, auth_method="none", auth_level=0.0, transaction_id="1"
        )
        first = document(stored)
        await submissions.insert(db, stored)
        [claimed] = await submissions.claim(
            db, owner="me", limit=1, now=now, lease=timedelta(seconds=30)
        )
        assert type(claimed.auth_level) is float
        assert document(claimed) == first
    finally:
        await db.aclose()
