"""The hub's pytest plugin, as the hub's own tests get it: through the `pytest11` entry point.

This module overrides `gateway_route` the way a supplier's conftest.py does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import gateway.kit.pytest_plugin
from gateway.kit.fixtures import Conformance, HubFactory
from gateway.kit.hub import GatewayHub, HubRoute
from gateway.kit.results import Status
from tests.kit.faulty import FaultyConnector
from tests.kit.support import FAULTY, NS, view, write_samples

CLASS, ORGANISATION = "LA-CTAX-VIEW", "E06000047"


@pytest.fixture
def gateway_route() -> HubRoute:
    return HubRoute(connector=FAULTY, class_=CLASS, organisation=ORGANISATION, timeout=2)


def test_the_plugin_is_loaded_by_its_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.get_plugin("gateway") is gateway.kit.pytest_plugin


async def test_gateway_hub_routes_submissions_to_the_connector(gateway_hub: GatewayHub) -> None:
    answer = await gateway_hub.submit(view("10000002"), keys={"CTaxAccountRef": "10000002"})
    assert answer.ok, answer.errors
    reply = answer.element()
    assert reply is not None and reply.findtext(f"{{{NS}}}Name") == "B. Householder"
    # Submitted, polled until answered, then deleted: the protocol, over HTTP.
    functions = [x.reply.message.qualifier for x in answer.cycle.exchanges]
    assert functions[0] == "acknowledgement" and functions[-2:] == ["response", "response"]
    connector = gateway_hub.connector
    assert isinstance(connector, FaultyConnector) and connector.deliveries == 1

    refused = await gateway_hub.submit(view("99999999"))
    assert refused.qualifier == "error" and refused.numbers == (3001,)
    assert refused.locations == ("/CTaxViewRequest/AccountReference",)


async def test_routes_take_options_deadlines_and_modes(gateway_hub_factory: HubFactory) -> None:
    slow = await gateway_hub_factory(
        HubRoute(FAULTY, CLASS, ORGANISATION, options={"faults": ["slow"]}, timeout=0.3)
    )
    late = await slow.submit(view("10000003"))
    assert late.numbers == (2005,)
    sync = await gateway_hub_factory(HubRoute(FAULTY, CLASS, ORGANISATION, mode="sync"))
    answer = await sync.submit(view("10000001"))
    assert answer.ok
    # A synchronous route answers the submission itself: no acknowledgement, no polls.
    assert answer.cycle.exchanges[0].reply.message.qualifier == "response"
    assert slow.url != sync.url


async def test_gateway_conformance_runs_the_suite_for_the_route(
    gateway_conformance: Conformance, tmp_path: Path
) -> None:
    report = await gateway_conformance(write_samples(tmp_path / "samples"))
    assert report.ok and report.count(Status.PASS) == 8
    broken = await gateway_conformance(
        write_samples(tmp_path / "again"), options={"faults": ["no-locations"]}
    )
    assert broken.failed_ids == ["business-error"]
