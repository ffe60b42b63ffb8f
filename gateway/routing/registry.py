"""Connector instances: discovered through the `gateway.connectors` entry points, built by name."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from connectors.protocol import API_VERSION, Connector, ConnectorContext
from gateway.config import ConnectorConfig
from gateway.errors import ConfigError

GROUP = "gateway.connectors"


def available() -> dict[str, Any]:
    """Entry-point name → the (unloaded) entry point, for every installed connector."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


class ConnectorSet:
    """The running connector instances and the narrow context each one was given."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[Connector, ConnectorContext]] = {}

    @classmethod
    def build(
        cls, configs: Iterable[ConnectorConfig], data_dir: Path, base_dir: Path = Path(".")
    ) -> ConnectorSet:
        found = available()
        made = cls()
        for config in configs:
            ep = found.get(config.type)
            if ep is None:
                raise ConfigError(
                    f"connector '{config.name}': no installed connector type '{config.type}' "
                    f"(installed: {', '.join(sorted(found)) or 'none'})"
                )
            factory = ep.load()
            ctx = ConnectorContext(
                name=config.name,
                options={"base_dir": str(base_dir), **config.options},
                data_dir=data_dir / "connectors" / config.name,
                log=logging.getLogger(f"gateway.connector.{config.name}"),
            )
            ctx.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                connector = factory(ctx)
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"connector '{config.name}' ({config.type}): {exc}") from exc
            version = getattr(connector, "api_version", None)
            if version != API_VERSION:
                raise ConfigError(
                    f"connector '{config.name}' speaks connector API {version}, "
                    f"the hub speaks {API_VERSION}"
                )
            made._items[config.name] = (connector, ctx)
        return made

    def add(self, connector: Connector, ctx: ConnectorContext) -> None:
        self._items[ctx.name] = (connector, ctx)

    def get(self, name: str) -> tuple[Connector, ConnectorContext] | None:
        return self._items.get(name)

    async def start(self) -> None:
        for connector, _ctx in self._items.values():
            await connector.start()

    async def aclose(self) -> None:
        for connector, ctx in self._items.values():
            try:
                await connector.aclose()
            except Exception:
                ctx.log.exception("connector %s failed to close", ctx.name)
