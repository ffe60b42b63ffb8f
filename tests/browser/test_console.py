"""The admin console in a real headless Chromium, as an operator and a tester use it.

A transaction flows while the transactions page is open and appears without a reload; its story
page shows where it came from, how it was authenticated, where it went, each attempt and the
answer; a fault set from the connectors page turns the next transaction into an error; a
tester's scenario file, run against the hub, shows up as it runs. The main pages are saved as
screenshots (GATEWAY_TEST_ARTEFACTS, default tests/artefacts/).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.async_api import Page, expect

from tests.conftest import ROOT, Hub, HubFactory
from tests.faults.conftest import COUNCIL, quick_route
from tests.hub.test_dsp import acknowledged

# The page's live updates are connected: it says so, or has already been updated by them (a
# change the hub made just after the page loaded, such as its start-up audit record).
LIVE = re.compile(r"Live updates on\.|Updated \d\d:\d\d:\d\d UTC")

ARTEFACTS = Path(os.environ.get("GATEWAY_TEST_ARTEFACTS", ROOT / "tests" / "artefacts"))


def artefact(name: str) -> str:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTEFACTS / f"console-{name}.png")


async def screenshot(page: Page, name: str) -> None:
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    await page.screenshot(path=artefact(name), full_page=True)


async def test_an_operator_watches_a_transaction_and_breaks_a_connector(
    hub_factory: HubFactory, page: Page
) -> None:
    hub: Hub = await hub_factory({"routes": [quick_route("E08000024", COUNCIL)]})
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.goto(f"{hub.url}/console/transactions")
    await expect(page).to_have_title("Transactions – Gateway admin console")
    # Keyboard first: the first Tab reaches the skip link.
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    await expect(page.locator("[data-live-status]")).to_have_text(LIVE)
    await page.evaluate("window.notReloaded = true")

    # A transaction flows; it appears on the open page, answered, without a reload.
    first = await acknowledged(hub)
    row = page.locator(f'tr[data-key^="{first}"]')
    await expect(row).to_be_visible()
    await expect(row.locator(".status")).to_have_text("response")
    assert await page.evaluate("window.notReloaded") is True

    # Its story.
    await page.get_by_role("link", name=first).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Transaction {first}")
    for heading in (
        "Received",
        "Authenticated",
        "Routed",
        "Connector attempts",
        "Answer",
        "Request body",
        "Response body",
        "Audit records",
    ):
        await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    main = page.locator("main")
    await expect(main).to_contain_text("DEMO0SUN0001")
    await expect(main).to_contain_text("clear, authentication level 1")
    await expect(main).to_contain_text(f"{COUNCIL} (simulated-council)")
    await expect(page.locator("#attempts + table tbody tr")).to_have_count(1)
    await expect(page.locator("#attempts + table tbody tr")).to_contain_text("Response")
    await expect(main).to_contain_text("A response,")
    await expect(page.get_by_role("cell", name="dispatch.answered")).to_be_visible()
    await screenshot(page, "transaction")

    # A fault set from the connectors page: the next transaction is refused.
    await page.get_by_role("link", name="Connectors", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Connectors")
    card = page.locator(f"#c-{COUNCIL}")
    await card.get_by_text(f"Set a fault on {COUNCIL}").click()
    form = card.get_by_role("form", name=f"Set business_error on {COUNCIL}")
    await form.get_by_label("text").fill("Closed for the browser test")
    await form.get_by_role("button", name=f"Set business_error on {COUNCIL}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Fault set on {COUNCIL}")
    await expect(card).to_contain_text("Current fault: business_error")
    await screenshot(page, "connectors")

    await page.get_by_role("link", name="Transactions", exact=True).click()
    second = await acknowledged(hub)
    row = page.locator(f'tr[data-key^="{second}"]')
    await expect(row.locator(".status")).to_have_text("error")
    await expect(row).to_contain_text("3001 Closed for the browser test")
    await screenshot(page, "transactions")
    await page.get_by_role("link", name=second).click()
    await expect(page.locator("main")).to_contain_text("An error reply")
    await expect(page.get_by_role("cell", name="Closed for the browser test")).to_be_visible()

    # Cleared from the page again.
    await page.get_by_role("link", name="Connectors", exact=True).click()
    await page.get_by_role("button", name=f"Clear the fault on {COUNCIL}").click()
    await expect(page.locator(f"#fault-{COUNCIL}")).to_contain_text("No fault set")


async def test_a_testers_scenario_shows_up_in_the_console_as_it_runs(
    hub_factory: HubFactory, page: Page, tmp_path: Path
) -> None:
    from gateway.scenario.model import load
    from gateway.scenario.runner import run_scenario
    from gateway.scenario.target import remote_hub

    hub: Hub = await hub_factory()
    await page.goto(f"{hub.url}/console/transactions")
    await expect(page.locator("[data-live-status]")).to_have_text(LIVE)
    scenario = load(ROOT / "scenarios" / "view-council-tax-password.scenario.yaml")
    async with remote_hub(hub.url, None, tmp_path) as target:
        result = await run_scenario(scenario, target)
    assert result.ok, [(s.name, s.error) for s in result.steps]
    # The scenario's one transaction, answered and then deleted by the client, on the open page.
    row = page.locator("tbody tr", has_text="DEMO0SUN0001")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("LA-CTAX-VIEW")
    await expect(row.locator(".status")).to_have_text("response")
    await row.get_by_role("link").click()
    main = page.locator("main")
    await expect(main).to_contain_text("The client deleted it")
    await expect(page.get_by_role("cell", name="dsp.deleted")).to_be_visible()
