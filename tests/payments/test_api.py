"""Creating payments (Idempotency-Key), the hosted page and its test cards, expiry, cancel,
refunds, tokens and the reconciliation report — over real HTTP against the demo hub."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.payment_models import PaymentRow
from tests.payments.conftest import (
    GOOD_CARD,
    RETURN_URL,
    SUNDERLAND,
    PayHub,
    PayHubFactory,
    Receiver,
    eventually,
)


async def test_create_answers_201_with_the_hosted_page(pay_hub: PayHub) -> None:
    status, body = await pay_hub.create(amount=500)
    assert status == 201
    assert body["state"] == "created"
    assert body["amount"] == 500
    assert re.fullmatch(r"[0-9a-f]{26}", body["payment_id"])
    assert body["next_url"] == f"{pay_hub.url}/pay/{body['payment_id']}"


async def test_same_key_and_body_gives_the_original_different_body_409(pay_hub: PayHub) -> None:
    status, first = await pay_hub.create(key="order-1")
    assert status == 201
    status, again = await pay_hub.create(key="order-1")
    assert status == 200
    assert again["payment_id"] == first["payment_id"]
    status, problem = await pay_hub.create(key="order-1", amount=999)
    assert status == 409
    assert problem["status"] == 409
    # Another key, or none, makes a new payment.
    status, other = await pay_hub.create(key="order-2")
    assert status == 201 and other["payment_id"] != first["payment_id"]
    status, unkeyed = await pay_hub.create()
    assert status == 201 and unkeyed["payment_id"] != first["payment_id"]


async def test_idempotency_key_is_forgotten_after_24_hours(pay_hub: PayHub) -> None:
    _, first = await pay_hub.create(key="k")
    pay_hub.clock.advance(timedelta(hours=23, minutes=59))
    _, same = await pay_hub.create(key="k")
    assert same["payment_id"] == first["payment_id"]
    pay_hub.clock.advance(timedelta(minutes=2))
    status, fresh = await pay_hub.create(key="k", amount=1)
    assert status == 201
    assert fresh["payment_id"] != first["payment_id"]


async def test_idempotency_key_length_and_bad_bodies(pay_hub: PayHub) -> None:
    status, _ = await pay_hub.create(key="x" * 256)
    assert status == 400
    status, problem = await pay_hub.create(amount=0)
    assert status == 422 and problem["field"] == "amount"
    status, problem = await pay_hub.create(amount="12.00")
    assert status == 422
    status, problem = await pay_hub.create(council="E00000000")
    assert status == 422 and problem["field"] == "council"
    status, problem = await pay_hub.create(return_url="javascript:alert(1)")
    assert status == 422 and problem["field"] == "return_url"
    status, _ = await pay_hub.call("GET", "/api/payments/nope")
    assert status == 404


async def test_hosted_page_is_labelled_html_and_starts_the_payment(pay_hub: PayHub) -> None:
    _, body = await pay_hub.create(description="Council Tax <2026>")
    status, html = await pay_hub.page(body["payment_id"])
    assert status == 200
    assert "<script" not in html
    assert "Council Tax &lt;2026&gt;" in html
    assert "£123.45" in html
    for name in ("card-number", "expiry-month", "expiry-year", "cvc", "cardholder-name"):
        assert f'<label for="{name}">' in html
        assert f'id="{name}" name="{name}"' in html
    assert f'<form method="post" action="/pay/{body["payment_id"]}"' in html
    _, now = await pay_hub.call("GET", f"/api/payments/{body['payment_id']}")
    assert now["state"] == "started"


@pytest.mark.parametrize(
    ("number", "state", "failure"),
    [
        ("4242424242424242", "success", None),
        ("4000000000000002", "declined", "card_declined"),
        ("4000000000000069", "declined", "card_expired"),
        ("4000000000000127", "declined", "incorrect_cvc"),
        ("4000000000000119", "error", "processing_error"),
        ("5555555555554444", "success", None),  # any other valid (Luhn) number succeeds
    ],
)
async def test_magic_cards_through_the_form(
    pay_hub: PayHub, number: str, state: str, failure: str | None
) -> None:
    _, body = await pay_hub.create()
    payment_id = body["payment_id"]
    await pay_hub.page(payment_id)
    resp = await pay_hub.submit(payment_id, {**GOOD_CARD, "card-number": number})
    assert resp.status == 303
    assert resp.headers["Location"] == f"{RETURN_URL}?payment_id={payment_id}"
    _, after = await pay_hub.call("GET", f"/api/payments/{payment_id}")
    assert after["state"] == state
    assert after["card_details"]["last_digits_card_number"] == number[-4:]
    assert (after.get("failure") or {}).get("code") == failure
    assert "next_url" not in after
    # A decided payment takes no second card; the page says what happened.
    again = await pay_hub.submit(payment_id, GOOD_CARD)
    assert again.status == 303
    _, still = await pay_hub.call("GET", f"/api/payments/{payment_id}")
    assert still["state"] == state
    status, html = await pay_hub.page(payment_id)
    assert status == 200 and "Continue to the service" in html


async def test_invalid_card_rerenders_with_an_error_and_keeps_no_number(pay_hub: PayHub) -> None:
    _, body = await pay_hub.create()
    payment_id = body["payment_id"]
    resp = await pay_hub.submit(payment_id, {**GOOD_CARD, "card-number": "4242424242424241"})
    assert resp.status == 422
    async with pay_hub.session.post(
        f"{pay_hub.url}/pay/{payment_id}",
        data={**GOOD_CARD, "card-number": "4242 4242 4242 4241"},
        allow_redirects=False,
    ) as r:
        html = await r.text()
    assert "Enter a valid card number" in html
    assert 'aria-describedby="card-number-error"' in html
    assert "4241" not in html and "Ada Lovelace" in html
    expired = await pay_hub.submit(payment_id, {**GOOD_CARD, "expiry-year": "2001"})
    assert expired.status == 422
    bad_cvc = await pay_hub.submit(payment_id, {**GOOD_CARD, "cvc": "12"})
    assert bad_cvc.status == 422
    _, after = await pay_hub.call("GET", f"/api/payments/{payment_id}")
    assert after["state"] == "started"
    assert "card_details" not in after


async def test_abandoned_payment_expires(pay_hub: PayHub) -> None:
    _, created = await pay_hub.create()
    _, started = await pay_hub.create(amount=7)
    await pay_hub.page(started["payment_id"])
    pay_hub.clock.advance(timedelta(minutes=89))
    await pay_hub.payments.run_once()
    _, body = await pay_hub.call("GET", f"/api/payments/{created['payment_id']}")
    assert body["state"] == "created"
    pay_hub.clock.advance(timedelta(minutes=2))
    await pay_hub.payments.run_once()
    for payment_id in (created["payment_id"], started["payment_id"]):
        _, body = await pay_hub.call("GET", f"/api/payments/{payment_id}")
        assert body["state"] == "expired"
    resp = await pay_hub.submit(started["payment_id"], GOOD_CARD)
    assert resp.status == 303
    _, body = await pay_hub.call("GET", f"/api/payments/{started['payment_id']}")
    assert body["state"] == "expired"


@pytest.mark.postgres
async def test_a_payment_made_as_the_expiry_pass_runs_stays_paid(
    pg_url: str,  # before the hub, so the hub stops before its database is dropped
    pay_hub_factory: PayHubFactory,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The citizen pays a moment before the payment would expire; the background pass, running
    while the card step holds the payment, must not turn the committed success into expired."""
    hub: PayHub = await pay_hub_factory(
        {"webhooks": [{"url": receiver.url, "secret": "s"}]}, database={"url": pg_url}
    )
    _, body = await hub.create(amount=5000)
    payment_id = body["payment_id"]
    assert (await hub.page(payment_id))[0] == 200
    hub.clock.advance(timedelta(minutes=89, seconds=59))

    # The card step, in its transaction with the payment locked, takes a moment to finish.
    service = hub.payments
    real = service._locked_payment
    holding = asyncio.Event()

    async def slow(session: AsyncSession, wanted: str) -> PaymentRow:
        row = await real(session, wanted)
        holding.set()
        await asyncio.sleep(0.5)
        return row

    monkeypatch.setattr(service, "_locked_payment", slow)
    paying = asyncio.create_task(hub.submit(payment_id, GOOD_CARD))
    await holding.wait()
    monkeypatch.setattr(service, "_locked_payment", real)
    hub.clock.advance(timedelta(seconds=2))  # now past the 90 minutes
    await service.run_once()
    assert (await paying).status == 303
    await service.run_once()  # a later pass leaves the finished payment alone too

    _, after = await hub.call("GET", f"/api/payments/{payment_id}")
    assert after["state"] == "success", after
    status, _ = await hub.call("POST", f"/api/payments/{payment_id}/refunds", json={"amount": 1})
    assert status == 201
    today = hub.clock().date().isoformat()
    async with hub.session.get(
        f"{hub.url}/api/payments/reports/{SUNDERLAND}.csv?from={today}&to={today}"
    ) as resp:
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert ("payment", payment_id) in {(r["type"], r["payment_id"]) for r in rows}

    async def two_events() -> bool:
        await hub.payments.sender.send_due()
        return len(receiver.received) >= 2

    await eventually(two_events)
    events = [json.loads(body)["type"] for body, _ in receiver.received]
    assert sorted(events) == ["payment.succeeded", "refund.succeeded"], events


