"""Refused requests: what a council's client sent that the hub refused before storing it."""

from __future__ import annotations

import html
import re

from tests.conftest import Hub
from tests.console.conftest import Console, audit_records
from tests.hub import wire
from tests.hub.test_dsp import VIEW, demo, view_submission

_ROW = re.compile(r'<tr data-key="refusal-(\d+)">(.*?)</tr>', re.S)


async def test_refusals_are_listed_newest_first_with_their_govtalk_error(
    hub: Hub, console: Console
) -> None:
    citizen, _ = demo()
    bad_password = wire.read(await hub.post(view_submission(password="not-the-password")))
    assert bad_password.error_number == 1046
    not_xml = wire.read(await hub.post(b"<GovTalkMessage><unclosed>"))
    assert not_xml.error_number == 1001
    accepted = wire.read(await hub.post(view_submission()))
    assert accepted.qualifier == "acknowledgement"
    await audit_records(hub, "dsp.refused", at_least=2)

    status, page = await console.get("/console/refusals")
    assert status == 200
    rows = [html.unescape(cells) for _, cells in _ROW.findall(page)]
    assert len(rows) == 2  # the accepted submission is a transaction, not a refusal
    newest, oldest = rows
    assert '<td class="num">1001</td>' in newest and "none given" in newest
    assert '<td class="num">1046</td>' in oldest
    assert f"<td>{citizen.user_id}</td>" in oldest and f"<td>{VIEW}</td>" in oldest
    # Linked from the transactions page, which does not list them.
    _, transactions = await console.get("/console/transactions")
    assert 'href="/console/refusals"' in transactions


async def test_no_refusals_says_so(console: Console) -> None:
    status, page = await console.get("/console/refusals")
    assert status == 200 and "No request has been refused." in page
