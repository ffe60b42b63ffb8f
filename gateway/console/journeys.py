"""Console: a citizen's journey through the hub as one timeline, and what it is waiting on.

Registration → enrolments (facts accepted, PIN letter posted, activated) → transactions →
joined-up journeys and their legs → payments → mail, oldest first. Payments carry no user ID:
they belong to a citizen when their (council, reference) is one of the citizen's active
enrolment identifiers there (the account reference a council asks a citizen to pay against).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.console.paging import PAGE_SIZE, Page, cut, offset, page_number, slice_page
from gateway.services.payments import lifecycle
from gateway.store.engine import Database
from gateway.store.journey_models import (
    FINAL_JOURNEY_STATES,
    PENDING,
    SUBMITTED,
    Journey,
    JourneyLeg,
)
from gateway.store.mail_models import TO_CITIZEN, MailMessageRow
from gateway.store.models import (
    ACTIVE,
    AWAITING_ACTIVATION,
    FACTS_PENDING,
    PENDING_STATES,
    Citizen,
    CitizenCertificate,
    EnrolmentRow,
    Letter,
    Submission,
)
from gateway.store.payment_models import NOTIFY_PENDING, PaymentRow

# Each kind of step is read newest first up to this many: a busy citizen's page stays quick,
# and the page says when older steps were left out.
PER_KIND = 500
OPEN_PAYMENT_STATES = lifecycle.OPEN_STATES


@dataclass(frozen=True, slots=True)
class CitizenSummary:
    user_id: str
    kind: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happened, as a line of the timeline."""

    at: datetime
    kind: str  # registration, certificate, enrolment, letter, transaction, journey, leg, payment, mail
    title: str
    detail: str = ""
    state: str = ""
    link: str | None = None  # another console page about this step


@dataclass(frozen=True, slots=True)
class Waiting:
    """Something not finished: what it waits on, since when."""

    since: datetime
    on: str


@dataclass(frozen=True, slots=True)
class Timeline:
    citizen: CitizenSummary
    steps: Page[Step]
    waiting: tuple[Waiting, ...]
    truncated: tuple[str, ...]  # kinds of step with more than PER_KIND rows (older ones left out)


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def find_citizens(db: Database, query: str, number: int = 1) -> Page[CitizenSummary]:
    """Citizens whose user ID starts with `query`, or whose name contains it."""
    text = query.strip()
    stmt = select(Citizen).order_by(Citizen.user_id)
    if text:
        pattern = _like_prefix(text.upper())
        contains = "%" + _like_prefix(text.lower())
        stmt = stmt.where(
            or_(
                func.upper(Citizen.user_id).like(pattern, escape="\\"),
                func.lower(Citizen.display_name).like(contains, escape="\\"),
            )
        )
    stmt = stmt.offset(offset(number)).limit(PAGE_SIZE + 1)
    async with db.read() as session:
        rows = list(await session.scalars(stmt))
    return cut([_summary(row) for row in rows], number)


def _summary(row: Citizen) -> CitizenSummary:
    return CitizenSummary(row.user_id, row.kind, row.display_name, row.created_at)


