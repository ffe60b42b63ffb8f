"""A successful payment reaches the council's back office: View Council Tax (over the DSP)
shows the payment and a lower balance; a failing connector is retried, never skipped."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from lxml import etree
from sqlalchemy import select

from connectors.protocol import (
    PaymentNotification,
    PaymentReceiver,
    RefundNotification,
    RefundReceiver,
)
from connectors.simcouncil.connector import SimulatedCouncilConnector
from gateway.demo import citizens_list
from gateway.store.audit_models import AuditRecord
from gateway.web.keys import AUDIT, CONNECTORS, DB
from tests.hub import wire
from tests.payments.conftest import PayHub, eventually

VIEW = "LA-CTAX-VIEW"
NS = {"v": "urn:govtalk-hub:la:ctax:view:v1"}
CITIZEN = citizens_list()[0]
ENROLMENT = CITIZEN.enrolments[0]


async def view_council_tax(hub: PayHub) -> etree._Element:
    xml = wire.submission(
        VIEW,
        ENROLMENT.example_body(),
        user=CITIZEN.user_id,
        password=CITIZEN.password,
        keys=ENROLMENT.keys,
        organisation=ENROLMENT.organisation,
        correlation_id="",
    )
    async with hub.session.post(hub.url + "/submission", data=xml.encode()) as resp:
        ack = wire.read(await resp.read())
    assert ack.correlation_id, ack.errors
    async with asyncio.timeout(10):
        while True:
            async with hub.session.post(
                hub.url + "/poll", data=wire.poll(VIEW, ack.correlation_id).encode()
            ) as resp:
                reply = wire.read(await resp.read())
            if reply.qualifier != "acknowledgement":
                break
            await asyncio.sleep(0.05)
    assert reply.qualifier == "response", reply.errors
    assert reply.body is not None
    return reply.body


def council_down(monkeypatch: pytest.MonkeyPatch, method: str) -> list[bool]:
    """The simulated council's `method` fails (back office down) until the list is cleared."""
    down = [True]
    original = getattr(SimulatedCouncilConnector, method)

    async def refusing(self, notification, ctx):  # type: ignore[no-untyped-def]
        if down:
            raise ConnectionError("back office down")
        await original(self, notification, ctx)

    monkeypatch.setattr(SimulatedCouncilConnector, method, refusing)
    return down


def balance(body: etree._Element) -> Decimal:
    return Decimal(body.findtext("v:Balance", namespaces=NS) or "")


def payments(body: etree._Element) -> list[str]:
    return [str(a) for a in body.xpath("v:Payments/v:Payment/v:Amount/text()", namespaces=NS)]


async def test_success_shows_in_view_council_tax(pay_hub: PayHub) -> None:
    before = await view_council_tax(pay_hub)
    payment_id = await pay_hub.paid_payment(
        amount=4321, reference=ENROLMENT.account_ref, council=ENROLMENT.organisation
    )
    _, body = await pay_hub.call("GET", f"/api/payments/{payment_id}")
    assert body["council_notified"] is True
    after = await view_council_tax(pay_hub)
    assert balance(after) == balance(before) - Decimal("43.21")
    assert payments(after) == [*payments(before), "43.21"]
    # A redelivered notification changes nothing (idempotent by payment id).
    connector, ctx = pay_hub.app[CONNECTORS].get(f"council-{ENROLMENT.organisation}")  # type: ignore[misc]
    assert isinstance(connector, PaymentReceiver)
    row = await pay_hub.payments.get(payment_id)
    assert row is not None and row.finished_at is not None
    await connector.payment_received(
        PaymentNotification(
            payment_id, row.organisation, row.reference, row.amount_pence, row.finished_at
        ),
        ctx,
    )
    again = await view_council_tax(pay_hub)
    assert balance(again) == balance(after)


async def test_declined_payment_does_not_reach_the_council(pay_hub: PayHub) -> None:
    before = await view_council_tax(pay_hub)
    _, body = await pay_hub.create(
        amount=1000, reference=ENROLMENT.account_ref, council=ENROLMENT.organisation
    )
    assert await pay_hub.pay(body["payment_id"], "4000000000000002") == "declined"
    after = await view_council_tax(pay_hub)
    assert balance(after) == balance(before)


