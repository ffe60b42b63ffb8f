"""BVPI 157 against a real hub: View Council Tax transactions made over the DSP endpoint show up
in `gateway report bvpi157` (the real command, in its own process, on the hub's own database) and
in GET /admin/reports/bvpi157."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.store import submissions as store
from gateway.web.keys import DB
from tests.conftest import ROOT, Hub
from tests.faults.test_cli import config_for
from tests.hub import wire
from tests.hub.rows import submission
from tests.hub.test_dsp import acknowledged, demo, poll_until_final, view_submission

VIEW = "LA-CTAX-VIEW"
# The demo councils; not the electoral registration service (counted as Sunderland's) nor the
# hub's own joined-up service (no council's).
ROUTED = ["E07000188", "E08000024"]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


async def gateway(config: Path, *args: str) -> Run:
    # A process of its own, as an operator runs it: the in-process hub's log lines (on this
    # process's stdout) cannot mix with the report, and GATEWAY_DATABASE_URL is inherited.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "--config",
        str(config),
        "report",
        "bvpi157",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def cli_json(config: Path, *args: str) -> dict[str, Any]:
    result = await gateway(config, "--json", *args)
    assert result.code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def council(data: dict[str, Any], code: str) -> dict[str, Any]:
    [found] = [c for c in data["councils"] if c["code"] == code]
    return found


def volumes(data: dict[str, Any], code: str) -> dict[str, int]:
    return {t["code"]: t["volume"] for t in council(data, code)["types"]}


async def test_cli_counts_view_council_tax_transactions_made_through_the_hub(
    hub: Hub, tmp_path: Path
) -> None:
    config = config_for(hub, tmp_path)
    _, enrolment = demo()
    code = enrolment.organisation
    before = await cli_json(config)
    assert [c["code"] for c in before["councils"]] == ROUTED
    assert "purged" in before["note"]
    mine = council(before, code)
    assert (mine["enabled"], mine["of"], mine["percentage"]) == (3, 10, 30.0)
    enabled = {t["code"] for t in mine["types"] if t["enabled"]}
    assert enabled == {"providing-information", "collecting-revenue", "regulation"}

    first = await acknowledged(hub)
    await acknowledged(hub)
    # Tests are stored too, but are not citizens' transactions: neither counts.
    await acknowledged(hub, view_submission(gateway_test=True))
    citizen, _ = demo()
    til = wire.submission(
        f"{VIEW}-TIL",
        enrolment.example_body(),
        user=citizen.user_id,
        password=citizen.password,
        keys=enrolment.keys,
        organisation=code,
    )
    await acknowledged(hub, til)
    after = await cli_json(config)
    assert volumes(after, code)["providing-information"] == (
        volumes(before, code)["providing-information"] + 2
    )
    assert volumes(after, code)["collecting-revenue"] == volumes(before, code)["collecting-revenue"]
    assert council(after, code)["total_volume"] == council(before, code)["total_volume"] + 2
    others = [c for c in ROUTED if c != code]
    assert [volumes(after, c) for c in others] == [volumes(before, c) for c in others]

    # Answered and then deleted by the client: still stored until purged, so still counted.
    answered = await poll_until_final(hub, VIEW, first)
    assert answered.qualifier == "response", answered.errors
    deleted = wire.read(await hub.post(wire.delete(VIEW, first)))
    assert deleted.function == "delete"
    again = await cli_json(config)
    assert volumes(again, code) == volumes(after, code)

    table = await gateway(config)
    assert table.code == 0, table.stderr
    assert re.search(
        rf"{code}  \S.*: 3 of 10 types e-enabled \(30%\), "
        rf"{council(after, code)['total_volume']} transaction\(s\)",
        table.stdout,
    ), table.stdout
    [section] = [part for part in table.stdout.split("\n\n") if part.startswith(f"{code}  ")]
    row = re.search(r"^  Providing information +yes +(\d+)  LA-CTAX-VIEW$", section, re.M)
    assert row and int(row.group(1)) == volumes(after, code)["providing-information"], table.stdout
    assert "Paying for goods and services" in table.stdout and "purged" in table.stdout


async def test_cli_council_filter_and_unknown_council(hub: Hub, tmp_path: Path) -> None:
    config = config_for(hub, tmp_path)
    await acknowledged(hub)
    _, enrolment = demo()
    [only] = (await cli_json(config, "--council", enrolment.organisation))["councils"]
    assert only["code"] == enrolment.organisation and only["types"][0]["volume"] == 1
    [other] = (await cli_json(config, "--council", "E07000188"))["councils"]
    assert other["code"] == "E07000188" and other["total_volume"] == 0

    table = await gateway(config, "--council", "E07000188")
    assert table.code == 0, table.stderr
    assert "Sedgemoor District Council" in table.stdout and "E08000024" not in table.stdout

    refused = await gateway(config, "--council", "E99999999", "--json")
    assert refused.code != 0 and refused.stdout == ""
    assert "unknown council 'E99999999'" in refused.stderr
    assert "E08000024 (Sunderland City Council)" in refused.stderr


async def test_a_service_under_an_organisation_code_of_its_own_counts_for_its_council(
    hub: Hub, tmp_path: Path
) -> None:
    # A notification the electoral registration service (ER-E08000024) received, and one of
    # the hub's own change-of-address service (GW): the first is Sunderland's, the second no one's.
    for n, (organisation, class_) in enumerate(
        [("ER-E08000024", "ER-NOTIFY-MOVE"), ("GW", "GW-CHANGE-OF-ADDRESS")]
    ):
        row = submission(f"{n:032X}", organisation=organisation, class_=class_, base_class=class_)
        await store.insert(hub.app[DB], row)
    config = config_for(hub, tmp_path)
    [sunderland] = (await cli_json(config, "--council", "E08000024"))["councils"]
    regulation = {t["code"]: t for t in sunderland["types"]}["regulation"]
    assert regulation == {
        "code": "regulation",
        "label": "Regulation (such as issuing licences)",
        "enabled": True,
        "classes": ["ER-NOTIFY-MOVE"],
        "volume": 1,
    }
    everyone = await cli_json(config)
    assert [c["code"] for c in everyone["councils"]] == ROUTED
    assert sum(c["total_volume"] for c in everyone["councils"]) == 1
    refused = await gateway(config, "--council", "GW", "--json")
    assert refused.code != 0 and "unknown council 'GW'" in refused.stderr


async def get_report(hub: Hub, query: str = "") -> tuple[int, str, dict[str, Any]]:
    async with hub.session.get(f"{hub.url}/admin/reports/bvpi157{query}") as resp:
        return resp.status, resp.content_type, await resp.json(content_type=None)


async def test_admin_endpoint_reports_the_same(hub: Hub, tmp_path: Path) -> None:
    _, enrolment = demo()
    code = enrolment.organisation
    status, content_type, before = await get_report(hub)
    assert (status, content_type) == (200, "application/json")
    assert [c["code"] for c in before["councils"]] == ROUTED
    # Information and revenue through its council tax services, regulation through its
    # electoral registration service's own organisation code.
    assert council(before, code)["percentage"] == 30.0
    assert [t["code"] for t in before["types"]][:2] == [
        "providing-information",
        "collecting-revenue",
    ]

    await acknowledged(hub)
    _, _, after = await get_report(hub)
    assert volumes(after, code)["providing-information"] == (
        volumes(before, code)["providing-information"] + 1
    )
    cli = await cli_json(config_for(hub, tmp_path))
    assert cli["councils"] == after["councils"]

    status, _, one = await get_report(hub, f"?council={code}")
    assert status == 200 and [c["code"] for c in one["councils"]] == [code]

    status, content_type, problem = await get_report(hub, "?council=E99999999")
    assert (status, content_type) == (404, "application/problem+json")
    assert problem["council"] == "E99999999" and "E08000024" in problem["detail"]
