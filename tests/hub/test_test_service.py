"""GatewayTest=1: a route may send test submissions to a back office of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.protocol import ConnectorContext
from gateway.config import parse_config
from gateway.errors import ConfigError
from tests.conftest import HubFactory
from tests.hub import wire
from tests.hub.faulty import Misbehaving, connector_set, route
from tests.hub.test_dsp import acknowledged, poll_until_final

CLASS = "TEST-SERVICE"
BODY = '<Ping xmlns="urn:test:ping">hello</Ping>'


def config(**route_extra: Any) -> dict[str, Any]:
    """A live and a trial back office, one route sending test submissions to the trial one."""
    return {
        "demo": False,
        "connectors": {"live": {"type": "test"}, "trial": {"type": "test"}},
        "routes": [route(CLASS, "live", test_connector="trial", **route_extra)],
    }


async def test_test_submissions_go_to_the_routes_test_connector(
    hub_factory: HubFactory, tmp_path: Path
) -> None:
    live, trial = Misbehaving("live", "answer"), Misbehaving("trial", "answer")
    hub = await hub_factory(config(mode="sync"), connectors=connector_set(tmp_path, live, trial))
    for test in (True, False):
        xml = wire.submission(CLASS, BODY, organisation="TESTORG", gateway_test=test)
        reply = wire.read(await hub.post(xml))
        assert reply.qualifier == "response", reply.errors
    # Queued (async) as well as answered at once (sync): the stored row names the test back office.
    xml = wire.submission(CLASS, BODY, organisation="TESTORG", gateway_test=True)
    hub_async = await hub_factory(config(), connectors=connector_set(tmp_path, live, trial))
    answered = await poll_until_final(hub_async, CLASS, await acknowledged(hub_async, xml))
    assert answered.qualifier == "response", answered.errors
    assert [tx.gateway_test for tx in trial.calls] == [True, True]
    assert [tx.gateway_test for tx in live.calls] == [False]


def test_a_test_connector_must_be_defined() -> None:
    with pytest.raises(ConfigError, match="'nowhere', which is not defined"):
        parse_config(
            {
                "connectors": {"live": {"type": "test"}},
                "routes": [route(CLASS, "live", test_connector="nowhere")],
            }
        )


def test_the_test_back_office_sends_mail_as_the_routes_council(tmp_path: Path) -> None:
    live, trial = Misbehaving("live", "answer"), Misbehaving("trial", "answer")
    connectors = connector_set(tmp_path, live, trial)
    made: list[tuple[str, frozenset[str], str]] = []

    def sender(organisation: str, classes: frozenset[str], ctx: ConnectorContext) -> Any:
        made.append((organisation, classes, ctx.name))
        return organisation

    routes = parse_config(config()).routes
    connectors.attach_mail(routes, sender)
    assert sorted(made) == [
        ("TESTORG", frozenset({CLASS}), "live"),
        ("TESTORG", frozenset({CLASS}), "trial"),
    ]