async def citizen_timeline(
    db: Database, user_id: str, *, now: datetime, number: int = 1
) -> Timeline | None:
    """The citizen's timeline (one page of it) and everything still waiting; None if unknown."""
    async with db.read() as session:
        citizen = await session.get(Citizen, user_id)
        if citizen is None:
            return None
        certificates = list(
            await session.scalars(
                select(CitizenCertificate)
                .where(CitizenCertificate.user_id == user_id)
                .order_by(CitizenCertificate.created_at.desc())
                .limit(PER_KIND + 1)
            )
        )
        enrolments = list(
            await session.scalars(
                select(EnrolmentRow)
                .where(EnrolmentRow.user_id == user_id)
                .order_by(EnrolmentRow.created_at.desc())
                .limit(PER_KIND + 1)
            )
        )
        letters = list(
            await session.scalars(
                select(Letter)
                .where(Letter.user_id == user_id)
                .order_by(Letter.created_at.desc())
                .limit(PER_KIND + 1)
            )
        )
        # Columns only: request and response bodies can be large and are not shown here.
        transactions = (
            await session.execute(
                select(
                    Submission.correlation_id,
                    Submission.class_,
                    Submission.organisation,
                    Submission.state,
                    Submission.attempts,
                    Submission.received_at,
                    Submission.answered_at,
                    Submission.deleted_at,
                )
                .where(Submission.sender_id == user_id)
                .order_by(Submission.received_at.desc())
                .limit(PER_KIND + 1)
            )
        ).all()
        journeys = list(
            await session.scalars(
                select(Journey)
                .where(Journey.sender_id == user_id)
                .order_by(Journey.created_at.desc())
                .limit(PER_KIND + 1)
            )
        )
        legs = (
            list(
                await session.scalars(
                    select(JourneyLeg)
                    .where(JourneyLeg.journey_id.in_([j.correlation_id for j in journeys]))
                    .order_by(JourneyLeg.journey_id, JourneyLeg.position)
                )
            )
            if journeys
            else []
        )
        payments = await _payments(session, enrolments)
        mail = list(
            await session.scalars(
                select(MailMessageRow)
                .where(MailMessageRow.user_id == user_id, MailMessageRow.deleted_at.is_(None))
                .order_by(MailMessageRow.created_at.desc())
                .limit(PER_KIND + 1)
            )
        )
    truncated = tuple(
        name
        for name, rows in (
            ("certificates", certificates),
            ("enrolments", enrolments),
            ("letters", letters),
            ("transactions", transactions),
            ("journeys", journeys),
            ("payments", payments),
            ("mail", mail),
        )
        if len(rows) > PER_KIND
    )
    steps: list[Step] = [_registration(citizen)]
    waiting: list[Waiting] = []
    steps += [_certificate(c) for c in certificates[:PER_KIND]]
    for enrolment in enrolments[:PER_KIND]:
        steps += _enrolment_steps(enrolment)
        waiting += _enrolment_waiting(enrolment, now)
    steps += [_letter(letter) for letter in letters[:PER_KIND]]
    # A journey's own submission and its legs' are transactions too; what they wait on is
    # said once, by the journey.
    part_of = {leg.correlation_id: leg.journey_id for leg in legs if leg.correlation_id}
    part_of.update({j.correlation_id: j.correlation_id for j in journeys})
    for row in transactions[:PER_KIND]:
        steps.append(_transaction(row, part_of.get(row.correlation_id)))
        if row.state in PENDING_STATES and row.correlation_id not in part_of:
            waiting.append(
                Waiting(
                    row.received_at,
                    f"transaction {row.correlation_id} ({row.class_} at {row.organisation}): "
                    f"awaiting the council's answer (attempts so far: {row.attempts})",
                )
            )
    for journey in journeys[:PER_KIND]:
        mine = [leg for leg in legs if leg.journey_id == journey.correlation_id]
        steps += _journey_steps(journey, mine)
        waiting += _journey_waiting(journey, mine)
    for payment in payments[:PER_KIND]:
        steps += _payment_steps(payment)
        waiting += _payment_waiting(payment)
    for message in mail[:PER_KIND]:
        steps += _mail_steps(message)
        waiting += _mail_waiting(message, now)
    steps.sort(key=lambda step: (step.at, KIND_ORDER.get(step.kind, 99)))
    waiting.sort(key=lambda w: w.since)
    return Timeline(_summary(citizen), slice_page(steps, number), tuple(waiting), truncated)


# Within one instant, the order a person would expect: a letter follows its enrolment.
KIND_ORDER = {
    k: i
    for i, k in enumerate(
        (
            "registration",
            "certificate",
            "enrolment",
            "letter",
            "transaction",
            "journey",
            "leg",
            "payment",
            "mail",
        )
    )
}


