"""The admin API for faults: the catalogue, set/replace/clear, and refusals that say what is wrong."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from gateway.clock import utcnow
from gateway.config import parse_config
from gateway.demo import citizens_list
from gateway.routing import fault_control
from gateway.store.engine import Database
from gateway.store.fault_models import ConnectorFault
from tests.conftest import Hub
from tests.faults.conftest import COUNCIL, clear_fault, final_answer, listed, set_fault
from tests.hub import wire

CATALOGUE = [
    "latency",
    "error_rate",
    "hang",
    "business_error",
    "malformed_reply",
    "schema_invalid_reply",
    "connection_reset",
    "connection_refused",
]


async def test_the_catalogue_describes_every_fault(council_hub: Hub) -> None:
    data = await listed(council_hub)
    assert data["faults"] == []
    entries = {entry["name"]: entry for entry in data["catalogue"]}
    assert list(entries) == CATALOGUE
    for entry in entries.values():
        assert entry["description"] and entry["outcome"]
        assert entry["applies_to"] == (
            ["http-forward"] if entry["name"].startswith("connection_") else ["*"]
        )
    assert [p["name"] for p in entries["latency"]["params"]] == ["ms", "jitter_ms", "distribution"]
    assert entries["latency"]["params"][2]["choices"] == ["uniform", "normal"]
    assert entries["business_error"]["params"][0]["default"] == 3001


async def test_set_fills_defaults_replaces_and_clears(council_hub: Hub) -> None:
    fault = await set_fault(council_hub, COUNCIL, "latency", ms=200)
    assert fault["connector"] == COUNCIL and fault["fault"] == "latency"
    assert fault["params"] == {"ms": 200, "jitter_ms": 0, "distribution": "uniform"}
    assert fault["set_at"]
    assert (await listed(council_hub))["faults"] == [fault]

    # One fault per connector: setting another replaces it.
    await set_fault(council_hub, COUNCIL, "business_error")
    [now] = (await listed(council_hub))["faults"]
    assert now["fault"] == "business_error"
    assert now["params"]["number"] == 3001 and "injected business_error" in now["params"]["text"]

    assert await clear_fault(council_hub, COUNCIL) == 204
    assert (await listed(council_hub))["faults"] == []
    assert await clear_fault(council_hub, COUNCIL) == 404


async def refused(hub: Hub, connector: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with hub.session.put(f"{hub.url}/admin/faults/{connector}", json=body) as resp:
        assert resp.content_type == "application/problem+json"
        return resp.status, await resp.json(content_type=None)


async def test_refusals_name_the_problem_and_store_nothing(council_hub: Hub) -> None:
    cases: list[tuple[str, Any, int, str]] = [
        (COUNCIL, {"fault": "slowness"}, 422, "unknown fault 'slowness'; the catalogue: latency,"),
        (COUNCIL, {"params": {}}, 422, "'fault' must name a fault from the catalogue"),
        (COUNCIL, {"fault": "latency"}, 422, "latency needs 'ms'"),
        (COUNCIL, {"fault": "latency", "params": {"ms": -5}}, 422, "from 0 to 600000; got -5"),
        (COUNCIL, {"fault": "latency", "params": {"ms": "fast"}}, 422, "'ms' must be a number"),
        (COUNCIL, {"fault": "latency", "params": {"ms": 1, "sigma": 2}}, 422, "not 'sigma'"),
        (
            COUNCIL,
            {"fault": "latency", "params": {"ms": 1, "distribution": "poisson"}},
            422,
            "'distribution' must be one of uniform, normal",
        ),
        (COUNCIL, {"fault": "error_rate", "params": {"rate": 1.5}}, 422, "from 0 to 1; got 1.5"),
        (COUNCIL, {"fault": "hang", "params": {"ms": 1}}, 422, "hang takes no parameters"),
        (
            COUNCIL,
            {"fault": "business_error", "params": {"number": 1046}},
            422,
            "'number' 1046 is not a back office error",
        ),
        (COUNCIL, {"fault": "business_error", "params": {"number": 3001.5}}, 422, "whole number"),
        (COUNCIL, {"fault": "hang", "parms": {}}, 422, "unknown member 'parms'"),
        (COUNCIL, ["hang"], 400, "the body must be a JSON object"),
        ("council-nowhere", {"fault": "hang"}, 404, "no connector named 'council-nowhere'"),
    ]
    for connector, body, status, detail in cases:
        got, problem = await refused(council_hub, connector, body)
        assert (got, detail in problem.get("detail", "")) == (status, True), (body, problem)
    assert (await listed(council_hub))["faults"] == []


async def test_a_fault_on_one_connector_leaves_the_others_alone(council_hub: Hub) -> None:
    await set_fault(council_hub, COUNCIL, "business_error")
    # The Sedgemoor demo citizen's council has its own connector, council-E07000188.
    citizen = citizens_list()[1]
    enrolment = citizen.enrolments[0]
    assert enrolment.organisation == "E07000188"
    envelope = wire.submission(
        "LA-CTAX-VIEW",
        enrolment.example_body(),
        user=citizen.user_id,
        password=citizen.password,
        keys=enrolment.keys,
        organisation=enrolment.organisation,
    )
    reply = await final_answer(council_hub, envelope)
    assert reply.qualifier == "response", reply.errors


async def test_admins_setting_a_connectors_first_fault_at_once_all_succeed(
    migrated_url: str,
) -> None:
    # Hubs sharing one database (or two admins at once): each insert of the first fault row can
    # meet another's; the later one replaces it rather than failing.
    connectors = parse_config({}).connectors
    hubs = [Database.open(migrated_url) for _ in range(4)]
    try:
        for db in hubs:  # connections made, so the writes meet
            async with db.transaction() as session:
                await session.execute(select(1))
        faults = ["hang", "malformed_reply", "schema_invalid_reply", "hang"]
        await asyncio.gather(
            *(
                fault_control.set_fault(db, connectors, COUNCIL, f, {}, now=utcnow(), via="api")
                for db, f in zip(hubs, faults, strict=True)
            )
        )
        async with hubs[0].read() as session:
            rows = (await session.scalars(select(ConnectorFault))).all()
        assert [r.connector for r in rows] == [COUNCIL] and rows[0].fault in faults
    finally:
        await asyncio.gather(*(db.aclose() for db in hubs))
