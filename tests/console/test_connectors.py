"""The connectors page: health and latency, faults set and cleared, dead letters replayed."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import aiohttp

from gateway.clock import utcnow
from gateway.console.live import marker
from gateway.store import submissions as store
from gateway.web.keys import DB
from tests.conftest import Hub, HubFactory
from tests.console.conftest import Console, audit_records
from tests.faults.conftest import COUNCIL, quick_route, view
from tests.hub import wire
from tests.hub.rows import submission
from tests.hub.test_dsp import view_submission


def health_row(page: str, connector: str) -> str:
    table = page.split('id="connector-health"')[1].split("</table>")[0]
    found = re.search(rf'<tr data-key="{connector}">(.*?)</tr>', table, re.S)
    assert found, table
    return found.group(1)


async def test_health_latency_and_error_rate_from_the_calls(hub: Hub, console: Console) -> None:
    for _ in range(3):
        assert (await view(hub)).qualifier == "response"
    await audit_records(hub, "dispatch.answered", at_least=3)
    status, page = await console.get("/console/connectors")
    assert status == 200
    row = health_row(page, COUNCIL)
    assert "status-healthy" in row
    cells = re.findall(r'<td class="num">([^<]*)</td>', row)
    calls, p50, p95, p99, error_rate = cells
    assert calls == "3" and error_rate == "0.0 %"
    assert all(re.fullmatch(r"\d+\.\d{3} s", p) for p in (p50, p95, p99))
    assert "status-idle" in health_row(page, "council-E07000188")


async def test_a_fault_set_from_the_page_changes_the_outcome_and_clears(
    hub_factory: HubFactory, console_for
) -> None:
    hub: Hub = await hub_factory({"routes": [quick_route("E08000024", COUNCIL)]})
    console: Console = console_for(hub)
    resp = await console.post(
        f"/console/connectors/{COUNCIL}/fault",
        {"fault": "business_error", "param-number": "3001", "param-text": "Closed for lunch"},
    )
    assert resp.status == 303
    _, page = await console.get(resp.headers["Location"])
    assert "Fault set on council-E08000024" in page
    assert "Current fault: <strong>business_error</strong>" in page
    # The same store the admin API reads.
    async with hub.session.get(f"{hub.url}/admin/faults") as r:
        assert [f["fault"] for f in (await r.json())["faults"]] == ["business_error"]
    reply = await view(hub)
    assert reply.qualifier == "error" and reply.error_number == 3001
    assert "Closed for lunch" in reply.errors[0]["text"]
    set_record = (await audit_records(hub, "admin.faults.set"))[0]
    assert (set_record.actor, set_record.detail["via"]) == ("loopback", "console")

    resp = await console.post(f"/console/connectors/{COUNCIL}/fault/clear", {})
    assert resp.status == 303
    assert (await view(hub)).qualifier == "response"


async def test_bad_fault_parameters_are_explained_on_the_page(console: Console) -> None:
    resp = await console.post(
        f"/console/connectors/{COUNCIL}/fault", {"fault": "error_rate", "param-rate": "2"}
    )
    assert resp.status == 422
    status, page = await console.get("/console/connectors")
    assert "Current fault" not in page
    async with console.session.post(
        f"{console.base}/console/connectors/{COUNCIL}/fault",
        data={"csrf_token": await console.csrf(), "fault": "error_rate", "param-rate": "2"},
    ) as r:
        text = await r.text()
    assert "must be a number from 0 to 1" in text and 'role="alert"' in text
    status, _ = await console.get("/console/nowhere")
    assert status == 404
    resp = await console.post("/console/connectors/no-such-connector/fault", {"fault": "hang"})
    assert resp.status == 404


async def test_a_dead_letter_is_replayed_from_the_page(
    hub_factory: HubFactory, console_for
) -> None:
    hub: Hub = await hub_factory({"routes": [quick_route("E08000024", COUNCIL)]})
    console: Console = console_for(hub)
    await console.post(f"/console/connectors/{COUNCIL}/fault", {"fault": "hang"})
    failed = await view(hub)
    assert failed.error_number == 2005
    await console.post(f"/console/connectors/{COUNCIL}/fault/clear", {})

    _status, page = await console.get("/console/connectors")
    letters = page.split('id="dead-letter-list"')[1].split('id="c-')[0]
    assert failed.correlation_id in letters
    action = re.search(r'action="(/console/dead-letters/(\d+)/replay)"', letters)
    assert action
    resp = await console.post(action.group(1), {})
    assert resp.status == 303
    _, page = await console.get(resp.headers["Location"])
    assert f"Dead letter {action.group(2)} queued for delivery again" in page
    assert "No dead letters are waiting" in page
    replayed = (await audit_records(hub, "admin.dead_letter_replayed"))[0]
    assert replayed.correlation_id == failed.correlation_id

    async with asyncio.timeout(10):
        while True:
            reply = wire.read(
                await hub.post(wire.poll("LA-CTAX-VIEW", failed.correlation_id), path="/poll")
            )
            if reply.qualifier != "acknowledgement":
                break
            await asyncio.sleep(0.05)
    assert reply.qualifier == "response"
    again = await console.post(action.group(1), {})
    assert again.status == 409


async def test_the_event_stream_says_when_something_changed(hub: Hub, console: Console) -> None:
    timeout = aiohttp.ClientTimeout(total=15)
    async with console.session.get(f"{console.base}/console/events", timeout=timeout) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert (await stream.content.readline()).startswith(b"retry:")
        wire.read(await hub.post(view_submission()))
        async with asyncio.timeout(10):
            while True:
                line = await stream.content.readline()
                if line.startswith(b"event: changed"):
                    break


async def test_the_marker_moves_when_a_dispatcher_takes_a_queued_transaction(hub: Hub) -> None:
    # Taking a queued submission writes no audit record (its answer will): the console's
    # transactions page must still hear that it is now in progress.
    db = hub.app[DB]
    due = utcnow() + timedelta(hours=1)  # not before: the hub's own dispatcher leaves it be
    await store.insert(db, submission("C0FFEE" + "0" * 26, connector="nobody", at=due))
    before = await marker(db)
    taken = await store.claim(
        db, owner="test", limit=1, now=due, lease=timedelta(minutes=5), connector="nobody"
    )
    assert [s.correlation_id for s in taken] == ["C0FFEE" + "0" * 26]
    assert await marker(db) != before
