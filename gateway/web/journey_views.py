"""The joined-up transactions JSON API and the journey coordinator's lifecycle.

    POST /api/journeys/change-of-address    citizen  → 202 {id, status, links}
    GET  /api/journeys/{id}                 citizen  → 200 the journey, per leg (another's: 404)

Citizens authenticate as for the identity API: an SSO access token with the `gateway` scope
(a council portal acting for its signed-in citizen), a client certificate, or HTTP Basic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.errors import ProblemError
from gateway.journeys import report
from gateway.journeys.change_of_address import CLASS as CHANGE_OF_ADDRESS_CLASS
from gateway.journeys.change_of_address import DEFINITION, normalise
from gateway.journeys.connector import JourneyConnector
from gateway.journeys.coordinator import Citizen, Coordinator
from gateway.journeys.definition import JourneyRequestError
from gateway.web.background import stop_task
from gateway.web.bodies import json_body
from gateway.web.identity_views import citizen_from_request, signed_in
from gateway.web.keys import CONNECTORS, DB, DISPATCHER, ROUTES

COORDINATOR = web.AppKey("journey_coordinator", Coordinator)
MAX_REQUEST = 64 * 1024


def add_journey_routes(app: web.Application) -> None:
    app.router.add_post("/api/journeys/change-of-address", start_view)
    app.router.add_get("/api/journeys/{id}", journey_view)


async def journey_services(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx, after the dispatcher: the coordinator, bound to the journey connectors."""
    from gateway.web.app import CLOCK  # here, not at the top: app.py imports the views

    routes = app[ROUTES]
    interval = min(
        (
            found[0].check_seconds
            for route in routes
            if (found := app[CONNECTORS].get(route.connector)) is not None
            and isinstance(found[0], JourneyConnector)
        ),
        default=0.5,
    )
    coordinator = Coordinator(
        app[DB], routes, app[DISPATCHER], app[CLOCK], interval=min(interval, 0.5)
    )
    app[COORDINATOR] = coordinator
    bound: list[JourneyConnector] = []
    for route in routes:
        found = app[CONNECTORS].get(route.connector)
        if found is not None and isinstance(found[0], JourneyConnector):
            found[0].bind(coordinator)
            bound.append(found[0])
    task = asyncio.create_task(coordinator.run(), name="journeys")
    yield
    for connector in bound:
        connector.bind(None)
    await stop_task(task, coordinator.stop)


async def start_view(request: web.Request) -> web.Response:
    citizen = await signed_in(request)
    if request.content_length is not None and request.content_length > MAX_REQUEST:
        raise ProblemError(413, "Request too large")
    data = await json_body(request)
    try:
        normalised = normalise(data)
    except JourneyRequestError as exc:
        raise ProblemError(
            422, "Invalid journey request", exc.text, location=exc.location
        ) from None
    coordinator = request.app[COORDINATOR]
    try:
        cid = await coordinator.start(
            DEFINITION, normalised, Citizen(citizen.user_id, citizen.method, citizen.level)
        )
    except JourneyRequestError as exc:
        raise ProblemError(422, "Journey refused", exc.text, location=exc.location) from None
    found = await coordinator.journey(cid)
    assert found is not None
    body = report.as_json(*found)
    body["links"] = {"self": f"/api/journeys/{cid}", "dsp_class": CHANGE_OF_ADDRESS_CLASS}
    return web.json_response(body, status=202, headers={"Location": f"/api/journeys/{cid}"})


async def journey_view(request: web.Request) -> web.Response:
    user_id = await citizen_from_request(request)
    found = await request.app[COORDINATOR].journey(request.match_info["id"])
    if found is None or found[0].sender_id != user_id:
        raise ProblemError(404, "Not found", "no journey with this id for you")
    return web.json_response(report.as_json(*found))
