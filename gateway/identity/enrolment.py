"""Enrolment with known facts, and activation by a PIN sent by post.

A registered user asks to enrol for a service (class) at an organisation, giving known facts. The
organisation's connector decides whether they match (the KnownFactsChecker capability). Wrong
facts count as failed attempts; `max_attempts` of them lock the enrolment for `lockout`. On a
match the hub posts an activation PIN (single use, valid `pin_validity`) to the address the
organisation holds. Activating with the PIN makes the enrolment active: its identifiers become
the Keys that submissions must carry. Wrong PINs count as failed attempts too.

Every read-modify-write happens inside one `db.transaction()` (BEGIN IMMEDIATE on SQLite) that
locks what it counts on (the enrolment row; for known facts the citizen's row first, as the
enrolment may not exist yet), so concurrent attempts cannot both slip under the attempt limit on
PostgreSQL either. The connector is asked, and PINs are hashed, *before* that transaction, so no
lock is ever held across a back-office call.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.protocol import (
    Connector,
    ConnectorContext,
    KnownFactsChecker,
    KnownFactsRequest,
    KnownFactsResult,
)
from gateway.clock import utcnow
from gateway.config import EnrolmentConfig
from gateway.errors import ProblemError
from gateway.identity.passwords import hash_secret, verify_secret
from gateway.routing.registry import ConnectorSet
from gateway.routing.table import RouteTable
from gateway.services.letters import ACTIVATION_PIN, LetterService
from gateway.store.engine import Database
from gateway.store.models import (
    ACTIVE,
    AWAITING_ACTIVATION,
    FACTS_PENDING,
    Citizen,
    EnrolmentRow,
)

PIN_LENGTH = 8
# No 0/O or 1/I/L: a PIN is read off paper and typed in.
PIN_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
MAX_FACTS = 16
MAX_FACT_LENGTH = 256

Clock = Callable[[], datetime]


# --- Errors: each carries the HTTP status the JSON API answers with ------------------------------


class EnrolmentError(ProblemError):
    status = 400
    title = "Enrolment refused"

    def __init__(self, detail: str) -> None:
        super().__init__(type(self).status, type(self).title, detail)


class InvalidRequest(EnrolmentError):
    status = 400
    title = "Invalid enrolment request"


class UnknownUser(EnrolmentError):
    status = 404
    title = "Unknown user"


class NotEnrollable(EnrolmentError):
    status = 422
    title = "Enrolment not available"


class BackOfficeUnavailable(EnrolmentError):
    status = 503
    title = "Known facts could not be checked"


class FactsMismatch(EnrolmentError):
    status = 422
    title = "Known facts do not match"

    def __init__(self, detail: str, attempts_remaining: int) -> None:
        super().__init__(detail)
        self.attempts_remaining = attempts_remaining

    def members(self) -> dict[str, Any]:
        return {"attempts_remaining": self.attempts_remaining}


class WrongPin(FactsMismatch):
    title = "Activation PIN not recognised"


class EnrolmentLocked(EnrolmentError):
    status = 423
    title = "Enrolment locked"

    def __init__(self, detail: str, until: datetime) -> None:
        super().__init__(detail)
        self.until = until

    def members(self) -> dict[str, Any]:
        return {"locked_until": self.until.isoformat()}


class AlreadyActive(EnrolmentError):
    status = 409
    title = "Already enrolled"


class EnrolmentNotFound(EnrolmentError):
    status = 404
    title = "No such enrolment"


class NotAwaitingActivation(EnrolmentError):
    status = 409
    title = "No activation PIN issued"


class PinUsed(EnrolmentError):
    status = 409
    title = "Activation PIN already used"


class PinExpired(EnrolmentError):
    status = 410
    title = "Activation PIN expired"

    def __init__(self, detail: str, expired_at: datetime) -> None:
        super().__init__(detail)
        self.expired_at = expired_at

    def members(self) -> dict[str, Any]:
        return {"expired_at": self.expired_at.isoformat()}


# --- Views and the service lookup ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnrolmentView:
    id: int
    user_id: str
    class_: str
    organisation: str
    state: str
    keys: Mapping[str, str]
    failed_attempts: int
    locked_until: datetime | None
    pin_expires_at: datetime | None
    activated_at: datetime | None
    created_at: datetime
    letter_id: int | None = None  # the letter this call posted, if any

    @classmethod
    def of(cls, row: EnrolmentRow, letter_id: int | None = None) -> EnrolmentView:
        return cls(
            id=row.id,
            user_id=row.user_id,
            class_=row.class_,
            organisation=row.organisation,
            state=row.state,
            keys=dict(row.keys or {}),
            failed_attempts=row.failed_attempts or 0,
            locked_until=row.locked_until,
            pin_expires_at=row.pin_expires_at,
            activated_at=row.activated_at,
            created_at=row.created_at,
            letter_id=letter_id,
        )

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "id": self.id,
            "class": self.class_,
            "organisation": self.organisation,
            "state": self.state,
            "keys": dict(self.keys),
            "failed_attempts": self.failed_attempts,
            "locked_until": iso(self.locked_until),
            "pin_expires_at": iso(self.pin_expires_at),
            "activated_at": iso(self.activated_at),
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    """Where a (class, organisation) is served: the connector and what the letter calls it."""

    connector: Connector
    ctx: ConnectorContext
    organisation_name: str
    timeout: float = 10


ServiceLookup = Callable[[str, str], ServiceTarget | None]


def route_lookup(routes: RouteTable, connectors: ConnectorSet) -> ServiceLookup:
    """The hub's lookup: the route table names the connector instance for (class, org)."""

    def lookup(class_: str, organisation: str) -> ServiceTarget | None:
        route = routes.get(class_, organisation)
        if route is None:
            return None
        found = connectors.get(route.connector)
        if found is None:
            return None
        connector, ctx = found
        return ServiceTarget(
            connector, ctx, route.organisation_name or organisation, timeout=route.timeout
        )

    return lookup


