"""The transactions page: the live list with filters, and one transaction's full story."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import func, select

from gateway.console import layout, xmlview
from gateway.errors import ProblemError
from gateway.store.audit_models import AuditRecord
from gateway.store.models import DeadLetter, Submission
from gateway.web.keys import CONFIG, DB, ROUTES

PAGE_SIZE = 50
STATES = ("queued", "leased", "response", "error")
_FILTERS = ("council", "class", "status", "citizen", "from", "to")
# The list never loads bodies: they can be large, and the story page shows them.
_LIST_COLUMNS = (
    Submission.correlation_id,
    Submission.received_at,
    Submission.class_,
    Submission.base_class,
    Submission.organisation,
    Submission.connector,
    Submission.sender_id,
    Submission.auth_method,
    Submission.state,
    Submission.attempts,
    Submission.answered_at,
    Submission.errors,
    Submission.last_error,
)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/transactions", list_view)
    app.router.add_get("/console/transactions/{correlation_id}", story_view)


# --- the list -------------------------------------------------------------------------------


@dataclass
class Filters:
    """The list's filters, as given in the query string (invalid values are reported)."""

    values: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, query: Any) -> Filters:
        found = cls({k: query.get(k, "").strip() for k in _FILTERS if query.get(k, "").strip()})
        found.since = found._time("from")
        found.until = found._time("to")
        if found.values.get("status") not in (None, *STATES, "pending"):
            found.problems.append(f"status must be one of {', '.join(STATES)} or pending")
            found.values.pop("status")
        return found

    def _time(self, name: str) -> datetime | None:
        text = self.values.get(name)
        if not text:
            return None
        try:
            parsed = datetime.fromisoformat(text)
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except (ValueError, OverflowError):  # overflow: an offset taking it past year 1 or 9999
            self.problems.append(f"'{name}' is not a date and time (YYYY-MM-DDTHH:MM, UTC)")
            self.values.pop(name)
            return None

    def apply(self, stmt: Any) -> Any:
        v = self.values
        if "council" in v:
            stmt = stmt.where(Submission.organisation == v["council"])
        if "class" in v:
            stmt = stmt.where(Submission.base_class == v["class"].removesuffix("-TIL"))
        if v.get("status") == "pending":
            stmt = stmt.where(Submission.state.in_(("queued", "leased")))
        elif "status" in v:
            stmt = stmt.where(Submission.state == v["status"])
        if "citizen" in v:
            stmt = stmt.where(Submission.sender_id == v["citizen"])
        if self.since is not None:
            stmt = stmt.where(Submission.received_at >= self.since)
        if self.until is not None:
            stmt = stmt.where(Submission.received_at <= self.until)
        return stmt

    def query(self, **extra: Any) -> str:
        """This filter set (and `extra`, e.g. a page) as a query string."""
        return urlencode({**self.values, **{k: v for k, v in extra.items() if v}})


def _page(query: Any) -> int:
    try:
        return max(1, min(10_000, int(query.get("page", "1"))))
    except ValueError:
        return 1


async def list_view(request: web.Request) -> web.Response:
    """Newest first, PAGE_SIZE a page, filtered by council, class, status, citizen and time."""
    filters = Filters.parse(request.query)
    page = _page(request.query)
    db = request.app[DB]
    async with db.read() as session:
        total = await session.scalar(filters.apply(select(func.count(Submission.correlation_id))))
        rows = (
            await session.execute(
                filters.apply(select(*_LIST_COLUMNS))
                .order_by(Submission.received_at.desc(), Submission.correlation_id.desc())
                .limit(PAGE_SIZE)
                .offset((page - 1) * PAGE_SIZE)
            )
        ).all()
    routes = request.app[ROUTES]
    total = int(total or 0)
    return await layout.render(
        request,
        "transactions.html",
        section="transactions",
        rows=[_row(r) for r in rows],
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        filters=filters,
        councils=sorted(routes.organisations().items()),
        classes=sorted({r.class_ for r in routes}),
        states=STATES,
    )


