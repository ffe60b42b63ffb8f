"""The journey connector: how a GW-CHANGE-OF-ADDRESS submission reaches the coordinator.

The DSP treats a joined-up transaction like any routed submission: a route (Class
GW-CHANGE-OF-ADDRESS, Organisation e.g. "GW") names a connector of type `journey`. The dispatcher
delivers the submission here; the first delivery starts the journey under the submission's own
CorrelationID, and every delivery answers Retry until the journey is final, then the
JourneyReport. So polls get acknowledgements while the legs run, then the report, with nothing in
the DSP engine special-cased by class. The route must allow many attempts (`retries`), since each
Retry is one.

The coordinator (database, routes, dispatcher) is bound by the hub's lifecycle
(gateway.web.journey_views.journey_services); until then deliveries are retried.
"""

from __future__ import annotations

from connectors.protocol import (
    API_VERSION,
    BusinessError,
    ConnectorContext,
    Failed,
    Outcome,
    Response,
    Retry,
    Transaction,
)
from gateway.govtalk.errors import GovTalkError
from gateway.journeys import report
from gateway.journeys.change_of_address import RequestRejected, from_xml
from gateway.journeys.coordinator import BY_CLASS, Citizen, Coordinator
from gateway.journeys.definition import JourneyRequestError
from gateway.store.journey_models import CHECKED_NOT_PROCESSED, FINAL_JOURNEY_STATES

APPLICATION = "Government Gateway joined-up transactions"
TIL_EXPLANATION = "Test in live: every step was checked; nothing was sent to any council"


class JourneyConnector:
    name = "journey"
    api_version = API_VERSION

    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx
        check = ctx.options.get("check_seconds", 1.0)
        if isinstance(check, bool) or not isinstance(check, int | float) or check <= 0:
            raise ValueError("option 'check_seconds' must be a number > 0")
        self.check_seconds = float(check)
        self.coordinator: Coordinator | None = None

    def bind(self, coordinator: Coordinator | None) -> None:
        self.coordinator = coordinator

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def handle(self, tx: Transaction, ctx: ConnectorContext) -> Outcome:
        coordinator = self.coordinator
        if coordinator is None:
            return Retry(self.check_seconds, "the journey coordinator is not running yet")
        definition = BY_CLASS.get(tx.class_)
        if definition is None:
            return Failed(f"no joined-up transaction is defined for class {tx.class_}")
        found = None if tx.test_in_live else await coordinator.journey(tx.correlation_id)
        if found is None:
            if not tx.identity.user_id:
                return _refused("a joined-up transaction needs a signed-on citizen", "/")
            citizen = Citizen(tx.identity.user_id, tx.identity.auth_method, tx.identity.auth_level)
            try:
                request = from_xml(tx.body)
                if tx.test_in_live:
                    # Every check a live journey makes, and the legs it would run; none is sent.
                    journey, legs = await coordinator.plan(
                        definition, request, citizen, tx.correlation_id, "dsp"
                    )
                    journey.state = CHECKED_NOT_PROCESSED
                    journey.explanation = TIL_EXPLANATION
                    return Response(report.as_xml(journey, legs))
                await coordinator.start(
                    definition, request, citizen, correlation_id=tx.correlation_id, channel="dsp"
                )
            except RequestRejected as exc:
                return BusinessError(exc.errors, APPLICATION)
            except JourneyRequestError as exc:
                return _refused(exc.text, _xml_location(exc.location))
            return Retry(self.check_seconds, "journey started")
        journey, legs = found
        if journey.state in FINAL_JOURNEY_STATES:
            return Response(report.as_xml(journey, legs))
        done = sum(1 for x in legs if x.compensates is None and x.state == "succeeded")
        main = sum(1 for x in legs if x.compensates is None)
        return Retry(self.check_seconds, f"journey in progress: {done} of {main} steps done")


def _refused(text: str, location: str) -> BusinessError:
    return BusinessError((GovTalkError.of(3001, text, locations=(location,)),), APPLICATION)


_XML_PATHS = {
    "/old_council": "/ChangeOfAddressRequest/OldCouncil",
    "/new_council/organisation": "/ChangeOfAddressRequest/NewCouncil/Organisation",
    "/move_date": "/ChangeOfAddressRequest/MoveDate",
}


def _xml_location(location: str) -> str:
    return _XML_PATHS.get(location, "/ChangeOfAddressRequest")
