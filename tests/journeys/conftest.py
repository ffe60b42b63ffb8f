"""A hub with the joined-up transactions wired in: the move legs' routes, the electoral
registration service, the journey connector, the coordinator and the JSON API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connectors.electoral.connector import ElectoralRegistrationConnector
from connectors.protocol import ConnectorContext
from connectors.simcouncil.connector import SimulatedCouncilConnector
from gateway.config import Config, parse_config
from gateway.journeys.connector import JourneyConnector
from gateway.routing.registry import ConnectorSet
from gateway.web.app import create_app
from tests.conftest import Hub, free_port

SEDGEMOOR, SUNDERLAND = "E07000188", "E08000024"
ER = "ER-E08000024"
FACTORIES: dict[str, Callable[[ConnectorContext], Any]] = {
    "simulated-council": SimulatedCouncilConnector,
    "electoral-registration": ElectoralRegistrationConnector,
    "journey": JourneyConnector,
}


def journey_config(data_dir: Path, certs: Path, er: dict[str, Any] | None = None) -> dict[str, Any]:
    """The configuration the lead adds to the demo: routes for the legs and the journey."""
    routes: list[dict[str, Any]] = [
        {"class": c, "organisation": org, "connector": f"council-{org}"}
        for org in (SEDGEMOOR, SUNDERLAND)
        for c in ("LA-CTAX-CLOSE", "LA-CTAX-REOPEN", "LA-CTAX-OPEN")
    ]
    routes += [
        {
            "class": "ER-NOTIFY-MOVE",
            "organisation": ER,
            "organisation_name": "Electoral Registration, Sunderland",
            "connector": "electoral-E08000024",
            "retries": 0,
        },
        {
            "class": "GW-CHANGE-OF-ADDRESS",
            "organisation": "GW",
            "organisation_name": "Government Gateway",
            "connector": "journeys",
            "retries": 100000,
            "keys_required": False,
        },
    ]
    return {
        "data_dir": str(data_dir),
        "pki": {"dir": str(certs)},
        "dispatcher": {"idle_poll_seconds": 0.05},
        "server": {"port": free_port(), "https_port": 0},
        "connectors": {
            "electoral-E08000024": {
                "type": "electoral-registration",
                "organisation": ER,
                **(er or {}),
            },
            "journeys": {"type": "journey", "check_seconds": 0.05},
        },
        "routes": routes,
    }


def build_connectors(config: Config) -> ConnectorSet:
    """ConnectorSet.build without entry points (the lead registers them in pyproject)."""
    made = ConnectorSet()
    for c in config.connectors:
        ctx = ConnectorContext(
            name=c.name,
            options={"base_dir": str(config.base_dir), **c.options},
            data_dir=config.data_dir / "connectors" / c.name,
            log=logging.getLogger(f"gateway.connector.{c.name}"),
        )
        ctx.data_dir.mkdir(parents=True, exist_ok=True)
        made.add(FACTORIES[c.type](ctx), ctx)
    return made


@dataclass
class JourneyHub(Hub):
    runner: web.AppRunner | None = None
    connectors: ConnectorSet | None = None

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def connector(self, name: str) -> Any:
        assert self.connectors is not None
        found = self.connectors.get(name)
        assert found is not None
        return found[0]


StartHub = Callable[..., Any]


@pytest.fixture
async def start_hub(tmp_path: Path) -> AsyncIterator[StartHub]:
    hubs: list[JourneyHub] = []
    session = aiohttp.ClientSession()

    async def start(
        *, er: dict[str, Any] | None = None, data_dir: Path | None = None
    ) -> JourneyHub:
        raw = journey_config(data_dir or tmp_path / "var", tmp_path / "certs", er)
        config = parse_config(raw)
        connectors = build_connectors(config)
        app = create_app(config, connectors=connectors)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", config.server.port).start()
        hub = JourneyHub(
            f"http://127.0.0.1:{config.server.port}",
            app,
            session,
            config,
            runner=runner,
            connectors=connectors,
        )
        hubs.append(hub)
        return hub

    yield start
    for hub in reversed(hubs):
        await hub.stop()
    await session.close()