async def test_cancel_by_service_and_by_citizen(pay_hub: PayHub) -> None:
    _, body = await pay_hub.create()
    status, _ = await pay_hub.call("POST", f"/api/payments/{body['payment_id']}/cancel")
    assert status == 204
    _, after = await pay_hub.call("GET", f"/api/payments/{body['payment_id']}")
    assert after["state"] == "cancelled"
    status, _ = await pay_hub.call("POST", f"/api/payments/{body['payment_id']}/cancel")
    assert status == 409
    _, body = await pay_hub.create()
    await pay_hub.page(body["payment_id"])
    resp = await pay_hub.submit(body["payment_id"], {"action": "cancel"})
    assert resp.status == 303
    _, after = await pay_hub.call("GET", f"/api/payments/{body['payment_id']}")
    assert after["state"] == "cancelled"
    paid = await pay_hub.paid_payment()
    status, _ = await pay_hub.call("POST", f"/api/payments/{paid}/cancel")
    assert status == 409


async def test_refunds_up_to_the_amount_paid(pay_hub: PayHub) -> None:
    payment_id = await pay_hub.paid_payment(amount=1000)
    path = f"/api/payments/{payment_id}/refunds"
    status, refund = await pay_hub.call("POST", path, json={"amount": 600})
    assert status == 201 and refund["amount"] == 600 and refund["state"] == "success"
    status, problem = await pay_hub.call("POST", path, json={"amount": 401})
    assert status == 422 and problem["amount_available"] == 400
    status, _ = await pay_hub.call("POST", path, json={"amount": 0})
    assert status == 422
    status, _ = await pay_hub.call("POST", path, json={"amount": 400})
    assert status == 201
    _, body = await pay_hub.call("GET", f"/api/payments/{payment_id}")
    assert body["refund_summary"] == {"amount_refunded": 1000, "amount_available": 0}
    _, listed = await pay_hub.call("GET", path)
    assert [r["amount"] for r in listed["refunds"]] == [600, 400]
    _, unpaid = await pay_hub.create()
    status, _ = await pay_hub.call(
        "POST", f"/api/payments/{unpaid['payment_id']}/refunds", json={"amount": 1}
    )
    assert status == 409


