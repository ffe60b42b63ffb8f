"""The transactions page: the list and its filters, and one transaction's whole story."""

from __future__ import annotations

import asyncio
import html
import re

from tests.conftest import Hub, HubFactory
from tests.console.conftest import Console, audit_records
from tests.faults.conftest import COUNCIL, final_answer, quick_route, set_fault, view
from tests.hub import wire
from tests.hub.test_dsp import VIEW, demo, view_submission

_ROW = re.compile(r'<tr data-key="([0-9A-F]+)-(\w+)">')


def listed(page: str) -> dict[str, str]:
    """CorrelationID → state, as the list shows them."""
    return dict(_ROW.findall(page))


async def test_a_transaction_is_listed_and_its_story_is_complete(
    hub: Hub, console: Console
) -> None:
    reply = await view(hub)
    assert reply.qualifier == "response"
    cid = reply.correlation_id
    await audit_records(hub, "dispatch.answered")

    status, page = await console.get("/console/transactions")
    assert status == 200
    assert listed(page) == {cid: "response"}
    assert f'href="/console/transactions/{cid}"' in page

    status, story = await console.get(f"/console/transactions/{cid}")
    assert status == 200
    citizen, enrolment = demo()
    text = html.unescape(story)
    # Received: when and how big; authenticated: who and how; routed: council and connector.
    assert 'id="received"' in story and "bytes, SHA-256" in story
    assert f"Citizen (SenderID)</dt><dd>{citizen.user_id}" in text
    assert "clear, authentication level 1" in text
    assert f"{COUNCIL} (simulated-council)" in text
    assert f"{VIEW} @ {enrolment.organisation}: async" in text
    # One attempt, with its timing, and the response.
    attempts = story.split('id="attempts"')[1].split('id="answer"')[0]
    assert "1 attempt<" in attempts
    assert re.search(r"Response</td>\s*<td class=\"num\">\d+\.\d{3} s", attempts)
    assert "A response," in story
    # Both bodies pretty-printed and escaped, never markup of the page.
    request_xml = story.split('id="request-xml"')[1]
    assert "&lt;" in request_xml and "\n  &lt;" in request_xml
    assert "Response body" in story
    # The audit records for this CorrelationID.
    for event in ("dsp.received", "dispatch.answered"):
        assert f"<td>{event}</td>" in story


async def test_a_back_dated_test_submission_says_so(hub: Hub, console: Console) -> None:
    xml = view_submission(gateway_test=True, gateway_timestamp="2026-03-31T23:59:59")
    reply = await final_answer(hub, xml)
    assert reply.qualifier == "response", reply.errors
    status, story = await console.get(f"/console/transactions/{reply.correlation_id}")
    assert status == 200
    assert "(GatewayTest)" in story
    assert "<dt>Back-dated to</dt><dd>2026-03-31 23:59:59.000000 UTC" in story
    # The real time of receipt stays what it was: the audit trail and the list go by it.
    assert "<dt>When</dt><dd>2026-03-31" not in story


async def test_filters_by_council_class_status_citizen_and_time(
    hub_factory: HubFactory, console_for
) -> None:
    hub: Hub = await hub_factory({"routes": [quick_route("E08000024", COUNCIL)]})
    console: Console = console_for(hub)
    good = await view(hub)
    await set_fault(hub, COUNCIL, "business_error")
    refused = await view(hub)
    assert refused.qualifier == "error"
    other_citizen, other_enrolment = demo(1)
    assert other_enrolment.organisation != "E08000024"
    third = await final_answer(
        hub,
        wire.submission(
            VIEW,
            other_enrolment.example_body(),
            user=other_citizen.user_id,
            password=other_citizen.password,
            keys=other_enrolment.keys,
            organisation=other_enrolment.organisation,
        ),
    )
    ids = {good.correlation_id, refused.correlation_id, third.correlation_id}

    async def shown(query: str) -> dict[str, str]:
        status, page = await console.get(f"/console/transactions?{query}")
        assert status == 200, page
        return listed(page)

    assert set(await shown("")) == ids
    assert set(await shown("council=E08000024")) == {
        good.correlation_id,
        refused.correlation_id,
    }
    assert set(await shown(f"council={other_enrolment.organisation}")) == {third.correlation_id}
    assert await shown("status=error") == {refused.correlation_id: "error"}
    assert set(await shown("status=response")) == {good.correlation_id, third.correlation_id}
    assert set(await shown(f"citizen={other_citizen.user_id}")) == {third.correlation_id}
    assert set(await shown(f"class={VIEW}")) == ids
    assert await shown("class=LA-CTAX-PAY") == {}
    assert set(await shown("from=2000-01-01T00:00")) == ids
    assert await shown("from=2999-01-01T00:00") == {}
    assert await shown("to=2000-01-01T00:00:00") == {}

    status, page = await console.get("/console/transactions?from=yesterday&status=bogus")
    assert status == 200
    assert "is not a date and time" in page and "status must be one of" in page
    assert set(listed(page)) == ids

    # The refused one's story shows the error and the connector's refusal.
    status, story = await console.get(f"/console/transactions/{refused.correlation_id}")
    assert "An error reply" in story and "<td>3001</td>" in story
    assert "BusinessError" in story