async def _payments(session: AsyncSession, enrolments: Sequence[EnrolmentRow]) -> list[PaymentRow]:
    # Active enrolments only: until the posted PIN proves the address, an account's payments
    # may well be someone else's.
    pairs = {
        (e.organisation, str(value).strip().upper())
        for e in enrolments
        if e.state == ACTIVE
        for value in (e.keys or {}).values()
        if str(value).strip()
    }
    if not pairs:
        return []
    clauses = [
        (PaymentRow.organisation == org) & (func.upper(PaymentRow.reference) == ref)
        for org, ref in pairs
    ]
    return list(
        await session.scalars(
            select(PaymentRow)
            .where(or_(*clauses))
            .order_by(PaymentRow.created_at.desc())
            .limit(PER_KIND + 1)
        )
    )


def _registration(citizen: Citizen) -> Step:
    name = f" as {citizen.display_name}" if citizen.display_name else ""
    return Step(
        citizen.created_at, "registration", f"Registered ({citizen.kind}){name}", state="done"
    )


def _certificate(row: CitizenCertificate) -> Step:
    return Step(
        row.created_at,
        "certificate",
        "Certificate registered",
        f"{row.subject}; serial {row.serial}; valid until {_when(row.not_after)}",
        state="done",
    )


def _service(class_: str, organisation: str) -> str:
    return f"{class_} at {organisation}"


def _enrolment_steps(row: EnrolmentRow) -> list[Step]:
    service = _service(row.class_, row.organisation)
    if row.state == FACTS_PENDING:
        locked = f"; locked until {_when(row.locked_until)}" if row.locked_until else ""
        return [
            Step(
                row.created_at,
                "enrolment",
                f"Enrolment {row.id} for {service}: known facts not matched",
                f"failed attempts: {row.failed_attempts}{locked}",
                state=row.state,
            )
        ]
    steps = [
        Step(
            row.created_at,
            "enrolment",
            f"Enrolment {row.id} for {service}: known facts accepted",
            _keys(row.keys),
            state=row.state,
        )
    ]
    if row.activated_at is not None:
        steps.append(
            Step(
                row.activated_at,
                "enrolment",
                f"Enrolment {row.id} for {service}: activated",
                _keys(row.keys),
                state=ACTIVE,
            )
        )
    return steps


def _enrolment_waiting(row: EnrolmentRow, now: datetime) -> list[Waiting]:
    service = _service(row.class_, row.organisation)
    if row.state == AWAITING_ACTIVATION:
        expires = row.pin_expires_at
        if expires is not None and expires <= now:
            return [
                Waiting(
                    row.created_at,
                    f"enrolment {row.id} ({service}): the activation PIN expired on "
                    f"{_when(expires)}; the citizen must ask for a new one",
                )
            ]
        until = f" (valid until {_when(expires)})" if expires else ""
        return [
            Waiting(
                row.created_at,
                f"enrolment {row.id} ({service}): awaiting activation with the posted PIN{until}",
            )
        ]
    if row.state == FACTS_PENDING:
        if row.locked_until is not None and row.locked_until > now:
            return [
                Waiting(
                    row.created_at,
                    f"enrolment {row.id} ({service}): locked after wrong known facts until "
                    f"{_when(row.locked_until)}",
                )
            ]
        return [
            Waiting(
                row.created_at, f"enrolment {row.id} ({service}): awaiting matching known facts"
            )
        ]
    return []


def _letter(row: Letter) -> Step:
    what = "Activation PIN letter" if row.kind == "activation_pin" else f"Letter ({row.kind})"
    about = f" for enrolment {row.enrolment_id}" if row.enrolment_id is not None else ""
    return Step(
        row.created_at,
        "letter",
        f"{what}{about} posted by {row.organisation}",
        f"expected to arrive {_when(row.arrives_at)}",
        state="posted",
        link=_query_link("/console/services/letters", user_id=row.user_id),
    )


