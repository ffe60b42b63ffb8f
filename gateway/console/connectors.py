"""The connectors page: health, latency, errors, dead letters (replay) and fault profiles."""

from __future__ import annotations

from aiohttp import web

from gateway.console import layout


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/connectors", list_view)


async def list_view(request: web.Request) -> web.Response:
    return await layout.render(request, "connectors.html", section="connectors")