def _row(r: Any) -> dict[str, Any]:
    errors = r.errors or []
    return {
        "correlation_id": r.correlation_id,
        "received_at": r.received_at,
        "class_": r.class_,
        "organisation": r.organisation,
        "connector": r.connector,
        "sender_id": r.sender_id,
        "auth_method": r.auth_method,
        "state": r.state,
        "attempts": r.attempts,
        "answered_at": r.answered_at,
        "took": _seconds(r.received_at, r.answered_at),
        "error": f"{errors[0].get('number')} {errors[0].get('text', '')}" if errors else "",
    }


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return f"{(end - start).total_seconds():.3f} s"


# --- one transaction's story ------------------------------------------------------------------


async def story_view(request: web.Request) -> web.Response:
    """Received, authenticated how, routed where, each attempt, the answer, XML and audit."""
    correlation_id = request.match_info["correlation_id"]
    db = request.app[DB]
    async with db.read() as session:
        submission = await session.get(Submission, correlation_id)
        records = list(
            await session.scalars(
                select(AuditRecord)
                .where(AuditRecord.correlation_id == correlation_id)
                .order_by(AuditRecord.seq)
            )
        )
        letters = list(
            await session.scalars(
                select(DeadLetter)
                .where(DeadLetter.correlation_id == correlation_id)
                .order_by(DeadLetter.id)
            )
        )
    if submission is None and not records:
        raise ProblemError(
            404,
            "Not Found",
            f"No transaction with CorrelationID {correlation_id} is stored (it may have been "
            "deleted and purged).",
        )
    received = next((r for r in records if r.event == "dsp.received"), None)
    route = (
        request.app[ROUTES].get(submission.base_class, submission.organisation)
        if submission is not None
        else None
    )
    connector_type = next(
        (
            c.type
            for c in request.app[CONFIG].connectors
            if submission is not None and c.name == submission.connector
        ),
        None,
    )
    return await layout.render(
        request,
        "transaction.html",
        section="transactions",
        correlation_id=correlation_id,
        s=submission,
        received=received,
        route=route,
        connector_type=connector_type,
        attempts=attempts(records),
        took=_seconds(submission.received_at, submission.answered_at) if submission else "",
        request_xml=xmlview.pretty(submission.request_body) if submission else None,
        response_xml=(
            xmlview.pretty(submission.response_body)
            if submission is not None and submission.response_body is not None
            else None
        ),
        records=[_record(r) for r in records],
        dead_letters=letters,
    )


_ATTEMPT_ENDS = frozenset({"dispatch.answered", "dispatch.timeout", "dispatch.connector_error"})


@dataclass
class Attempt:
    """One delivery to the connector, as the audit trail tells it."""

    number: int
    at: datetime
    outcome: str
    connector: str
    seconds: float | None
    detail: str
    then: list[str] = field(default_factory=list)  # retry scheduled, dead-lettered


def attempts(records: list[AuditRecord]) -> list[Attempt]:
    """Each attempt from the dispatch.* records, with what the dispatcher did after it."""
    found: list[Attempt] = []
    for record in records:
        d = record.detail or {}
        if record.event in _ATTEMPT_ENDS:
            if record.event == "dispatch.answered":
                outcome, detail = str(d.get("result", "answered")), ""
                seconds = d.get("seconds")
            elif record.event == "dispatch.timeout":
                outcome, seconds = "timeout", d.get("seconds", d.get("timeout"))
                detail = f"no answer within {d.get('timeout')} s"
            else:
                outcome, seconds, detail = "connector error", d.get("seconds"), str(d.get("error"))
            found.append(
                Attempt(
                    number=int(d.get("attempt") or len(found) + 1),
                    at=record.at,
                    outcome=outcome,
                    connector=str(d.get("connector", "")),
                    seconds=float(seconds) if isinstance(seconds, int | float) else None,
                    detail=detail,
                )
            )
        elif record.event == "dispatch.retry" and found:
            found[-1].then.append(f"retry in {d.get('after')} s: {d.get('reason')}")
        elif record.event == "dispatch.dead_letter" and found:
            found[-1].then.append(
                f"given up after {d.get('attempts')} attempt(s): error {d.get('number')}, "
                "dead-lettered"
            )
    return found


def _record(r: AuditRecord) -> dict[str, Any]:
    return {
        "seq": r.seq,
        "at": r.at,
        "event": r.event,
        "outcome": r.outcome,
        "actor": r.actor or "",
        "detail": ", ".join(f"{k}={v}" for k, v in sorted((r.detail or {}).items())),
        "body_digest": r.body_digest or "",
    }
