"""The hub's sign-in page in a real browser (Debian's chromium): what a citizen sees and does."""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Browser, expect

from gateway.demo import certificate_paths, citizens_list
from tests.conftest import Hub
from tests.sso.conftest import SEDGEMOOR, SUNDERLAND, Portal

MOVER = next(c for c in citizens_list() if c.user_id == "DEMO0MOV0001")


async def test_password_sign_in_once_for_two_portals_then_sign_out_everywhere(
    browser: Browser, sso_hub: Hub, portals: Any
) -> None:
    sunderland: Portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    sedgemoor: Portal = await portals("Sedgemoor portal", SEDGEMOOR, "private_key_jwt")
    # The hub's certificate comes from its own development CA, which chromium does not know.
    context = await browser.new_context(ignore_https_errors=True)
    page = await context.new_page()

    await page.goto(f"{sunderland.url}/login")
    await expect(page).to_have_title("Sign in – Government Gateway")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Sunderland portal")
    await expect(page.get_by_text("did not offer a digital certificate")).to_be_visible()
    await page.get_by_label("User ID").fill(MOVER.user_id)
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Sign in", exact=True).click()

    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("The User ID or password was not recognised.")
    await expect(page).to_have_title("Error: Sign in – Government Gateway")
    link = alert.get_by_role("link")
    assert await link.get_attribute("href") == "#user_id"
    field = page.get_by_label("User ID")
    await expect(field).to_have_value(MOVER.user_id)
    await expect(field).to_have_attribute("aria-invalid", "true")
    assert await field.get_attribute("aria-describedby") == "user_id-error"

    await page.get_by_label("Password").fill(MOVER.password)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page).to_have_url(f"{sunderland.url}/")
    await expect(page.locator("body")).to_contain_text("Sunderland portal: signed in as")

    # The second portal: no sign-in page, the citizen is already signed in.
    await page.goto(f"{sedgemoor.url}/login")
    await expect(page).to_have_url(f"{sedgemoor.url}/")
    await expect(page.locator("body")).to_contain_text("Sedgemoor portal: signed in as")

    # Signing out at the hub (no id_token_hint): the citizen confirms, and both portals hear.
    await page.goto(f"{sso_hub.config.sso_issuer}/sso/logout")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Sign out of the Government Gateway?"
    )
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("You have signed out")
    texts = sorted(await page.get_by_role("listitem").all_inner_texts())
    assert texts == ["Sedgemoor portal", "Sunderland portal"]
    assert sunderland.users == {} and sedgemoor.users == {}
    assert len(sunderland.logout_tokens) == len(sedgemoor.logout_tokens) == 1

    await page.goto(f"{sedgemoor.url}/login")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Sedgemoor portal")
    await context.close()


async def test_certificate_sign_in_is_one_click_without_javascript(
    browser: Browser, sso_hub: Hub, portals: Any
) -> None:
    portal: Portal = await portals("Sunderland portal", SUNDERLAND, "client_secret_basic")
    cert, key = certificate_paths(sso_hub.config, MOVER.user_id)
    context = await browser.new_context(
        ignore_https_errors=True,
        java_script_enabled=False,
        client_certificates=[
            {"origin": sso_hub.config.sso_issuer, "certPath": str(cert), "keyPath": str(key)}
        ],
    )
    page = await context.new_page()
    await page.goto(f"{portal.url}/login")
    await expect(
        page.get_by_text(re.compile("Your browser offered the certificate of"))
    ).to_be_visible()
    await page.get_by_role("button", name="Sign in with your certificate").click()
    await expect(page).to_have_url(f"{portal.url}/")
    user = next(iter(portal.users.values()))
    assert user["acr"] == "urn:gateway:level:2" and "cnf" in user
    await context.close()
