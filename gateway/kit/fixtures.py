"""The hub's pytest fixtures for connector authors (registered by gateway.kit.pytest_plugin).

gateway_route        override it: the HubRoute to the connector under test
gateway_hub          a real hub, started in the test's event loop, with that route
gateway_hub_factory  start more hubs: `await gateway_hub_factory(route)`, all stopped after
gateway_conformance  `await gateway_conformance()`: the conformance suite's Report
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest_asyncio

from gateway.kit.conformance import resolve_samples, run_conformance
from gateway.kit.hub import GatewayHub, HubRoute, start_hub
from gateway.kit.results import Report
from gateway.kit.subject import Target

HubFactory = Callable[[HubRoute], Awaitable[GatewayHub]]
Conformance = Callable[..., Awaitable[Report]]


@pytest_asyncio.fixture
async def gateway_hub_factory(tmp_path: Path) -> AsyncIterator[HubFactory]:
    """Start real hubs, each with its own database and PKI under tmp_path."""
    async with contextlib.AsyncExitStack() as stack:
        started = 0

        async def start(route: HubRoute) -> GatewayHub:
            nonlocal started
            started += 1
            return await stack.enter_async_context(
                start_hub(route, tmp_path / f"gateway-hub-{started}")
            )

        yield start


@pytest_asyncio.fixture
async def gateway_hub(gateway_hub_factory: HubFactory, gateway_route: HubRoute) -> GatewayHub:
    """A real hub with the connector under test routed as `gateway_route` says."""
    return await gateway_hub_factory(gateway_route)


@pytest_asyncio.fixture
async def gateway_conformance(gateway_route: HubRoute, tmp_path: Path) -> Conformance:
    """Run the conformance suite against gateway_route's connector, with its package's samples.

    The route's class, organisation and options apply unless given; samples names another
    conformance.toml; deadline (seconds) overrides the samples' route timeout.
    """

    async def run(
        samples: Path | None = None,
        *,
        class_: str | None = None,
        organisation: str | None = None,
        deadline: float | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Report:
        target = Target(connector=gateway_route.connector)
        chosen = resolve_samples(target, samples).with_overrides(
            class_=class_ or gateway_route.class_,
            organisation=organisation or gateway_route.organisation,
            timeout=deadline,
            options={**gateway_route.options, **(options or {})},
        )
        return await run_conformance(target, chosen, workdir=tmp_path / "conformance")

    return run
