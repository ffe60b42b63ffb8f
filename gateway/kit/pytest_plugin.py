"""The hub's pytest plugin (entry point `pytest11: gateway`): fixtures for connector authors.

Installed with the hub, so it loads in every pytest session that can import the hub — the
hub's own tests included — and therefore defines nothing but its own `gateway_*` fixtures.
The hub fixtures are asyncio fixtures; without pytest-asyncio they say how to get it instead
of breaking the session.
"""

from __future__ import annotations

import pytest

from gateway.kit.hub import GatewayHub, HubRoute

NEEDS_ASYNCIO = (
    "the gateway_* fixtures need pytest-asyncio: pip install pytest-asyncio "
    "(and asyncio_mode = 'auto', or mark tests with @pytest.mark.asyncio)"
)

__all__ = ["GatewayHub", "HubRoute", "gateway_route"]


@pytest.fixture
def gateway_route() -> HubRoute:
    """Override in your conftest.py: the route to your connector, e.g.

    @pytest.fixture
    def gateway_route() -> HubRoute:
        return HubRoute(connector="my-connector", class_="LA-CTAX-VIEW", organisation="E06000047")
    """
    pytest.fail(
        "override the gateway_route fixture in your conftest.py: return HubRoute(connector=..., "
        "class_=..., organisation=...)",
        pytrace=False,
    )


try:
    from gateway.kit.fixtures import gateway_conformance, gateway_hub, gateway_hub_factory
except ModuleNotFoundError as exc:  # pragma: no cover - exercised only without pytest-asyncio
    if exc.name != "pytest_asyncio":
        raise

    @pytest.fixture(name="gateway_hub")
    def _hub_needs_asyncio() -> None:
        pytest.fail(NEEDS_ASYNCIO, pytrace=False)

    @pytest.fixture(name="gateway_hub_factory")
    def _factory_needs_asyncio() -> None:
        pytest.fail(NEEDS_ASYNCIO, pytrace=False)

    @pytest.fixture(name="gateway_conformance")
    def _conformance_needs_asyncio() -> None:
        pytest.fail(NEEDS_ASYNCIO, pytrace=False)

else:
    __all__ += ["gateway_conformance", "gateway_hub", "gateway_hub_factory"]
