"""Hubs whose View Council Tax route fails fast, and the calls the fault tests share."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import Hub, HubFactory
from tests.hub import wire
from tests.hub.test_dsp import VIEW, acknowledged, poll_until_final, view_submission

COUNCIL = "council-E08000024"
ROUTE_TIMEOUT = 0.5
# The dispatcher re-reads the faults table this often; a change made elsewhere (the CLI) needs it.
CACHE_SECONDS = 1.0


def quick_route(organisation: str, connector: str, **extra: Any) -> dict[str, Any]:
    """A View Council Tax route that gives up fast: one retry, short timeout and backoff."""
    return {
        "class": VIEW,
        "organisation": organisation,
        "connector": connector,
        "timeout": ROUTE_TIMEOUT,
        "retries": 1,
        "backoff": 0.05,
        **extra,
    }


@pytest.fixture
async def council_hub(hub_factory: HubFactory) -> Hub:
    """The demo hub, its Sunderland View Council Tax route made quick to fail."""
    hub: Hub = await hub_factory({"routes": [quick_route("E08000024", COUNCIL)]})
    return hub


async def final_answer(
    hub: Hub, envelope: str, class_: str = VIEW, limit: float = 10
) -> wire.Reply:
    """Submit, then poll as a client would until the answer is final."""
    return await poll_until_final(hub, class_, await acknowledged(hub, envelope), seconds=limit)


async def view(hub: Hub) -> wire.Reply:
    """The Sunderland demo citizen views their Council Tax account."""
    return await final_answer(hub, view_submission())


async def timed_view(hub: Hub) -> tuple[wire.Reply, float]:
    started = time.monotonic()
    reply = await view(hub)
    return reply, time.monotonic() - started


async def put_fault(
    hub: Hub, connector: str, fault: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    body = {"fault": fault, "params": params}
    async with hub.session.put(f"{hub.url}/admin/faults/{connector}", json=body) as resp:
        return resp.status, await resp.json(content_type=None)


async def set_fault(hub: Hub, connector: str, fault: str, **params: Any) -> dict[str, Any]:
    status, body = await put_fault(hub, connector, fault, **params)
    assert status == 200, body
    return body


async def clear_fault(hub: Hub, connector: str) -> int:
    async with hub.session.delete(f"{hub.url}/admin/faults/{connector}") as resp:
        return resp.status


async def listed(hub: Hub) -> dict[str, Any]:
    async with hub.session.get(f"{hub.url}/admin/faults") as resp:
        assert resp.status == 200
        data: dict[str, Any] = await resp.json()
        return data