def new_pin() -> str:
    return "".join(secrets.choice(PIN_ALPHABET) for _ in range(PIN_LENGTH))


def normalise_pin(pin: str) -> str:
    return "".join(ch for ch in pin.upper() if ch.isalnum())


def _long_date(when: datetime) -> str:
    return f"{when.day} {when:%B %Y}"


@dataclass(frozen=True, slots=True)
class _Failed:
    """An attempt that failed: counted against the enrolment, then raised as `kind`."""

    reason: str
    kind: type[FactsMismatch]


# How an attempt settles: the id of the letter it posted (None if none) on success, or _Failed.
_Settled = int | None | _Failed


class EnrolmentService:
    def __init__(
        self,
        db: Database,
        connectors: ServiceLookup,
        letters: LetterService,
        clock: Clock = utcnow,
        *,
        max_attempts: int = 3,
        lockout: timedelta = timedelta(minutes=30),
        pin_validity: timedelta = timedelta(days=28),
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.db = db
        self.lookup = connectors
        self.letters = letters
        self.clock = clock
        self.max_attempts = max_attempts
        self.lockout = lockout
        self.pin_validity = pin_validity

    # -- enrol ------------------------------------------------------------------------------------

    async def request(
        self, user_id: str, class_: str, organisation: str, facts: Mapping[str, str]
    ) -> EnrolmentView:
        """Offer known facts; on a match an activation PIN is posted (state awaiting_activation)."""
        class_, organisation = class_.strip(), organisation.strip()
        clean = _check_facts(facts)
        if not class_ or not organisation:
            raise InvalidRequest("class and organisation are required")
        target = self.lookup(class_, organisation)
        if target is None:
            raise NotEnrollable(f"organisation {organisation} offers no service class {class_}")
        if not isinstance(target.connector, KnownFactsChecker):
            raise NotEnrollable(
                f"this service does not support enrolment ({class_} at "
                f"{target.organisation_name} cannot check known facts)"
            )

        # A cheap look first, so a locked or active enrolment never reaches the back office.
        async with self.db.read() as session:
            citizen = await session.get(Citizen, user_id)
            if citizen is None:
                raise UnknownUser(f"no user {user_id}")
            row = await _find(session, user_id, class_, organisation)
            if row is not None:
                self._refuse_if_active_or_locked(row, self.clock())

        result = await self._ask(target, KnownFactsRequest(class_, organisation, clean))
        pin = new_pin()
        pin_hash = await asyncio.to_thread(hash_secret, pin) if result.match else None

        async def load(session: AsyncSession, now: datetime) -> EnrolmentRow:
            # The citizen's row serialises attempts that would each create the enrolment.
            await session.execute(
                select(Citizen.user_id)
                .where(Citizen.user_id == user_id)
                .with_for_update(key_share=True)
            )
            row = await _find(session, user_id, class_, organisation, lock=True)
            if row is None:
                row = EnrolmentRow(
                    user_id=user_id,
                    class_=class_,
                    organisation=organisation,
                    keys={},
                    created_at=now,
                    state=FACTS_PENDING,
                    failed_attempts=0,
                )
                session.add(row)
                await session.flush()
            return row

        async def settle(session: AsyncSession, row: EnrolmentRow, now: datetime) -> _Settled:
            if not result.match:
                return _Failed(result.reason or "the facts given do not match", FactsMismatch)
            if not result.address:
                raise BackOfficeUnavailable(
                    f"{target.organisation_name} matched the facts but holds no address to post "
                    "the activation PIN to"
                )
            assert pin_hash is not None
            expires = now + self.pin_validity
            row.state = AWAITING_ACTIVATION
            row.keys = dict(result.identifiers)
            row.pin_hash = pin_hash
            row.pin_expires_at = expires
            row.pin_used_at = None
            letter = await self.letters.send(
                user_id=user_id,
                organisation=organisation,
                kind=ACTIVATION_PIN,
                address=result.address,
                text=_pin_letter(
                    citizen.display_name, class_, target.organisation_name, pin, expires, row.id
                ),
                enrolment_id=row.id,
                session=session,
            )
            return letter.id

        return await self._attempt(load, self._refuse_if_active_or_locked, settle)

    # -- activate ---------------------------------------------------------------------------------

    async def activate(self, user_id: str, enrolment_id: int, pin: str) -> EnrolmentView:
        """Use the posted PIN: the enrolment becomes active and its Keys usable."""
        async with self.db.read() as session:
            row = await _own(session, user_id, enrolment_id)
            self._refuse_activation(row, self.clock())
            stored = row.pin_hash
        assert stored is not None
        given = normalise_pin(pin)

        async def matches(pin_hash: str) -> bool:
            return bool(given) and await asyncio.to_thread(verify_secret, given, pin_hash)

        ok = await matches(stored)

        async def settle(session: AsyncSession, row: EnrolmentRow, now: datetime) -> _Settled:
            current = row.pin_hash
            assert current is not None
            # A fresh PIN may have been issued meanwhile: then check against that one.
            if not (ok if current == stored else await matches(current)):
                return _Failed("the activation PIN is not the one we sent", WrongPin)
            row.state = ACTIVE
            row.activated_at = now
            row.pin_used_at = now
            return None

        return await self._attempt(
            lambda session, _now: _own(session, user_id, enrolment_id, lock=True),
            self._refuse_activation,
            settle,
        )

    # -- list -------------------------------------------------------------------------------------

    async def list(self, user_id: str) -> list[EnrolmentView]:
        async with self.db.read() as session:
            rows = await session.scalars(
                select(EnrolmentRow)
                .where(EnrolmentRow.user_id == user_id)
                .order_by(EnrolmentRow.id)
            )
            return [EnrolmentView.of(r) for r in rows]

    async def get(self, user_id: str, enrolment_id: int) -> EnrolmentView:
        async with self.db.read() as session:
            return EnrolmentView.of(await _own(session, user_id, enrolment_id))

    # -- helpers ----------------------------------------------------------------------------------

    async def _attempt(
        self,
        load: Callable[[AsyncSession, datetime], Awaitable[EnrolmentRow]],
        refuse: Callable[[EnrolmentRow, datetime], None],
        settle: Callable[[AsyncSession, EnrolmentRow, datetime], Awaitable[_Settled]],
    ) -> EnrolmentView:
        """One attempt as a single read-check-write transaction.

        Load the row, lift a lock that has run out, `refuse` what may not go ahead, then `settle`
        the attempt. Success clears the failed attempts; a failure is counted (locking the
        enrolment after `max_attempts`) and committed before its error is raised.
        """
        async with self.db.transaction() as session:
            now = self.clock()
            row = await load(session, now)
            self._expire_lock(row, now)
            refuse(row, now)
            settled = await settle(session, row, now)
            if not isinstance(settled, _Failed):
                row.failed_attempts = 0
                row.locked_until = None
                return EnrolmentView.of(row, settled)
            error = self._fail(row, now, settled.reason, settled.kind)
        raise error

    async def _ask(self, target: ServiceTarget, request: KnownFactsRequest) -> KnownFactsResult:
        checker = target.connector
        assert isinstance(checker, KnownFactsChecker)
        try:
            result = await asyncio.wait_for(
                checker.check_known_facts(request, target.ctx), timeout=target.timeout
            )
        except TimeoutError as exc:
            raise BackOfficeUnavailable(
                f"{target.organisation_name} did not answer in time; try again later"
            ) from exc
        except Exception as exc:
            target.ctx.log.exception("known facts check failed")
            raise BackOfficeUnavailable(
                f"{target.organisation_name} could not check the facts; try again later"
            ) from exc
        if not isinstance(result, KnownFactsResult):
            raise BackOfficeUnavailable(f"{target.organisation_name} gave an unusable answer")
        return result

    def _expire_lock(self, row: EnrolmentRow, now: datetime) -> None:
        """A lock that has run out is lifted, and the attempt counter starts again."""
        if row.locked_until is not None and row.locked_until <= now:
            row.locked_until = None
            row.failed_attempts = 0

    def _refuse_if_locked(self, row: EnrolmentRow, now: datetime) -> None:
        if row.locked_until is not None and row.locked_until > now:
            raise EnrolmentLocked(
                f"too many failed attempts: enrolment {row.id} is locked until "
                f"{row.locked_until.isoformat()}",
                row.locked_until,
            )

    def _refuse_if_active_or_locked(self, row: EnrolmentRow, now: datetime) -> None:
        if row.state == ACTIVE:
            raise AlreadyActive(
                f"you are already enrolled for {row.class_} at {row.organisation} "
                f"(enrolment {row.id})"
            )
        self._refuse_if_locked(row, now)

    def _refuse_activation(self, row: EnrolmentRow, now: datetime) -> None:
        if row.state == ACTIVE:
            raise PinUsed(f"enrolment {row.id} is already active; its PIN has been used")
        self._refuse_if_locked(row, now)
        if row.state != AWAITING_ACTIVATION or row.pin_hash is None:
            raise NotAwaitingActivation(
                f"enrolment {row.id} has no activation PIN: give the known facts first"
            )
        if row.pin_used_at is not None:
            raise PinUsed(f"the activation PIN for enrolment {row.id} has already been used")
        if row.pin_expires_at is None or row.pin_expires_at <= now:
            expired = row.pin_expires_at or now
            raise PinExpired(
                f"the activation PIN expired on {_long_date(expired)} "
                f"({expired.isoformat()}); request a new one by enrolling again",
                expired,
            )

    def _fail(
        self, row: EnrolmentRow, now: datetime, reason: str, kind: type[FactsMismatch]
    ) -> EnrolmentError:
        """Count a failed attempt (committed with the transaction) and say what happens next."""
        row.failed_attempts = (row.failed_attempts or 0) + 1
        remaining = self.max_attempts - row.failed_attempts
        if remaining <= 0:
            row.locked_until = now + self.lockout
            return EnrolmentLocked(
                f"{reason}; that was the last attempt: enrolment {row.id} is locked until "
                f"{row.locked_until.isoformat()}",
                row.locked_until,
            )
        plural = "s" if remaining != 1 else ""
        return kind(f"{reason}; {remaining} attempt{plural} remaining", remaining)


async def _own(
    session: AsyncSession, user_id: str, enrolment_id: int, *, lock: bool = False
) -> EnrolmentRow:
    """The user's enrolment; `lock` holds its row until the transaction ends."""
    row = await session.get(EnrolmentRow, enrolment_id, with_for_update=lock)
    if row is None or row.user_id != user_id:
        raise EnrolmentNotFound(f"you have no enrolment {enrolment_id}")
    return row


async def _find(
    session: AsyncSession, user_id: str, class_: str, organisation: str, *, lock: bool = False
) -> EnrolmentRow | None:
    """The user's enrolment for (class, organisation); `lock` as for `_own`."""
    query = (
        select(EnrolmentRow)
        .where(
            EnrolmentRow.user_id == user_id,
            EnrolmentRow.class_ == class_,
            EnrolmentRow.organisation == organisation,
        )
        .order_by(EnrolmentRow.id)
        .limit(1)
    )
    found = await session.scalars(query.with_for_update() if lock else query)
    return found.first()


def _check_facts(facts: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(facts, Mapping) or not facts:
        raise InvalidRequest("facts must be a non-empty object of name → value")
    if len(facts) > MAX_FACTS:
        raise InvalidRequest(f"at most {MAX_FACTS} facts")
    clean: dict[str, str] = {}
    for name, value in facts.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidRequest("every fact must be a string name with a string value")
        if len(name) > MAX_FACT_LENGTH or len(value) > MAX_FACT_LENGTH:
            raise InvalidRequest(f"facts are at most {MAX_FACT_LENGTH} characters")
        clean[name.strip()] = value.strip()
    return clean


def _pin_letter(
    display_name: str,
    class_: str,
    organisation_name: str,
    pin: str,
    expires: datetime,
    enrolment_id: int,
) -> str:
    greeting = f"Dear {display_name}," if display_name else "Dear Sir or Madam,"
    return (
        f"{greeting}\n\n"
        f"You asked to use the {class_} service of {organisation_name} through the Government "
        "Gateway.\n\n"
        f"Your activation PIN is: {pin}\n\n"
        f"Use it to activate enrolment {enrolment_id} before {_long_date(expires)} "
        f"({expires.isoformat()}). It can be used once only; after that date ask for a new one.\n"
        f"If you did not ask for this, please contact {organisation_name}.\n"
    )


def build_services(
    config: EnrolmentConfig, db: Database, lookup: ServiceLookup, clock: Clock = utcnow
) -> tuple[LetterService, EnrolmentService]:
    """The letters outbox and the enrolment service, as the [enrolment] section sets them."""
    letters = LetterService(db, clock, delivery=timedelta(days=config.letter_days))
    enrolments = EnrolmentService(
        db,
        lookup,
        letters,
        clock,
        max_attempts=config.max_attempts,
        lockout=timedelta(minutes=config.lockout_minutes),
        pin_validity=timedelta(days=config.pin_days),
    )
    return letters, enrolments