async def test_failing_connector_is_retried_until_it_accepts(pay_hub: PayHub, monkeypatch) -> None:
    calls: list[str] = []
    original = SimulatedCouncilConnector.payment_received

    async def flaky(self, notification, ctx):  # type: ignore[no-untyped-def]
        calls.append(notification.payment_id)
        if len(calls) == 1:
            raise ConnectionError("back office down")
        await original(self, notification, ctx)

    monkeypatch.setattr(SimulatedCouncilConnector, "payment_received", flaky)
    before = await view_council_tax(pay_hub)
    payment_id = await pay_hub.paid_payment(
        amount=100, reference=ENROLMENT.account_ref, council=ENROLMENT.organisation
    )
    row = await pay_hub.payments.get(payment_id)
    assert row is not None and row.notify_state == "pending"
    assert row.notify_error and "back office down" in row.notify_error
    assert balance(await view_council_tax(pay_hub)) == balance(before)
    await pay_hub.payments.run_once()  # not due yet: nothing happens
    assert len(calls) == 1
    pay_hub.clock.advance(row.notify_next_at - pay_hub.clock())  # type: ignore[operator]
    await pay_hub.payments.run_once()

    async def notified() -> bool:
        fresh = await pay_hub.payments.get(payment_id)
        return fresh is not None and fresh.notify_state == "done"

    await eventually(notified)
    assert balance(await view_council_tax(pay_hub)) == balance(before) - Decimal("1.00")


async def test_a_hanging_council_neither_holds_the_payment_nor_loses_the_notice(
    pay_hub_factory, monkeypatch
) -> None:
    hub = await pay_hub_factory({"notify_timeout_seconds": 0.3})
    original = SimulatedCouncilConnector.payment_received
    hang = [True]

    async def hanging(self, notification, ctx):  # type: ignore[no-untyped-def]
        if hang:
            await asyncio.sleep(3600)
        await original(self, notification, ctx)

    monkeypatch.setattr(SimulatedCouncilConnector, "payment_received", hanging)
    before = await view_council_tax(hub)
    async with asyncio.timeout(10):  # the citizen's payment is not held by the council
        payment_id = await hub.paid_payment(
            amount=250, reference=ENROLMENT.account_ref, council=ENROLMENT.organisation
        )
    row = await hub.payments.get(payment_id)
    assert row is not None and row.state == "success" and row.notify_state == "pending"
    assert row.notify_error and "did not answer within 0.3s" in row.notify_error
    hang.clear()  # the council is back: the next due pass delivers the notice
    hub.clock.advance(row.notify_next_at - hub.clock())  # type: ignore[operator]
    await hub.payments.run_once()

    async def notified() -> bool:
        fresh = await hub.payments.get(payment_id)
        return fresh is not None and fresh.notify_state == "done"

    await eventually(notified)
    assert balance(await view_council_tax(hub)) == balance(before) - Decimal("2.50")


async def test_a_notification_refused_for_days_is_given_up_then_sent_again_on_request(
    pay_hub: PayHub, monkeypatch
) -> None:
    down = council_down(monkeypatch, "payment_received")
    before = await view_council_tax(pay_hub)
    payment_id = await pay_hub.paid_payment(
        amount=250, reference=ENROLMENT.account_ref, council=ENROLMENT.organisation
    )
    path = f"/api/payments/{payment_id}"
    # Retried while the days pass ([payments] notify_give_up_hours, 72 by default) ...
    pay_hub.clock.advance(timedelta(hours=71))
    await pay_hub.payments.run_once()
    _, body = await pay_hub.call("GET", path)
    assert body["council_notification"]["state"] == "pending"
    # ... then given up on: no longer retried, shown as failed, audited with the reason.
    pay_hub.clock.advance(timedelta(hours=2))
    await pay_hub.payments.run_once()
    _, body = await pay_hub.call("GET", path)
    told = body["council_notification"]
    assert told["state"] == "failed" and "back office down" in told["last_error"]
    assert body["council_notified"] is False
    attempts = told["attempts"]
    pay_hub.clock.advance(timedelta(days=1))
    await pay_hub.payments.run_once()
    _, body = await pay_hub.call("GET", path)
    assert body["council_notification"]["attempts"] == attempts
    await pay_hub.app[AUDIT].drained()
    async with pay_hub.app[DB].read() as session:
        given_up = (
            await session.scalars(
                select(AuditRecord).where(AuditRecord.event == "payments.notify_given_up")
            )
        ).all()
    assert [r.detail["payment"] for r in given_up] == [payment_id]
    assert given_up[0].outcome == "failed"

    # The council's system is back and asks for it again: it arrives once.
    down.clear()
    status, body = await pay_hub.call("POST", f"{path}/notify")
    assert status == 202 and body["council_notification"]["state"] == "pending"

    async def notified() -> bool:
        await pay_hub.payments.run_once()
        fresh = await pay_hub.payments.get(payment_id)
        return fresh is not None and fresh.notify_state == "done"

    await eventually(notified)
    assert balance(await view_council_tax(pay_hub)) == balance(before) - Decimal("2.50")
    # Nothing more to send.
    status, body = await pay_hub.call("POST", f"{path}/notify")
    assert status == 409 and "already accepted" in body["detail"]


