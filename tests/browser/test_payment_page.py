"""The hosted payment page (/pay/{id}) in a real headless Chromium, as a person uses it.

A council's system creates the payment over the JSON API and sends the person to its next_url;
the person types a card into the form (fields found by their visible labels, the button by its
accessible name) and the hub sends them back to the council's return_url. The council here is a
stub on its own port, so it is another origin than the hub, as a council's service always is.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, Response, expect

from tests.conftest import Hub, HubFactory
from tests.payments.conftest import SUNDERLAND
from tests.serving import serving

AMOUNT_PENCE = 12345
AMOUNT_SHOWN = "£123.45"
GOOD = "4242424242424242"
DECLINED = "4000000000000002"
EXPIRED = "4000000000000069"
NOT_LUHN = "4242424242424241"


@dataclass
class Council:
    """The council's own service: where the person comes back to after paying."""

    url: str
    returns: list[str] = field(default_factory=list)  # payment_id of each person sent back

    @property
    def return_url(self) -> str:
        return f"{self.url}/paid"


@pytest.fixture
async def council() -> AsyncIterator[Council]:
    got = Council(url="")

    async def paid(request: web.Request) -> web.Response:
        got.returns.append(request.query.get("payment_id", ""))
        return web.Response(
            text="<!DOCTYPE html><title>Council</title><h1>Thank you, back at the council</h1>",
            content_type="text/html",
        )

    async def js_check(request: web.Request) -> web.Response:
        return web.Response(
            text='<!DOCTYPE html><title>JS</title><p id="js">off</p>'
            "<script>document.getElementById('js').textContent = 'on'</script>",
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/paid", paid)
    app.router.add_get("/js-check", js_check)
    async with serving(app) as got.url:
        yield got


@pytest.fixture
async def pay_hub(hub_factory: HubFactory) -> Hub:
    """The demo hub on a real port; the payments' background pass wakes only on a change."""
    hub: Hub = await hub_factory({"payments": {"sender_interval_seconds": 3600}})
    return hub


# --- helpers -------------------------------------------------------------------------------------


async def create_payment(hub: Hub, council: Council) -> dict[str, Any]:
    """What a council's system does: POST /api/payments; the body has next_url."""
    body = {
        "amount": AMOUNT_PENCE,
        "reference": "CT-0001",
        "council": SUNDERLAND,
        "description": "Council Tax",
        "return_url": council.return_url,
    }
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    async with hub.session.post(f"{hub.url}/api/payments", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        created: dict[str, Any] = await resp.json()
    assert created["next_url"] == f"{hub.url}/pay/{created['payment_id']}"
    return created


async def payment(hub: Hub, payment_id: str) -> dict[str, Any]:
    async with hub.session.get(f"{hub.url}/api/payments/{payment_id}") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


async def fill_card(
    page: Page,
    number: str,
    *,
    month: str = "12",
    year: str = "2099",
    name: str = "Ada Lovelace",
    cvc: str = "123",
) -> None:
    await page.get_by_label("Card number").fill(number)
    await page.get_by_label("Month").fill(month)
    await page.get_by_label("Year").fill(year)
    await page.get_by_label("Name on card").fill(name)
    await page.get_by_label("Card security code").fill(cvc)


async def press(page: Page, button: str) -> Response | None:
    """Press a form's button and wait until the hub has answered the POST.

    The answer is the 422 page on a form error. Once the payment is decided the hub answers
    303 to the council's return_url (which the page's form-action must name, or Chromium
    blocks the redirect).
    """
    async with page.expect_request(lambda r: r.method == "POST" and "/pay/" in r.url) as sent:
        await page.get_by_role("button", name=button, exact=True).click()
    request = await sent.value
    return await request.response()


def returned_to(council: Council, payment_id: str) -> str:
    return f"{council.return_url}?payment_id={payment_id}"


def assert_sent_back(answer: Response | None, council: Council, payment_id: str) -> None:
    """A decided payment's POST is answered 303 to return_url?payment_id=…, and followed."""
    assert answer is not None, "Chromium did not follow the redirect to the council"
    assert answer.status == 303
    assert answer.headers["location"] == returned_to(council, payment_id)


async def expect_card_form(page: Page, *, error: bool = False) -> None:
    title = ("Error: " if error else "") + "Enter card details – Government Gateway"
    await expect(page).to_have_title(title)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Enter card details")
    await expect(page.locator("dt:text-is('Total amount') + dd")).to_have_text(AMOUNT_SHOWN)
    await expect(page.locator("dt:text-is('Payment for') + dd")).to_have_text("Council Tax")


async def expect_finished(page: Page, heading: str) -> None:
    """The page for a decided payment: what happened, the amount, no card form, a way back."""
    await expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    await expect(page).to_have_title(f"{heading} – Government Gateway")
    await expect(page.locator("dt:text-is('Total amount') + dd")).to_have_text(AMOUNT_SHOWN)
    await expect(page.get_by_label("Card number")).to_have_count(0)
    await expect(page.get_by_role("button", name="Continue", exact=True)).to_have_count(0)


# --- paying --------------------------------------------------------------------------------------


async def test_good_card_is_taken_and_the_page_confirms_it(
    pay_hub: Hub, council: Council, page: Page
) -> None:
    created = await create_payment(pay_hub, council)
    pid = created["payment_id"]
    await page.goto(created["next_url"])
    await expect_card_form(page)
    assert (await payment(pay_hub, pid))["state"] == "started"

    await fill_card(page, GOOD)
    assert_sent_back(await press(page, "Continue"), council, pid)
    after = await payment(pay_hub, pid)
    assert after["state"] == "success"
    assert after["card_details"]["last_digits_card_number"] == "4242"
    assert after["card_details"]["cardholder_name"] == "Ada Lovelace"

    # Opening the page again (back button, bookmark) shows the outcome, not a second card form.
    await page.goto(created["next_url"])
    await expect_finished(page, "Your payment was successful")
    back = page.get_by_role("link", name="Continue to the service")
    await expect(back).to_have_attribute("href", returned_to(council, pid))
    await back.click()
    await expect(page).to_have_url(returned_to(council, pid))
    await expect(page.get_by_role("heading")).to_have_text("Thank you, back at the council")
    # Once straight after paying (the redirect), once by the link on the outcome page.
    assert council.returns == [pid, pid]


async def test_after_paying_the_person_is_sent_on_to_the_service(
    pay_hub: Hub, council: Council, page: Page
) -> None:
    created = await create_payment(pay_hub, council)
    pid = created["payment_id"]
    await page.goto(created["next_url"])
    await fill_card(page, GOOD)
    answer = await press(page, "Continue")
    assert (await payment(pay_hub, pid))["state"] == "success"
    assert answer is not None, "the browser saw no answer: the redirect was blocked"
    assert_sent_back(answer, council, pid)
    await expect(page).to_have_url(returned_to(council, pid), timeout=1_000)
    await expect(page.get_by_role("heading")).to_have_text("Thank you, back at the council")
    assert council.returns == [pid]


async def test_declined_card_is_declined_and_the_page_says_so(
    pay_hub: Hub, council: Council, page: Page
) -> None:
    created = await create_payment(pay_hub, council)
    pid = created["payment_id"]
    await page.goto(created["next_url"])
    await fill_card(page, DECLINED)
    assert_sent_back(await press(page, "Continue"), council, pid)
    after = await payment(pay_hub, pid)
    assert after["state"] == "declined"
    assert after["failure"] == {"code": "card_declined", "message": "Your card was declined"}

    await page.goto(created["next_url"])
    await expect_finished(page, "Your payment was declined")
    await expect(page.get_by_role("link", name="Continue to the service")).to_have_attribute(
        "href", returned_to(council, pid)
    )


async def test_declined_page_says_why(pay_hub: Hub, council: Council, page: Page) -> None:
    created = await create_payment(pay_hub, council)
    pid = created["payment_id"]
    await page.goto(created["next_url"])
    await fill_card(page, EXPIRED)
    await press(page, "Continue")
    after = await payment(pay_hub, pid)
    assert after["failure"] == {"code": "card_expired", "message": "Your card has expired"}
    await page.goto(created["next_url"])
    await expect_finished(page, "Your payment was declined")
    await expect(page.get_by_text("Your card has expired")).to_be_visible(timeout=1_000)


async def test_cancel_button_cancels_the_payment(
    pay_hub: Hub, council: Council, page: Page
) -> None:
    created = await create_payment(pay_hub, council)
    pid = created["payment_id"]
    await page.goto(created["next_url"])
    assert_sent_back(await press(page, "Cancel payment"), council, pid)
    assert (await payment(pay_hub, pid))["state"] == "cancelled"
    await page.goto(created["next_url"])
    await expect_finished(page, "Your payment was cancelled")


# --- form errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field_id", "label", "typed", "message"),
    [
        ("card-number", "Card number", {"number": NOT_LUHN}, "Enter a valid card number"),
        ("cvc", "Card security code", {"cvc": "12"}, "Enter the 3 or 4 digit card security code"),
    ],
)
async def test_form_error_is_summarised_linked_and_described(
    pay_hub: Hub,
    council: Council,
    page: Page,
    field_id: str,
    label: str,
    typed: dict[str, str],
    message: str,
) -> None:
    created = await create_payment(pay_hub, council)
    pid = created["payment_id"]
    await page.goto(created["next_url"])
    card: dict[str, Any] = {"number": GOOD, **typed}
    await fill_card(page, **card)
    answer = await press(page, "Continue")
    assert answer is not None and answer.status == 422
    await expect_card_form(page, error=True)

    # The error summary, announced as an alert, links to the field at fault.
    summary = page.get_by_role("alert")
    await expect(summary).to_be_visible()
    await expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    link = summary.get_by_role("link", name=message, exact=True)
    await expect(link).to_have_attribute("href", f"#{field_id}")

    # The field itself is marked invalid and described by its message.
    faulty = page.get_by_label(label, exact=True)
    await expect(faulty).to_have_attribute("id", field_id)
    await expect(faulty).to_have_attribute("aria-invalid", "true")
    await expect(faulty).to_have_attribute("aria-describedby", f"{field_id}-error")
    await expect(page.locator(f"#{field_id}-error")).to_have_text(f"Error: {message}")
    await expect(faulty).to_have_accessible_description(f"Error: {message}")
    # Only the one field is marked.
    await expect(page.locator("[aria-invalid=true]")).to_have_count(1)

    # Following the link puts the person in the field.
    await link.click()
    await expect(faulty).to_be_focused()

    # What was typed comes back, except the card number and the CVC, which are never echoed.
    await expect(page.get_by_label("Card number")).to_have_value("")
    await expect(page.get_by_label("Card security code")).to_have_value("")
    await expect(page.get_by_label("Month")).to_have_value("12")
    await expect(page.get_by_label("Year")).to_have_value("2099")
    await expect(page.get_by_label("Name on card")).to_have_value("Ada Lovelace")
    assert (await payment(pay_hub, pid))["state"] == "started"

    # Put right, the same page takes the payment.
    await fill_card(page, GOOD)
    assert_sent_back(await press(page, "Continue"), council, pid)
    assert (await payment(pay_hub, pid))["state"] == "success"


async def test_form_error_puts_error_in_the_title(
    pay_hub: Hub, council: Council, page: Page
) -> None:
    created = await create_payment(pay_hub, council)
    await page.goto(created["next_url"])
    await fill_card(page, NOT_LUHN)
    answer = await press(page, "Continue")
    assert answer is not None and answer.status == 422
    await expect(page).to_have_title("Error: Enter card details – Government Gateway", timeout=1)


# --- without JavaScript --------------------------------------------------------------------------


async def test_paying_works_with_javascript_disabled(
    pay_hub: Hub, council: Council, browser: Browser
) -> None:
    context = await browser.new_context(java_script_enabled=False)
    context.set_default_timeout(5_000)
    try:
        page = await context.new_page()
        # JavaScript really is off in this context.
        await page.goto(f"{council.url}/js-check")
        await expect(page.locator("#js")).to_have_text("off")

        created = await create_payment(pay_hub, council)
        pid = created["payment_id"]
        await page.goto(created["next_url"])
        await expect_card_form(page)

        # The form is checked by the hub (novalidate): the error comes back without scripts.
        await fill_card(page, NOT_LUHN)
        answer = await press(page, "Continue")
        assert answer is not None and answer.status == 422
        await expect(page.get_by_role("alert")).to_contain_text("Enter a valid card number")

        await fill_card(page, GOOD)
        assert_sent_back(await press(page, "Continue"), council, pid)
        assert (await payment(pay_hub, pid))["state"] == "success"

        await page.goto(created["next_url"])
        await expect_finished(page, "Your payment was successful")
    finally:
        await context.close()