async def test_an_exhausted_transaction_shows_every_attempt_and_its_dead_letter(
    hub_factory: HubFactory, console_for
) -> None:
    hub: Hub = await hub_factory({"routes": [quick_route("E08000024", COUNCIL)]})
    console: Console = console_for(hub)
    await set_fault(hub, COUNCIL, "hang")
    reply = await view(hub)
    assert reply.error_number == 2005
    await audit_records(hub, "dispatch.dead_letter")
    status, story = await console.get(f"/console/transactions/{reply.correlation_id}")
    assert status == 200
    attempts = story.split('id="attempts"')[1].split('id="answer"')[0]
    assert "2 attempts" in attempts
    assert attempts.count("timeout: no answer within 0.5 s") == 2
    # Each attempt's own record says which it was and how long it waited, as measured.
    timeouts = await audit_records(hub, "dispatch.timeout", at_least=2)
    assert [r.detail["attempt"] for r in timeouts] == [1, 2]
    assert all(r.detail["seconds"] >= 0.5 for r in timeouts)
    shown = [f"{r.detail['seconds']:.3f} s" for r in timeouts]
    assert all(f'<td class="num">{t}' in attempts for t in shown), shown
    assert "retry in" in attempts and "dead-lettered" in attempts
    assert "Dead letter" in story and "<td>2005</td>" in story


async def test_an_unknown_transaction_is_a_404_page(console: Console) -> None:
    status, page = await console.get("/console/transactions/0123456789ABCDEF0123456789ABCDEF")
    assert status == 404
    assert "<h1>Not Found</h1>" in page and "0123456789ABCDEF" in page


async def test_pages_of_fifty_newest_first(hub: Hub, console: Console) -> None:
    acks = []
    for _ in range(3):
        ack = wire.read(await hub.post(view_submission()))
        acks.append(ack.correlation_id)
        await asyncio.sleep(0.01)
    _, page = await console.get("/console/transactions")
    assert list(listed(page)) == list(reversed(acks))
    assert "3 transactions, newest first" in page


def test_bodies_are_shown_as_text_indented_and_cut_when_large() -> None:
    from gateway.console import layout, xmlview

    hostile = b'<a><script>alert(1)</script><b x="&quot;"/></a>'
    shown = xmlview.pretty(hostile)
    assert shown is not None and shown.well_formed and not shown.truncated
    assert shown.text.startswith("<a>\n  <script>")
    page = layout.env.from_string("<pre>{{ s.text }}</pre>").render(s=shown)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page

    entity = xmlview.pretty(b'<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>')
    assert entity is not None and "root:" not in entity.text

    broken = xmlview.pretty(b"<a><unclosed></a>")
    assert broken is not None and not broken.well_formed and broken.text == "<a><unclosed></a>"

    large = xmlview.pretty(b"<a>" + b"<b>x</b>" * 20_000 + b"</a>")
    assert large is not None and large.truncated and len(large.text) == xmlview.MAX_SHOWN


async def test_a_time_an_offset_takes_out_of_range_is_a_filter_problem(
    hub: Hub, console: Console
) -> None:
    """Valid ISO 8601, but a year past 9999 or before 1 once in UTC: not a 500."""
    reply = await view(hub)
    for query in (
        "from=9999-12-31T23:59:59-01:00",
        "from=0001-01-01T00:00%2B01:00",
        "to=9999-12-31T23:59:59-01:00",
        "to=0001-01-01T00:00%2B01:00",
    ):
        status, page = await console.get(f"/console/transactions?{query}")
        assert status == 200, (query, page[:500])
        assert "is not a date and time" in page, query
        assert reply.correlation_id in listed(page), query  # the filter is left out, not the rows