def _transaction(row: Any, journey_id: str | None) -> Step:
    state = "deleted" if row.deleted_at is not None else row.state
    answered = f"; answered {_when(row.answered_at)}" if row.answered_at else ""
    if journey_id is None:
        part = ""
    elif journey_id == row.correlation_id:
        part = "; carries the joined-up journey of the same CorrelationID"
    else:
        part = f"; a leg of journey {journey_id}"
    return Step(
        row.received_at,
        "transaction",
        f"Transaction {row.class_} to {row.organisation}",
        f"CorrelationID {row.correlation_id}{answered}{part}",
        state=state,
        link=_transaction_link(row.correlation_id),
    )


def _journey_steps(journey: Journey, legs: Iterable[JourneyLeg]) -> list[Step]:
    steps = [
        Step(
            journey.created_at,
            "journey",
            f"Joined-up journey {journey.kind} started",
            f"CorrelationID {journey.correlation_id} ({journey.class_}, via {journey.channel})",
            state=journey.state,
            link=_transaction_link(journey.correlation_id),
        )
    ]
    for leg in legs:
        if leg.state == PENDING:
            continue  # not started: listed under "waiting on", not as something that happened
        attempts = f"; attempts {leg.attempts}" if leg.attempts else ""
        said = leg.outcome or leg.error or ""
        steps.append(
            Step(
                leg.updated_at,
                "leg",
                f"Journey leg {leg.name} ({_service(leg.class_, leg.organisation)})",
                "; ".join(p for p in (said, f"policy {leg.policy}{attempts}") if p),
                state=leg.state,
                link=_transaction_link(leg.correlation_id) if leg.correlation_id else None,
            )
        )
    if journey.finished_at is not None:
        steps.append(
            Step(
                journey.finished_at,
                "journey",
                f"Joined-up journey {journey.kind} finished: {journey.state.replace('_', ' ')}",
                journey.explanation or "",
                state=journey.state,
                link=_transaction_link(journey.correlation_id),
            )
        )
    return steps


def _journey_waiting(journey: Journey, legs: Sequence[JourneyLeg]) -> list[Waiting]:
    if journey.state in FINAL_JOURNEY_STATES:
        return []
    active = [leg for leg in legs if leg.state == SUBMITTED]
    # What holds the journey up is its submitted leg; the legs after it wait on that one.
    since = min((leg.updated_at for leg in active), default=journey.updated_at)
    out = [
        Waiting(
            since,
            f"journey {journey.correlation_id}, leg {leg.name} "
            f"({_service(leg.class_, leg.organisation)}): submitted as {leg.correlation_id}, "
            "awaiting the answer",
        )
        for leg in active
    ]
    later = [leg for leg in legs if leg.state == PENDING]
    if later:
        names = ", ".join(
            f"leg {leg.name} ({_service(leg.class_, leg.organisation)})" for leg in later
        )
        out.append(Waiting(since, f"journey {journey.correlation_id}: not yet submitted: {names}"))
    if not out:
        out.append(
            Waiting(
                since,
                f"journey {journey.correlation_id}: in progress, awaiting the coordinator",
            )
        )
    return out


def pounds(pence: int) -> str:
    return f"£{pence // 100:,}.{pence % 100:02d}"


def _payment_steps(row: PaymentRow) -> list[Step]:
    link = _query_link("/console/services/payments", id=row.id)
    steps = [
        Step(
            row.created_at,
            "payment",
            f"Payment {row.id} of {pounds(row.amount_pence)} to {row.organisation} created",
            f"reference {row.reference}: {row.description}",
            state=lifecycle.CREATED,
            link=link,
        )
    ]
    if row.finished_at is not None:
        failure = f" ({row.failure_code})" if row.failure_code else ""
        refunded = f"; refunded {pounds(row.refunded_pence)}" if row.refunded_pence else ""
        steps.append(
            Step(
                row.finished_at,
                "payment",
                f"Payment {row.id}: {row.state}{failure}",
                f"{pounds(row.amount_pence)} to {row.organisation}{refunded}",
                state=row.state,
                link=link,
            )
        )
    return steps