async def test_a_retried_refund_naming_the_amount_available_is_not_made_twice(
    pay_hub: PayHub,
) -> None:
    # A council whose refund request timed out retries it: with GOV.UK Pay's
    # refund_amount_available the retry is refused once the first went through.
    payment_id = await pay_hub.paid_payment(amount=1000)
    path = f"/api/payments/{payment_id}/refunds"
    request = {"amount": 300, "refund_amount_available": 1000}
    status, refund = await pay_hub.call("POST", path, json=request)
    assert status == 201, refund
    status, problem = await pay_hub.call("POST", path, json=request)
    assert status == 412 and problem["amount_available"] == 700
    status, _ = await pay_hub.call("POST", path, json={**request, "refund_amount_available": 0})
    assert status == 422
    _, listed = await pay_hub.call("GET", path)
    assert [r["amount"] for r in listed["refunds"]] == [300]
    status, _ = await pay_hub.call("POST", path, json={**request, "refund_amount_available": 700})
    assert status == 201


async def test_council_token_reaches_only_its_own_payments(pay_hub_factory) -> None:
    hub: PayHub = await pay_hub_factory({"api_tokens": {SUNDERLAND: "sun-token"}})
    sun = {"Authorization": "Bearer sun-token"}
    status, body = await hub.create(headers=sun)
    assert status == 201
    status, _ = await hub.call("GET", f"/api/payments/{body['payment_id']}", headers=sun)
    assert status == 200
    status, _ = await hub.create(headers=sun, council="E07000188")
    assert status == 403
    status, _ = await hub.create(headers={"Authorization": "Bearer wrong"})
    assert status == 401
    _, other = await hub.create(council="E07000188")
    status, _ = await hub.call("GET", f"/api/payments/{other['payment_id']}", headers=sun)
    assert status == 404
    # Keys are scoped by caller: the same key from loopback is a different payment.
    _, a = await hub.create(key="same", headers=sun)
    _, b = await hub.create(key="same")
    assert a["payment_id"] != b["payment_id"]


