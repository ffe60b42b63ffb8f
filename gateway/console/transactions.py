"""The transactions page: the live list with filters, and one transaction's full story."""

from __future__ import annotations

from aiohttp import web

from gateway.console import layout


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/transactions", list_view)


async def list_view(request: web.Request) -> web.Response:
    return await layout.render(request, "transactions.html", section="transactions", rows=[])
