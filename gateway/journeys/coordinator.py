"""The coordinator: starts journeys and advances them as their legs' submissions are answered.

Every leg is a real routed submission (a row in `submissions`, its own CorrelationID) that the
dispatcher delivers like any other. The coordinator only reads answers and moves state in the
database, each step guarded by the state it read, so it is idempotent, several processes may run
it, and a restarted hub carries on where the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from connectors.protocol import Identity
from gateway.dsp.engine import new_submission
from gateway.govtalk import replies
from gateway.identity import citizens
from gateway.journeys import records
from gateway.journeys.change_of_address import ACCOUNT_KEY
from gateway.journeys.change_of_address import DEFINITION as CHANGE_OF_ADDRESS
from gateway.journeys.definition import JourneyDefinition, JourneyRequestError, LegSpec
from gateway.routing.dispatcher import Dispatcher
from gateway.routing.outcomes import errors_from_json
from gateway.routing.table import RouteTable
from gateway.store.engine import Database
from gateway.store.journey_models import (
    ACTIVE_LEG_STATES,
    COMPENSATED,
    COMPLETED,
    COMPLETED_WITH_COMPENSATION,
    FAILED,
    IN_PROGRESS,
    LEG_FAILED,
    PENDING,
    SKIPPED,
    SUBMITTED,
    SUCCEEDED,
    Journey,
    JourneyLeg,
)
from gateway.store.models import ERROR, PENDING_STATES, Submission

log = structlog.get_logger("gateway.journeys")

DEFINITIONS: dict[str, JourneyDefinition] = {CHANGE_OF_ADDRESS.kind: CHANGE_OF_ADDRESS}
BY_CLASS: dict[str, JourneyDefinition] = {d.class_: d for d in DEFINITIONS.values()}
COMPENSATION_BASE = 100


@dataclass(frozen=True, slots=True)
class Citizen:
    """Who asked, as the DSP or the JSON API authenticated them."""

    user_id: str
    auth_method: str
    auth_level: float = 1


class Coordinator:
    def __init__(
        self,
        db: Database,
        routes: RouteTable,
        dispatcher: Dispatcher,
        clock: Callable[[], datetime],
        *,
        interval: float = 0.5,
    ) -> None:
        self._db = db
        self._routes = routes
        self._dispatcher = dispatcher
        self._clock = clock
        self._interval = interval
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def journey(self, correlation_id: str) -> tuple[Journey, list[JourneyLeg]] | None:
        return await records.get(self._db, correlation_id)

    # -- starting ---------------------------------------------------------------------------

    async def start(
        self,
        definition: JourneyDefinition,
        request: dict[str, Any],
        citizen: Citizen,
        *,
        correlation_id: str | None = None,
        channel: str = "api",
    ) -> str:
        """Create a journey (idempotent on correlation_id); JourneyRequestError when the citizen
        may not make it. The request is already normalised."""
        journey, legs = await self.plan(definition, request, citizen, correlation_id, channel)
        if await records.create(self._db, journey, legs):
            log.info("journey.started", correlation_id=journey.correlation_id, kind=definition.kind)
        self.wake()
        return journey.correlation_id

    async def plan(
        self,
        definition: JourneyDefinition,
        request: dict[str, Any],
        citizen: Citizen,
        correlation_id: str | None = None,
        channel: str = "api",
    ) -> tuple[Journey, list[JourneyLeg]]:
        """The journey and its legs as they would start, checked but not stored (also what a
        test-in-live submission is answered with); JourneyRequestError as for start."""
        await self._check(definition, request, citizen)
        cid = correlation_id or replies.new_correlation_id()
        now = self._clock()
        journey = Journey(
            correlation_id=cid,
            kind=definition.kind,
            class_=definition.class_,
            sender_id=citizen.user_id,
            auth_method=citizen.auth_method,
            auth_level=citizen.auth_level,
            channel=channel,
            request=request,
            state=IN_PROGRESS,
            created_at=now,
            updated_at=now,
        )
        legs = [
            JourneyLeg(
                journey_id=cid,
                position=n,
                name=spec.name,
                class_=spec.class_,
                organisation=spec.organisation(request),
                policy=spec.policy,
                max_attempts=max(1, spec.max_attempts if spec.policy == "retry" else 1),
                state=PENDING,
                attempts=0,
                history=[],
                updated_at=now,
            )
            for n, spec in enumerate(definition.legs)
        ]
        return journey, legs

    async def _check(
        self, definition: JourneyDefinition, request: Mapping[str, Any], citizen: Citizen
    ) -> None:
        """Every leg must be routed, and the citizen enrolled for the account a leg acts on."""
        for n, spec in enumerate(definition.legs):
            organisation = spec.organisation(request)
            if self._routes.get(spec.class_, organisation) is None:
                raise JourneyRequestError(
                    f"step {n + 1} ({spec.description or spec.name}): {organisation} does not "
                    f"offer {spec.class_} through this hub",
                )
            if spec.keys is not None:
                keys = spec.keys(request)
                enrolled = await citizens.enrolments(self._db, citizen.user_id)
                if not any(
                    e.organisation == organisation and dict(e.keys) == keys for e in enrolled
                ):
                    shown = ", ".join(f"{k}={v}" for k, v in sorted(keys.items()))
                    raise JourneyRequestError(
                        f"{citizen.user_id} is not enrolled at {organisation} with {shown}",
                        "/old_council" if ACCOUNT_KEY in keys else "/",
                    )

    # -- the background loop ------------------------------------------------------------------

    def stop(self) -> None:
        """End run() after its current pass (see gateway.web.background)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                for cid in await records.in_progress(self._db):
                    await self.advance(cid)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("journey.advance_failed")
            if self._stopping:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)

    async def advance(self, correlation_id: str) -> None:
        """Take every step that is possible now (each one committed on its own)."""
        for _ in range(32):
            if not await self._step(correlation_id):
                return

    async def _step(self, correlation_id: str) -> bool:
        found = await records.get(self._db, correlation_id)
        if found is None:
            return False
        journey, legs = found
        if journey.state != IN_PROGRESS:
            return False
        definition = DEFINITIONS.get(journey.kind)
        if definition is None:
            return await self._finish(journey, FAILED, f"unknown journey kind {journey.kind}")
        active = next((leg for leg in legs if leg.state in ACTIVE_LEG_STATES), None)
        if active is None:
            return await self._conclude(journey, legs)
        if active.state == PENDING:
            return await self._submit(journey, definition, legs, active)
        return await self._collect(journey, legs, active)

    # -- one leg --------------------------------------------------------------------------------

    def _spec(self, definition: JourneyDefinition, legs: list[JourneyLeg], leg: JourneyLeg) -> Any:
        if leg.compensates is None:
            return definition.leg(leg.name)
        original = next(x for x in legs if x.position == leg.compensates)
        return definition.leg(original.name)

    async def _submit(
        self,
        journey: Journey,
        definition: JourneyDefinition,
        legs: list[JourneyLeg],
        leg: JourneyLeg,
    ) -> bool:
        spec: LegSpec = self._spec(definition, legs, leg)
        now = self._clock()
        route = self._routes.get(leg.class_, leg.organisation)
        if route is None:
            return await self._failed(
                journey, legs, leg, PENDING, f"no route for {leg.class_} at {leg.organisation}"
            )
        # A journey asked of the test service runs its legs there too, as if the client had
        # sent each with GatewayTest=1: a route's test back office, and out of the counts.
        test = await self._on_test_service(journey)
        route = route.serving(test)
        results = {
            x.name: x.response_body for x in legs if x.state == SUCCEEDED and x.response_body
        }
        try:
            if leg.compensates is None:
                body = spec.body(journey.request, results)
            else:
                assert spec.compensation is not None
                body = spec.compensation.body(journey.request, results)
        except Exception as exc:
            return await self._failed(
                journey, legs, leg, PENDING, f"the request for this step could not be built: {exc}"
            )
        identity = Identity(journey.sender_id, journey.auth_method, journey.auth_level)
        submission = new_submission(
            route,
            correlation_id=replies.new_correlation_id(),
            class_=leg.class_,
            base_class=leg.class_,
            identity=identity,
            keys=spec.keys(journey.request) if spec.keys else {},
            request_body=body,
            now=now,
            transaction_id=journey.correlation_id[:32],
            gateway_test=test,
        )
        if not await records.submit_leg(self._db, leg, submission, now):
            return False
        log.info(
            "journey.leg_submitted",
            correlation_id=journey.correlation_id,
            leg=leg.name,
            leg_correlation_id=submission.correlation_id,
            attempt=leg.attempts + 1,
        )
        self._dispatcher.wake()
        return True

    async def _collect(self, journey: Journey, legs: list[JourneyLeg], leg: JourneyLeg) -> bool:
        record = await self._submission(leg.correlation_id) if leg.correlation_id else None
        if record is not None and record.state in PENDING_STATES:
            return False
        definition = DEFINITIONS[journey.kind]
        spec: LegSpec = self._spec(definition, legs, leg)
        if record is not None and record.state != ERROR and record.response_body is not None:
            summary = spec.summary if leg.compensates is None else spec.compensation.summary  # type: ignore[union-attr]
            try:
                outcome = summary(record.response_body)
            except Exception:
                outcome = "succeeded"
            return await self._succeeded(journey, legs, leg, outcome, record.response_body)
        if record is None:
            error = f"the submission {leg.correlation_id} is no longer stored"
        else:
            errors = errors_from_json(record.errors or [])
            error = "; ".join(f"{e.number} {e.text}" for e in errors) or "no answer recorded"
        history = [*leg.history, {"correlation_id": leg.correlation_id, "error": error}]
        if leg.attempts < leg.max_attempts:
            log.info("journey.leg_retry", correlation_id=journey.correlation_id, leg=leg.name)
            return await records.step(
                self._db,
                journey.correlation_id,
                now=self._clock(),
                legs=[(leg, SUBMITTED, {"state": PENDING, "history": history, "error": error})],
            )
        return await self._failed(journey, legs, leg, SUBMITTED, error, history=history)

    async def _on_test_service(self, journey: Journey) -> bool:
        """Whether the submission that started the journey was GatewayTest=1 (the JSON API's
        journeys are live)."""
        if journey.channel != "dsp":
            return False
        started_by = await self._submission(journey.correlation_id)
        return started_by is not None and started_by.gateway_test

    async def _submission(self, correlation_id: str) -> Submission | None:
        """A submission (a leg's, or the one that started a journey), deleted or not: a delete
        before the answer only removes the client's copy, and the back office still applies it
        (reference §3.8)."""
        async with self._db.read() as session:
            return await session.get(Submission, correlation_id)

    async def _succeeded(
        self, journey: Journey, legs: list[JourneyLeg], leg: JourneyLeg, outcome: str, body: bytes
    ) -> bool:
        updates: list[tuple[JourneyLeg, str, dict[str, Any]]] = [
            (
                leg,
                SUBMITTED,
                {"state": SUCCEEDED, "outcome": outcome, "response_body": body, "error": None},
            )
        ]
        if leg.compensates is not None:
            original = next(x for x in legs if x.position == leg.compensates)
            updates.append((original, SUCCEEDED, {"state": COMPENSATED}))
        log.info("journey.leg_succeeded", correlation_id=journey.correlation_id, leg=leg.name)
        return await records.step(self._db, journey.correlation_id, now=self._clock(), legs=updates)

    async def _failed(
        self,
        journey: Journey,
        legs: list[JourneyLeg],
        leg: JourneyLeg,
        expected: str,
        error: str,
        *,
        history: list[dict[str, Any]] | None = None,
    ) -> bool:
        """A leg failed for good: apply its policy."""
        now = self._clock()
        values: dict[str, Any] = {"state": LEG_FAILED, "error": error}
        if history is not None:
            values["history"] = history
        updates: list[tuple[JourneyLeg, str, dict[str, Any]]] = [(leg, expected, values)]
        new_legs: list[JourneyLeg] = []
        tried = f" after {leg.attempts} attempt(s)" if leg.attempts > 1 else ""
        if leg.compensates is not None:
            original = next(x for x in legs if x.position == leg.compensates)
            note = (
                f"Undoing '{original.name}' ({original.class_} at {original.organisation}) "
                f"failed{tried}: {error}. It stands and needs manual attention."
            )
        else:
            later = [x for x in legs if x.position > leg.position and x.compensates is None]
            updates += [(x, PENDING, {"state": SKIPPED}) for x in later if x.state == PENDING]
            note = f"Step '{leg.name}' ({leg.class_} at {leg.organisation}) failed{tried}: {error}."
            done = [x for x in legs if x.compensates is None and x.state == SUCCEEDED]
            if leg.policy == "compensate":
                definition = DEFINITIONS[journey.kind]
                undoable = [x for x in done if definition.leg(x.name).compensation is not None]
                taken = {x.position for x in legs}
                position = max([COMPENSATION_BASE - 1, *taken]) + 1
                for original in reversed(undoable):
                    compensation = definition.leg(original.name).compensation
                    assert compensation is not None
                    new_legs.append(
                        JourneyLeg(
                            journey_id=journey.correlation_id,
                            position=position,
                            name=f"undo-{original.name}",
                            class_=compensation.class_,
                            organisation=original.organisation,
                            policy="retry",
                            max_attempts=compensation.max_attempts,
                            compensates=original.position,
                            state=PENDING,
                            attempts=0,
                            history=[],
                            updated_at=now,
                        )
                    )
                    position += 1
                if undoable:
                    shown = ", ".join(f"'{x.name}'" for x in undoable)
                    note += f" Its policy is compensate: undoing {shown}."
                stands = [x for x in done if x not in undoable]
                if stands:
                    note += (
                        " Not undoable, left standing: "
                        + ", ".join(f"'{x.name}'" for x in stands)
                        + "."
                    )
            elif done:
                note += (
                    f" Its policy is {leg.policy}: the steps already done stand ("
                    + ", ".join(f"'{x.name}': {x.outcome}" for x in done)
                    + ")."
                )
        explanation = " ".join(filter(None, [journey.explanation, note]))
        log.info("journey.leg_failed", correlation_id=journey.correlation_id, leg=leg.name)
        return await records.step(
            self._db,
            journey.correlation_id,
            now=now,
            legs=updates,
            new_legs=new_legs,
            journey={"explanation": explanation},
        )

    async def _conclude(self, journey: Journey, legs: list[JourneyLeg]) -> bool:
        main = [x for x in legs if x.compensates is None]
        compensations = [x for x in legs if x.compensates is not None]
        if all(x.state == SUCCEEDED for x in main):
            return await self._finish(journey, COMPLETED, None)
        if any(x.state == COMPENSATED for x in main) and all(
            x.state == SUCCEEDED for x in compensations
        ):
            undone = ", ".join(f"'{x.name}'" for x in main if x.state == COMPENSATED)
            note = f"Nothing is left half done: {undone} undone."
            return await self._finish(
                journey,
                COMPLETED_WITH_COMPENSATION,
                " ".join(filter(None, [journey.explanation, note])),
            )
        return await self._finish(
            journey, FAILED, journey.explanation or "the journey stopped without a recorded reason"
        )

    async def _finish(self, journey: Journey, state: str, explanation: str | None) -> bool:
        now = self._clock()
        done = await records.step(
            self._db,
            journey.correlation_id,
            now=now,
            journey={"state": state, "explanation": explanation, "finished_at": now},
        )
        if done:
            log.info("journey.finished", correlation_id=journey.correlation_id, state=state)
            # The DSP submission that carries the journey can be answered now.
            self._dispatcher.wake()
        return False