async def test_a_refund_reaches_the_council_once_even_after_a_failure(
    pay_hub: PayHub, monkeypatch
) -> None:
    calls: list[str] = []
    original = SimulatedCouncilConnector.refund_received

    async def flaky(self, notification, ctx):  # type: ignore[no-untyped-def]
        calls.append(notification.refund_id)
        if len(calls) == 1:
            raise ConnectionError("back office down")
        await original(self, notification, ctx)

    monkeypatch.setattr(SimulatedCouncilConnector, "refund_received", flaky)
    payment_id = await pay_hub.paid_payment(
        amount=2000, reference=ENROLMENT.account_ref, council=ENROLMENT.organisation
    )
    paid = await view_council_tax(pay_hub)
    status, refund = await pay_hub.call(
        "POST", f"/api/payments/{payment_id}/refunds", json={"amount": 750}
    )
    assert status == 201, refund
    # Tried at once and refused: pending, and the council's books are as they were.
    assert refund["council_notification"]["state"] == "pending"
    assert "back office down" in refund["council_notification"]["last_error"]
    assert balance(await view_council_tax(pay_hub)) == balance(paid)

    row = await pay_hub.payments.refunds(payment_id)
    pay_hub.clock.advance(row[0].notify_next_at - pay_hub.clock())  # type: ignore[operator]

    async def told() -> bool:
        await pay_hub.payments.run_once()
        _, listed = await pay_hub.call("GET", f"/api/payments/{payment_id}/refunds")
        return bool(listed["refunds"][0]["council_notification"]["state"] == "done")

    await eventually(told)
    after = await view_council_tax(pay_hub)
    assert balance(after) == balance(paid) + Decimal("7.50")
    assert payments(after) == [*payments(paid), "-7.50"]
    # A redelivered refund changes nothing (idempotent by refund id).
    connector, ctx = pay_hub.app[CONNECTORS].get(f"council-{ENROLMENT.organisation}")  # type: ignore[misc]
    assert isinstance(connector, RefundReceiver)
    await connector.refund_received(
        RefundNotification(
            refund["refund_id"],
            payment_id,
            ENROLMENT.organisation,
            ENROLMENT.account_ref,
            750,
            pay_hub.clock(),
        ),
        ctx,
    )
    assert balance(await view_council_tax(pay_hub)) == balance(after)
    assert calls == [refund["refund_id"]] * 3  # the failed try, the retry, the redelivery


async def test_a_refund_notice_given_up_on_is_sent_again_when_the_council_asks(
    pay_hub: PayHub, monkeypatch
) -> None:
    down = council_down(monkeypatch, "refund_received")
    payment_id = await pay_hub.paid_payment(
        amount=1000, reference=ENROLMENT.account_ref, council=ENROLMENT.organisation
    )
    paid = await view_council_tax(pay_hub)
    _, refund = await pay_hub.call(
        "POST", f"/api/payments/{payment_id}/refunds", json={"amount": 400}
    )
    pay_hub.clock.advance(timedelta(hours=73))  # past [payments] notify_give_up_hours
    await pay_hub.payments.run_once()
    _, listed = await pay_hub.call("GET", f"/api/payments/{payment_id}/refunds")
    assert listed["refunds"][0]["council_notification"]["state"] == "failed"

    down.clear()
    path = f"/api/payments/{payment_id}/refunds/{refund['refund_id']}/notify"
    status, body = await pay_hub.call("POST", path)
    assert status == 202 and body["council_notification"]["state"] == "pending"

    async def told() -> bool:
        await pay_hub.payments.run_once()
        _, again = await pay_hub.call("GET", f"/api/payments/{payment_id}/refunds")
        return bool(again["refunds"][0]["council_notification"]["state"] == "done")

    await eventually(told)
    assert balance(await view_council_tax(pay_hub)) == balance(paid) + Decimal("4.00")
    assert (await pay_hub.call("POST", path))[0] == 409
    status, _ = await pay_hub.call("POST", f"/api/payments/{payment_id}/refunds/rfd_nope/notify")
    assert status == 404
