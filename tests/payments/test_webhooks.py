"""Webhooks: signed with HMAC-SHA256, retried 1 min, 5 min, ... after failures, every attempt
recorded and listable."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import datetime, timedelta

from gateway.services.payments.webhooks import RETRY_SCHEDULE, next_after
from tests.payments.conftest import PayHub, PayHubFactory, Receiver, eventually

SECRET = "whsec-test-secret"


async def attempts(hub: PayHub) -> list[dict]:
    status, body = await hub.call("GET", "/api/payments/webhooks/attempts")
    assert status == 200
    return sorted(body["attempts"], key=lambda a: a["id"])


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_signed_webhook_retried_on_schedule(
    pay_hub_factory: PayHubFactory, receiver: Receiver
) -> None:
    hub: PayHub = await pay_hub_factory({"webhooks": [{"url": receiver.url, "secret": SECRET}]})
    receiver.statuses = [500, 503]
    payment_id = await hub.paid_payment(amount=777)

    first = await eventually(lambda: _count(hub, 1))
    assert first[0]["status_code"] == 500
    assert first[0]["event_type"] == "payment.succeeded"
    assert at(first[0]["next_attempt_at"]) - at(first[0]["attempted_at"]) == timedelta(minutes=1)

    body, headers = receiver.received[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["Gateway-Signature"] == expected
    event = json.loads(body)
    assert event["type"] == "payment.succeeded"
    assert event["payment"]["payment_id"] == payment_id
    assert event["payment"]["amount"] == 777
    assert "4242424242424242" not in body.decode()

    await hub.payments.run_once()  # not due yet
    assert len(await attempts(hub)) == 1
    hub.clock.advance(timedelta(minutes=1, seconds=1))
    await hub.payments.run_once()
    second = await attempts(hub)
    assert len(second) == 2
    assert second[1]["status_code"] == 503 and second[1]["attempt"] == 2
    assert at(second[1]["next_attempt_at"]) - at(second[1]["attempted_at"]) == timedelta(minutes=5)
    hub.clock.advance(timedelta(minutes=4))
    await hub.payments.run_once()
    assert len(await attempts(hub)) == 2
    hub.clock.advance(timedelta(minutes=1, seconds=1))
    await hub.payments.run_once()
    third = await attempts(hub)
    assert len(third) == 3
    assert third[2]["status_code"] == 200 and third[2]["error"] is None
    assert third[2]["next_attempt_at"] is None
    assert third[2]["delivery_state"] == "delivered"
    # Same event id and signature on every attempt.
    assert {h["Gateway-Event-Id"] for _, h in receiver.received} == {event["id"]}
    assert [h["Gateway-Delivery-Attempt"] for _, h in receiver.received] == ["1", "2", "3"]


async def test_refund_and_failure_events(
    pay_hub_factory: PayHubFactory, receiver: Receiver
) -> None:
    hub: PayHub = await pay_hub_factory({"webhooks": [{"url": receiver.url, "secret": SECRET}]})
    payment_id = await hub.paid_payment(amount=300)
    await hub.call("POST", f"/api/payments/{payment_id}/refunds", json={"amount": 100})
    _, declined = await hub.create()
    await hub.pay(declined["payment_id"], "4000000000000002")

    async def three() -> bool:
        return len(receiver.received) >= 3

    await eventually(three)
    types = sorted(json.loads(body)["type"] for body, _ in receiver.received)
    assert types == ["payment.failed", "payment.succeeded", "refund.succeeded"]


async def test_unreachable_url_gives_up_after_the_last_retry(
    pay_hub_factory: PayHubFactory,
) -> None:
    hub: PayHub = await pay_hub_factory(
        {"webhooks": [{"url": "http://127.0.0.1:9/nothing", "secret": SECRET}]}
    )
    await hub.paid_payment()
    await eventually(lambda: _count(hub, 1))
    for delay in RETRY_SCHEDULE:
        hub.clock.advance(delay + timedelta(seconds=1))
        await hub.payments.run_once()
    listed = await attempts(hub)
    assert len(listed) == 6
    assert all(a["status_code"] is None and a["error"] for a in listed)
    assert listed[-1]["next_attempt_at"] is None
    assert listed[-1]["delivery_state"] == "failed"


def test_schedule() -> None:
    t = datetime(2026, 1, 1)
    assert [next_after(n, t) for n in range(1, 7)] == [
        t + timedelta(minutes=1),
        t + timedelta(minutes=5),
        t + timedelta(hours=1),
        t + timedelta(days=1),
        t + timedelta(days=2),
        None,
    ]


async def _count(hub: PayHub, n: int) -> list[dict] | None:
    listed = await attempts(hub)
    return listed if len(listed) >= n else None


async def test_hubs_sharing_a_database_send_each_due_webhook_once(
    pay_hub_factory: PayHubFactory, receiver: Receiver
) -> None:
    """Two hubs on one database both find the retry due; one of them sends it."""
    hooks = {"webhooks": [{"url": receiver.url, "secret": SECRET}]}
    one: PayHub = await pay_hub_factory(hooks)
    two: PayHub = await pay_hub_factory(hooks)
    receiver.statuses = [500]
    await one.paid_payment(amount=4321)
    await eventually(lambda: _count(one, 1))
    for hub in (one, two):
        hub.clock.advance(timedelta(minutes=1, seconds=1))
    # Slow enough that each hub has read the due delivery before either has recorded a send.
    receiver.delay = 0.3
    await asyncio.gather(one.payments.sender.send_due(), two.payments.sender.send_due())
    # A hub's own background pass may be the one that claimed it: wait for its record, then
    # long enough for a second send to have arrived, were there one.
    await eventually(lambda: _count(one, 2))
    await asyncio.sleep(receiver.delay * 3)
    recorded = await attempts(one)
    assert [a["attempt"] for a in recorded] == [1, 2], recorded
    assert len(receiver.received) == 2
    assert recorded[1]["delivery_state"] == "delivered"
