"""The dispatcher: claims queued submissions, calls their connector with a deadline, records
the answer; retries transient failures with backoff and dead-letters what it cannot deliver."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import String

from connectors.protocol import (
    BusinessError,
    Failed,
    Identity,
    Outcome,
    Response,
    Retry,
    Transaction,
)
from gateway.audit.append import Event
from gateway.audit.log import audit_with_commit
from gateway.config import Config, RouteConfig
from gateway.govtalk.errors import GovTalkError, GovTalkFault
from gateway.govtalk.parse import parse_xml
from gateway.identity import citizens
from gateway.observability import connector_call
from gateway.routing.fault_injector import FaultInjector
from gateway.routing.outcomes import errors_to_json
from gateway.routing.pacing import Pacing
from gateway.routing.registry import ConnectorSet
from gateway.routing.table import RouteTable
from gateway.storable import storable
from gateway.store import submissions as store
from gateway.store.engine import Database
from gateway.store.models import ERROR, RESPONSE, DeadLetter, Submission
from gateway.store.submissions import FinalAnswer

log = structlog.get_logger("gateway.dispatcher")

MAX_BACKOFF = 60.0
# What the answer's application column holds (read from the model: a migration that widens it
# widens this); a back office's longer name is cut to fit rather than refused by PostgreSQL.
APPLICATION_LENGTH: int = cast(String, Submission.__table__.c.error_application.type).length or 128
# Attempts whose end was never recorded (a process killed mid-delivery) are made beyond a
# route's retries this many times before the transaction is given up on: a crash must not cost
# a transaction its delivery (on a route with no retries too), nor may an answer no database
# will store be delivered for ever.
UNRECORDED_ALLOWANCE = 2
# The dead letter's reason when the database refused a transaction's real answer.
ANSWER_REFUSED = "the back office's answer could not be recorded"
# How often the queue heads are read for PollInterval: it is given in whole seconds.
PACE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class _Failure:
    """A failed attempt: retried unless permanent; `never_answered` picks 2005 over 3000 at the end."""

    reason: str
    never_answered: bool
    retry_after: float | None = None
    permanent: bool = False


class Dispatcher:
    def __init__(
        self,
        db: Database,
        routes: RouteTable,
        connectors: ConnectorSet,
        config: Config,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._routes = routes
        self._connectors = connectors
        self._config = config
        self._clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        # CorrelationIDs of the attempts running here. A claim leaves them out: a lease that
        # seems to have run out (the movable clock moved on, an attempt overran) is still ours.
        self._working: set[str] = set()
        # In flight per connector: one slow back office may hold at most
        # [dispatcher] per_connector of the slots, so the others keep being served.
        self._per_connector: dict[str, int] = {}
        # Slots promised to submissions being stored leased to this dispatcher (`reserve`).
        self._reserved = 0
        self._running = False
        # Set once the drain's grace is over: an attempt not yet calling its connector then
        # leaves the transaction to its lease instead of starting a call that is cut short.
        self._stopping = False
        # Attempts inside their connector's call: what the drain cancels once its grace is over.
        self._calling: set[asyncio.Task[Any]] = set()
        # The hub's time at the last claim pass: what was due then and not claimed is not
        # looked for again at once (`_sleep_until_due`).
        self._looked_at: datetime | None = None
        longest = max((r.timeout for r in routes), default=10.0)
        self.lease = timedelta(seconds=longest + config.dispatcher.lease_margin_seconds)
        # Faults set through the admin API or the CLI, applied around each connector call.
        self.faults = FaultInjector(db)
        self.pacing = Pacing(config.dispatcher.max_poll_interval)

    def wake(self) -> None:
        self._wake.set()

    def queue_waits(self) -> dict[str, tuple[float, int]]:
        """Per connector with due work: its queue head's wait, the PollInterval it implies."""
        return self.pacing.waiting(self._clock())

    # -- direct hand-over from the submit path -----------------------------------------------

    def reserve(self, connector: str) -> bool:
        """A slot for a submission about to be stored leased to this dispatcher, if one is free.

        The submit path then hands the committed row over (`start`) instead of the loop finding
        it with two queries and claiming it with a third. If this process dies first, the lease
        runs out and any dispatcher claims the row, as with a claimed one.
        """
        cap = self._config.dispatcher.per_connector
        if not self._running or self._free() <= 0 or self._per_connector.get(connector, 0) >= cap:
            return False
        self._reserved += 1
        self._per_connector[connector] = self._per_connector.get(connector, 0) + 1
        return True

    def release(self, connector: str) -> None:
        """Give back a reserved slot whose submission was not stored."""
        self._reserved -= 1
        self._per_connector[connector] -= 1

    def start(self, submission: Submission) -> None:
        """Process a stored submission this dispatcher holds the lease on, in a reserved slot."""
        self.release(submission.connector)
        self._start(submission)

    def _free(self) -> int:
        return self._config.dispatcher.concurrency - len(self._inflight) - self._reserved

    # -- the background loop ---------------------------------------------------------------

    async def run(self) -> None:
        """Claim and process due work until cancelled."""
        self._running = True
        pacing = asyncio.create_task(self._pace(), name="pacing")
        try:
            await self._loop()
        finally:
            self._running = False
            pacing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pacing

    async def _pace(self) -> None:
        # A pass of its own rather than the claim loop's: that one stops looking while every
        # slot is busy, which is when the queue grows.
        failing = False
        while True:
            try:
                now = self._clock()
                self.pacing.observe(await store.due_connectors(self._db, now), now)
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception:
                self.pacing.forget()
                if not failing:  # once per outage, not every second of it
                    log.warning("dispatcher.queue_unread", exc_info=True)
                failing = True
            await asyncio.sleep(PACE_SECONDS)

    async def _loop(self) -> None:
        while True:
            try:
                claimed = await self._claim_batch()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher.claim_failed")
                claimed = 0
            if claimed:
                continue
            await self._sleep_until_due()

    async def _claim_batch(self) -> int:
        free = self._free()
        if free <= 0:
            if self._inflight:
                await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
            else:
                # Every slot is reserved by a submission being stored; it starts in a moment.
                await asyncio.sleep(0.005)
            return 1
        cap = self._config.dispatcher.per_connector
        now = self._looked_at = self._clock()
        claimed, blocked = 0, False
        for name, _ in await store.due_connectors(self._db, now):
            room = min(free - claimed, cap - self._per_connector.get(name, 0))
            if room <= 0:
                blocked = True
                continue
            batch = await store.claim(
                self._db,
                owner=self.owner,
                limit=room,
                now=now,
                lease=self.lease,
                connector=name,
                busy=self._working,
            )
            for submission in batch:
                self._start(submission)
            claimed += len(batch)
            if claimed >= free:
                break
        if not claimed and blocked and self._inflight:
            # Work is due but its connectors are full: wait for one of them, not a busy loop.
            await asyncio.wait(
                self._inflight,
                timeout=self._config.dispatcher.idle_poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            return 1
        return claimed

    def _start(self, submission: Submission) -> None:
        name, cid = submission.connector, submission.correlation_id
        self._per_connector[name] = self._per_connector.get(name, 0) + 1
        self._working.add(cid)  # now, not when the task first runs: the next claim may be sooner

        def done(task: asyncio.Task[None]) -> None:
            self._inflight.discard(task)
            self._working.discard(cid)
            self._per_connector[name] -= 1

        task = asyncio.create_task(self._guarded(submission))
        self._inflight.add(task)
        task.add_done_callback(done)

    async def _sleep_until_due(self) -> None:
        timeout = self._config.dispatcher.idle_poll_seconds
        try:
            due = await store.next_due(self._db)
        except Exception:
            due = None
        if due is not None:
            wait = (due - self._clock()).total_seconds()
            if self._working and self._looked_at is not None and due <= self._looked_at:
                # Due at the last pass yet not claimed: most likely leases of attempts still
                # running here (the clock was moved on, an attempt overran), which the claim
                # leaves out. Looking again at once would spin until they end.
                wait = timeout
            timeout = min(timeout, max(0.0, wait))
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def drain(self, grace: float = 5.0) -> None:
        """Let in-flight attempts finish for `grace` seconds, then abandon the rest; returns once
        none is calling a connector any more, so the caller may close the connectors.

        An abandoned attempt records nothing (the hub stopping is not the back office failing):
        its lease runs out and this hub, restarted, or another delivers the transaction again."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace)
        self._stopping = True
        if not self._inflight:
            return
        abandoned = [task for task in self._inflight if task in self._calling]
        for task in abandoned:
            task.cancel()
        if abandoned:
            log.warning("dispatcher.attempts_abandoned", attempts=len(abandoned), grace=grace)
        # What is left is recording an end (a database write) or gives up before its call.
        _, stuck = await asyncio.wait(set(self._inflight), timeout=grace)
        if stuck:
            # A connector that ignores cancellation: whatever it returns now is not recorded
            # (`_attempt` checks for the cancellation), so closing it under the call is safe.
            log.warning("dispatcher.attempts_not_ended", attempts=len(stuck))

    async def _guarded(self, submission: Submission) -> None:
        try:
            await self.process(submission)
        except Exception:
            # The lease runs out and the work is claimed again, or given up on once it has had
            # its attempts (`_process`): nothing is stuck.
            log.exception("dispatcher.process_failed", correlation_id=submission.correlation_id)

    # -- one attempt ------------------------------------------------------------------------

    async def process(self, submission: Submission) -> FinalAnswer | None:
        """Run one attempt on a submission this dispatcher leased; the final answer, if any."""
        cid = submission.correlation_id
        self._working.add(cid)  # the sync path comes here without `_start`
        try:
            with structlog.contextvars.bound_contextvars(correlation_id=cid):
                return await self._process(submission)
        finally:
            self._working.discard(cid)

    async def _process(self, submission: Submission) -> FinalAnswer | None:
        route = self._routes.get(submission.base_class, submission.organisation)
        owed = _Owed()
        retries = route.retries if route else 0
        if submission.attempts > retries + 1 + UNRECORDED_ALLOWANCE:
            # Claimed again and again after its last allowed attempt, whose end was never
            # recorded (its process died, its answer could not be written): delivering it again
            # could go on for ever. Given up on, as any transaction out of attempts.
            unrecorded = _Failure(_unrecorded(submission.last_error), never_answered=True)
            return await self._exhausted(
                submission, unrecorded, owed, attempts=submission.attempts - 1
            )
        result = await self._attempt(submission, route, owed)
        if isinstance(result, FinalAnswer):
            await self._finish(submission, result, owed)
            return result
        if not result.permanent and submission.attempts <= retries:
            delay = result.retry_after
            if delay is None:
                backoff = route.backoff if route else 1.0
                delay = min(MAX_BACKOFF, backoff * 2 ** (submission.attempts - 1))
            at = self._clock() + timedelta(seconds=delay)
            owed.add(
                "dispatch.retry",
                outcome="retry",
                correlation_id=submission.correlation_id,
                attempt=submission.attempts,
                after=delay,
                reason=result.reason,
            )
            await store.reschedule(
                self._db,
                submission.correlation_id,
                owner=self.owner,
                attempt=submission.attempts,
                at=at,
                reason=result.reason,
                audited=owed.events,
            )
            owed.committed()
            return None
        return await self._exhausted(submission, result, owed)

    async def _attempt(
        self, submission: Submission, route: RouteConfig | None, owed: _Owed
    ) -> FinalAnswer | _Failure:
        found = self._connectors.get(submission.connector)
        if found is None or route is None:
            return _failed(
                f"no connector '{submission.connector}' is configured for "
                f"{submission.base_class} @ {submission.organisation}"
            )
        connector, ctx = found
        tx = await self._transaction(submission)
        # Read before the route's timeout starts: a slow read of the fault table (a loaded
        # machine, a locked file) must not use up the connector's time and fail it unasked.
        fault = await self.faults.current(ctx.name)
        if self._stopping:
            raise asyncio.CancelledError  # left to its lease, as a call the drain cut short
        task = asyncio.current_task()
        assert task is not None  # a coroutine asyncio runs always has one
        started = asyncio.get_running_loop().time()
        self._calling.add(task)
        try:
            with connector_call(ctx.name, submission.correlation_id):  # latency, trace span
                async with asyncio.timeout(route.timeout):
                    outcome: Outcome = await self.faults.handle(fault, connector, tx, ctx)
        except TimeoutError:
            _unless_cancelled(task)
            owed.add(
                "dispatch.timeout",
                outcome="timeout",
                correlation_id=submission.correlation_id,
                connector=ctx.name,
                timeout=route.timeout,
                **_timing(submission, started),
            )
            return _Failure(f"{ctx.name} did not answer within {route.timeout:g}s", True)
        except Exception as exc:
            _unless_cancelled(task)
            owed.add(
                "dispatch.connector_error",
                outcome="error",
                correlation_id=submission.correlation_id,
                connector=ctx.name,
                error=repr(exc),
                **_timing(submission, started),
            )
            return _Failure(storable(f"{ctx.name} failed: {exc!r}"), False)
        finally:
            self._calling.discard(task)
        _unless_cancelled(task)
        owed.add(
            "dispatch.answered",
            correlation_id=submission.correlation_id,
            connector=ctx.name,
            result=type(outcome).__name__,
            **_timing(submission, started),
        )
        return _final(outcome, ctx.name)

    async def _transaction(self, submission: Submission) -> Transaction:
        enrolments = (
            await citizens.enrolments(self._db, submission.sender_id)
            if submission.sender_id
            else ()
        )
        return Transaction(
            correlation_id=submission.correlation_id,
            class_=submission.base_class,
            organisation=submission.organisation,
            keys=dict(submission.keys),
            body=submission.request_body,
            envelope_body=submission.envelope_body,
            identity=Identity(
                user_id=submission.sender_id,
                auth_method=submission.auth_method,
                auth_level=submission.auth_level,
                enrolments=tuple(
                    e for e in enrolments if e.organisation == submission.organisation
                ),
            ),
            transaction_id=submission.transaction_id,
            gateway_test=submission.gateway_test,
            test_in_live=submission.test_in_live,
            received_at=submission.backdated_to or submission.received_at,
            attempt=submission.attempts,
        )

    async def _exhausted(
        self,
        submission: Submission,
        failure: _Failure,
        owed: _Owed,
        *,
        attempts: int | None = None,
    ) -> FinalAnswer:
        number = 2005 if failure.never_answered else 3000
        made = submission.attempts if attempts is None else attempts
        final, letter = self._given_up(submission, number, made, failure.reason, owed)
        await self._finish(submission, final, owed, dead_letter=letter)
        return final

    def _given_up(
        self, submission: Submission, number: int, attempts: int, reason: str, owed: _Owed
    ) -> tuple[FinalAnswer, DeadLetter]:
        """The 2005/3000 answer and dead letter of a transaction given up on (its event owed)."""
        error = GovTalkError.of(number, _exhausted_text(number, attempts, reason))
        owed.add(
            "dispatch.dead_letter",
            outcome="dead_letter",
            correlation_id=submission.correlation_id,
            number=number,
            attempts=attempts,
        )
        letter = DeadLetter(
            correlation_id=submission.correlation_id,
            connector=submission.connector,
            class_=submission.base_class,
            organisation=submission.organisation,
            error_number=number,
            reason=reason,
            attempts=attempts,
            created_at=self._clock(),
        )
        return FinalAnswer(ERROR, errors=errors_to_json([error])), letter

    async def _finish(
        self,
        submission: Submission,
        final: FinalAnswer,
        owed: _Owed,
        dead_letter: DeadLetter | None = None,
    ) -> bool:
        try:
            done = await self._answer(submission, final, owed, dead_letter)
        except Exception:
            # The database refused this answer. Unrecorded, the lease would run out and the
            # transaction be delivered again and refused again; a plain 3000 any database
            # stores ends it instead. (If that fails too, the database itself is failing: the
            # lease runs out and the next claim tries again, within the route's attempts.)
            log.exception("dispatch.answer_refused")
            final, dead_letter = self._given_up(
                submission, 3000, submission.attempts, ANSWER_REFUSED, owed
            )
            done = await self._answer(submission, final, owed, dead_letter)
        owed.committed()
        if not done:
            log.warning("dispatch.lease_lost")
        return done

    async def _answer(
        self,
        submission: Submission,
        final: FinalAnswer,
        owed: _Owed,
        dead_letter: DeadLetter | None,
    ) -> bool:
        retention = self._config.retention
        days = retention.response_days if final.state == RESPONSE else retention.error_days
        return await store.answer(
            self._db,
            submission.correlation_id,
            owner=self.owner,
            attempt=submission.attempts,
            final=final,
            now=self._clock(),
            keep_for=timedelta(days=days),
            dead_letter=dead_letter,
            audited=owed.events,
        )


@dataclass(slots=True)
class _Owed:
    """The audit events of one attempt: written in the transaction that records its end (the
    answer, the retry, the dead letter), and logged once that has committed."""

    events: list[Event] = field(default_factory=list)
    _announce: list[Callable[[], None]] = field(default_factory=list)

    def add(self, event: str, **fields: Any) -> None:
        events, announce = audit_with_commit(event, **fields)
        self.events += events
        self._announce.append(announce)

    def committed(self) -> None:
        for announce in self._announce:
            announce()


def _unless_cancelled(task: asyncio.Task[Any]) -> None:
    """Go on being cancelled if a connector swallowed the cancellation (answered, or raised
    something else, as a call cut short by the hub stopping does): what ends such a call is the
    hub, not the back office, so nothing about it may be recorded."""
    if task.cancelling():
        raise asyncio.CancelledError


def _final(outcome: Outcome, connector: str) -> FinalAnswer | _Failure:
    if isinstance(outcome, Response):
        # Checked now, once: a reply that cannot be embedded would fail every poll instead.
        try:
            parse_xml(outcome.body)
        except GovTalkFault as fault:
            return _failed(
                f"{connector} answered a body that is not usable XML: {fault.first.text}"
            )
        return FinalAnswer(RESPONSE, response_body=outcome.body)
    if isinstance(outcome, BusinessError):
        if not outcome.errors:
            return _failed(f"{connector} returned a business error with no errors")
        # Stored now, served on every poll: what the column or a reply cannot hold would make
        # the answer unrecordable (redelivered) or every poll a 1000.
        errors = [
            replace(
                e,
                text=storable(e.text),
                raised_by=storable(e.raised_by),
                locations=tuple(storable(loc) for loc in e.locations),
            )
            for e in outcome.errors
        ]
        return FinalAnswer(
            ERROR,
            errors=errors_to_json(errors),
            application=storable(outcome.application, APPLICATION_LENGTH),
        )
    if isinstance(outcome, Retry):
        return _Failure(
            storable(outcome.reason or f"{connector} asked to retry"),
            True,
            max(0.0, outcome.after),
        )
    if isinstance(outcome, Failed):
        return _failed(outcome.reason)
    return _failed(f"{connector} returned {type(outcome).__name__}, which is not an Outcome")


def _failed(reason: str) -> _Failure:
    # Reasons quote back offices (a 4xx body, an exception) and end up in answers and dead
    # letters: made storable here, once for every permanent failure.
    return _Failure(storable(reason), never_answered=False, permanent=True)


def _unrecorded(last_error: str | None) -> str:
    """Why a transaction claimed past its attempts is given up on."""
    reason = "the outcome of its last attempt could not be recorded"
    return reason if not last_error else f"{reason} (before it: {storable(last_error)})"


def _timing(submission: Submission, started: float) -> dict[str, Any]:
    """Which attempt this was and how long the connector took: the console's story shows both."""
    elapsed = asyncio.get_running_loop().time() - started
    return {"attempt": submission.attempts, "seconds": round(elapsed, 4)}


def _exhausted_text(number: int, attempts: int, reason: str) -> str:
    if number == 2005:
        return f"The back office did not answer after {attempts} attempt(s): {reason}"
    return f"Processing failed at the back office after {attempts} attempt(s): {reason}; resubmit later"