def _payment_waiting(row: PaymentRow) -> list[Waiting]:
    if row.state in OPEN_PAYMENT_STATES:
        page = "the card page opened" if row.state == lifecycle.STARTED else "created"
        return [
            Waiting(
                row.created_at,
                f"payment {row.id} ({pounds(row.amount_pence)} to {row.organisation}): {page}, "
                "not completed by the citizen",
            )
        ]
    if row.notify_state == NOTIFY_PENDING:
        return [
            Waiting(
                row.finished_at or row.updated_at,
                f"payment {row.id}: paid, the council's system not yet told "
                f"(attempts {row.notify_attempts})",
            )
        ]
    return []


def _mail_steps(row: MailMessageRow) -> list[Step]:
    # Metadata only: subjects and bodies stay encrypted; the timeline never needs them.
    link = _query_link("/console/services/mail", user_id=row.user_id)
    if row.direction == TO_CITIZEN:
        steps = [
            Step(
                row.created_at,
                "mail",
                f"Secure message from {row.sender} ({row.organisation})",
                f"about {row.key_type} {row.key_value}",
                state="read" if row.read_at else "unread",
                link=link,
            )
        ]
        if row.read_at is not None:
            steps.append(
                Step(
                    row.read_at, "mail", f"Message from {row.sender} read", state="read", link=link
                )
            )
        return steps
    delivered = f"delivered {_when(row.delivered_at)}" if row.delivered_at else "not yet delivered"
    return [
        Step(
            row.created_at,
            "mail",
            f"Reply to {row.organisation}",
            delivered,
            state="delivered" if row.delivered_at else "pending",
            link=link,
        )
    ]


def _mail_waiting(row: MailMessageRow, now: datetime) -> list[Waiting]:
    if row.direction == TO_CITIZEN:
        if row.read_at is None and (row.expires_at is None or row.expires_at > now):
            return [Waiting(row.created_at, f"the citizen: unread message from {row.sender}")]
        return []
    if row.delivered_at is None:
        return [
            Waiting(
                row.created_at,
                f"reply to {row.organisation}: awaiting delivery to the council's system "
                f"(attempts {row.delivery_attempts})",
            )
        ]
    return []


def _transaction_link(correlation_id: str) -> str:
    return f"/console/transactions/{quote(correlation_id, safe='')}"


def _query_link(path: str, **params: str) -> str:
    # Stored values came from outside (user IDs, payment IDs): encoded, never pasted into a URL.
    return f"{path}?{urlencode(params)}"


def _keys(keys: dict[str, str] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((keys or {}).items()))


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else ""


# --- HTTP ----------------------------------------------------------------------------------------


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/journeys", journeys_page)


async def journeys_page(request: web.Request) -> web.Response:
    """Search citizens; with ?user_id=, that citizen's timeline."""
    from gateway.console import layout
    from gateway.web.app import CLOCK  # here, not at the top: app.py imports the console
    from gateway.web.keys import DB

    db = request.app[DB]
    query = request.query.get("q", "").strip()[:64]
    user_id = request.query.get("user_id", "").strip()[:64]
    number = page_number(request.query.get("page"))
    timeline = found = None
    if user_id:
        timeline = await citizen_timeline(db, user_id, now=request.app[CLOCK](), number=number)
    elif query:
        found = await find_citizens(db, query, number)
    return layout.html(
        request,
        "journeys.html",
        status=404 if user_id and timeline is None else 200,
        section="journeys",
        query=query,
        user_id=user_id,
        found=found,
        timeline=timeline,
        per_kind=PER_KIND,
    )
