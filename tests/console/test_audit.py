"""Console audit: the chain's verification status, its latest signed checkpoint, the records by
event — and a record altered in the database reported as a broken chain, naming it."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import text

from gateway.audit.log import Signer
from gateway.console.audit import verify_trail
from gateway.pki.ca import Pki
from gateway.web.keys import AUDIT, DB
from tests.conftest import Hub, HubFactory
from tests.console.test_journeys import page, text_of
from tests.hub import wire
from tests.hub.test_dsp import view_submission


async def post_form(hub: Hub, path: str, form: dict[str, str]) -> tuple[int, str]:
    """A console form as a browser posts it: the CSRF cookie and field from the page before."""
    async with hub.session.get(hub.url + path) as resp:
        html = await resp.text()
        cookies = {name: morsel.value for name, morsel in resp.cookies.items()}
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token, html
    async with hub.session.post(
        hub.url + re.search(r'<form method="post" action="([^"]+)"', html).group(1),  # type: ignore[union-attr]
        data={"csrf_token": token.group(1), **form},
        headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())},
    ) as resp:
        return resp.status, await resp.text()


async def test_the_audit_page_reports_the_chain_and_names_an_altered_record(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    hub: Hub = await hub_factory({"pki": {"dir": str(tmp_path / "certs")}})
    reply = wire.read(await hub.post(view_submission()))
    assert reply.qualifier == "acknowledgement"
    wrong = wire.read(await hub.post(view_submission(password="not-the-password")))
    assert wrong.qualifier == "error"
    trail = hub.app[AUDIT]
    await trail.drained()
    pki = Pki.load(tmp_path / "certs")
    signed = await trail.checkpoint(Signer.from_files(pki.server_cert_path, pki.server_key_path))
    assert signed

    status, html = await page(hub, "/console/audit")
    assert status == 200
    shown = text_of(html)
    assert re.search(rf"Intact\. Verified up to record {signed} at ", shown), shown
    assert "1 signed checkpoints valid" in shown
    assert f"Latest checkpoint record {signed} at" in shown and "signature valid" in shown
    assert "dsp.received" in shown and "dsp.refused" in shown

    status, html = await page(hub, "/console/audit?event=dsp.refused")
    records = text_of(html)[text_of(html).index("Records, newest first") :]
    assert "dsp.refused" in records and "dsp.received" not in records
    assert "not-the-password" not in html

    # Someone with SQL access edits a record: the next verification names it.
    async with hub.app[DB].transaction() as session:
        await session.execute(text("UPDATE audit_records SET actor = 'someone-else' WHERE seq = 2"))
    status, html = await post_form(hub, "/console/audit", {})
    assert status == 200  # followed the 303 back to the page
    shown = text_of(html)
    assert "Broken at record 2: record 2 was altered" in shown, shown
    assert "Intact" not in shown

    verdict = await verify_trail(hub.app[DB], None, clock=lambda: hub.app[AUDIT]._clock())
    assert (verdict.ok, verdict.first_bad_seq) == (False, 2)