async def test_reconciliation_csv_lists_payments_and_refunds(pay_hub: PayHub) -> None:
    paid = await pay_hub.paid_payment(amount=2500, reference="ACC1")
    await pay_hub.call("POST", f"/api/payments/{paid}/refunds", json={"amount": 500})
    _, declined = await pay_hub.create(amount=99)
    await pay_hub.pay(declined["payment_id"], "4000000000000002")
    elsewhere = await pay_hub.paid_payment(council="E07000188")
    today = pay_hub.clock().date().isoformat()
    async with pay_hub.session.get(
        f"{pay_hub.url}/api/payments/reports/{SUNDERLAND}.csv?from={today}&to={today}"
    ) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [(r["type"], r["payment_id"], r["amount_pence"]) for r in rows] == [
        ("payment", paid, "2500"),
        ("refund", paid, "-500"),
    ]
    assert rows[0]["reference"] == "ACC1" and rows[0]["amount"] == "25.00"
    assert rows[0]["card_last4"] == "4242"
    assert elsewhere not in {r["payment_id"] for r in rows}
    yesterday = (pay_hub.clock() - timedelta(days=1)).date().isoformat()
    async with pay_hub.session.get(
        f"{pay_hub.url}/api/payments/reports/{SUNDERLAND}.csv?from={yesterday}&to={yesterday}"
    ) as resp:
        assert len((await resp.text()).strip().splitlines()) == 1  # the header only
    status, _ = await pay_hub.call("GET", f"/api/payments/reports/{SUNDERLAND}.csv?from=x")
    assert status == 400


async def test_reconciliation_csv_to_the_last_representable_day_is_a_problem(
    pay_hub: PayHub,
) -> None:
    async with pay_hub.session.get(
        f"{pay_hub.url}/api/payments/reports/{SUNDERLAND}.csv?from=2024-01-01&to=9999-12-31"
    ) as resp:
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"
        problem = await resp.json(content_type=None)
    assert problem["detail"] == "'to' must be before 9999-12-31" and problem["field"] == "to"
    async with pay_hub.session.get(
        f"{pay_hub.url}/api/payments/reports/{SUNDERLAND}.csv?from=2024-01-01&to=9999-12-30"
    ) as resp:
        assert resp.status == 200


async def test_behind_a_same_host_proxy_only_council_tokens_reach_payments(
    pay_hub_factory: PayHubFactory,
) -> None:
    """With [admin] allow_loopback off, an anonymous loopback peer cannot refund or read books."""
    hub: PayHub = await pay_hub_factory(
        {"api_tokens": {SUNDERLAND: "sun-token"}}, admin={"allow_loopback": False}
    )
    sun = {"Authorization": "Bearer sun-token"}
    status, body = await hub.create(headers=sun)
    assert status == 201
    payment_id = body["payment_id"]
    assert (await hub.page(payment_id))[0] == 200
    assert (await hub.submit(payment_id, GOOD_CARD)).status == 303  # the citizen needs no token
    refunds = f"/api/payments/{payment_id}/refunds"
    books = f"/api/payments/reports/{SUNDERLAND}.csv?from=2000-01-01&to=2100-01-01"
    assert (await hub.create())[0] == 401
    for method, path, sent in (
        ("POST", refunds, {"amount": 5000}),
        ("GET", f"/api/payments/{payment_id}", None),
        ("GET", books, None),
    ):
        status, problem = await hub.call(method, path, json=sent)
        assert status == 401, path
        assert "api_tokens" in problem["detail"]
    status, refund = await hub.call("POST", refunds, json={"amount": 5000}, headers=sun)
    assert status == 201, refund


async def test_a_page_rebound_to_loopback_is_not_every_council(pay_hub: PayHub) -> None:
    """DNS rebinding: a loopback peer naming another site is refused; the hub's names are not."""
    paid = await pay_hub.paid_payment()
    port = pay_hub.url.rsplit(":", 1)[1]
    for host, expected in (
        (f"rebind.attacker.example:{port}", 401),
        (f"localhost:{port}", 200),
        (f"127.0.0.1:{port}", 200),
    ):
        status, _ = await pay_hub.call("GET", f"/api/payments/{paid}", headers={"Host": host})
        assert status == expected, host
    status, _ = await pay_hub.call(
        "POST",
        f"/api/payments/{paid}/refunds",
        json={"amount": 1},
        headers={"Host": f"rebind.attacker.example:{port}"},
    )
    assert status == 401
