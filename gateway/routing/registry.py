"""Connector instances: discovered through the `gateway.connectors` entry points, built by name."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from connectors.protocol import API_VERSION, Connector, ConnectorContext, MailSender
from gateway.config import ConnectorConfig, RouteConfig
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

    def attach_mail(
        self,
        routes: Iterable[RouteConfig],
        make: Callable[[str, frozenset[str], ConnectorContext], MailSender],
    ) -> None:
        """Fill each connector's ctx.mail: it sends as the council its routes serve.

        The organisation is the one the connector's routes name; a connector serving several
        names one in its `mail_organisation` option, or gets no mail (ctx.mail stays None).
        make(organisation, classes served there, ctx) builds the sender.
        """
        served: dict[str, dict[str, set[str]]] = {}
        for route in routes:
            for name in filter(None, (route.connector, route.test_connector)):
                served.setdefault(name, {}).setdefault(route.organisation, set()).add(route.class_)
        for name, (_connector, ctx) in self._items.items():
            organisations = served.get(name, {})
            chosen = ctx.options.get("mail_organisation")
            if not isinstance(chosen, str) or chosen not in organisations:
                if len(organisations) != 1:
                    continue
                chosen = next(iter(organisations))
            ctx.mail = make(chosen, frozenset(organisations[chosen]), ctx)

    async def start(self) -> None:
        for connector, _ctx in self._items.values():
            await connector.start()

    async def aclose(self) -> None:
        for connector, ctx in self._items.values():
            try:
                await connector.aclose()
            except Exception:
                ctx.log.exception("connector %s failed to close", ctx.name)
