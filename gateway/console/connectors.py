"""The connectors page: health, latency, errors, dead letters (replay) and fault profiles."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from sqlalchemy import select

from gateway.audit.log import audit
from gateway.console import auth, layout
from gateway.errors import ProblemError
from gateway.routing import fault_control
from gateway.routing.faults import ANY_TYPE, CATALOGUE_ENTRIES, FaultProfile, FaultSpec
from gateway.store import submissions as store
from gateway.store.audit_models import AuditRecord
from gateway.store.engine import Database
from gateway.store.models import DeadLetter
from gateway.web.keys import CONFIG, DB, DISPATCHER, ROUTES

# Health, latency and error rates are over this recent window of connector calls.
WINDOW = timedelta(minutes=15)
MAX_CALLS = 20_000  # records read for the window, newest first: a busy hub's page stays quick
_CALLS = ("dispatch.answered", "dispatch.timeout", "dispatch.connector_error")
_NOTICES = {
    "fault-set": "Fault set on {}: the next transactions it handles meet it.",
    "fault-cleared": "Fault cleared on {}.",
    "replayed": "Dead letter {} queued for delivery again.",
}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/connectors", list_view)
    app.router.add_post("/console/connectors/{connector}/fault", set_fault_view)
    app.router.add_post("/console/connectors/{connector}/fault/clear", clear_fault_view)
    app.router.add_post("/console/dead-letters/{id}/replay", replay_view)


# --- what the window of calls says ------------------------------------------------------------


@dataclass
class Stats:
    """One connector's calls in the window."""

    name: str
    type: str
    routes: list[str]
    fault: FaultProfile | None = None
    latencies: list[float] = field(default_factory=list)
    calls: int = 0
    ok: int = 0
    business: int = 0
    retries: int = 0
    failures: int = 0
    recent: list[bool] = field(default_factory=list)  # newest first: whether the call worked
    last_at: datetime | None = None
    # While its work queues: how long the first due submission has waited, and the PollInterval
    # clients are asked for (routing/pacing.py).
    queue: tuple[float, int] | None = None

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile of the call durations, in seconds."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.calls if self.calls else None

    @property
    def health(self) -> str:
        """idle (no calls), failing (the last five failed), degraded (over 10 %), healthy."""
        if not self.calls:
            return "idle"
        if len(self.recent) >= 1 and not any(self.recent[:5]):
            return "failing"
        if (self.error_rate or 0) > 0.1:
            return "degraded"
        return "healthy"


def _count(stats: Stats, record: AuditRecord) -> None:
    d = record.detail or {}
    stats.calls += 1
    stats.last_at = stats.last_at or record.at
    worked = False
    if record.event == "dispatch.answered":
        result = d.get("result")
        if result == "Response":
            stats.ok += 1
            worked = True
        elif result == "BusinessError":
            stats.business += 1  # the back office answered: a refusal, not a failure
            worked = True
        elif result == "Retry":
            stats.retries += 1
            worked = True
        else:
            stats.failures += 1
        if isinstance(d.get("seconds"), int | float):
            stats.latencies.append(float(d["seconds"]))
    elif record.event == "dispatch.timeout":
        stats.failures += 1
        if isinstance(d.get("timeout"), int | float):
            stats.latencies.append(float(d["timeout"]))
    else:
        stats.failures += 1
        if isinstance(d.get("seconds"), int | float):
            stats.latencies.append(float(d["seconds"]))
    stats.recent.append(worked)


async def connector_stats(request: web.Request) -> list[Stats]:
    """Every configured connector, with its routes, fault and the window's calls."""
    from gateway.web.app import CLOCK  # app.py imports the console

    config, db = request.app[CONFIG], request.app[DB]
    routes: dict[str, list[str]] = {}
    for route in request.app[ROUTES]:
        routes.setdefault(route.connector, []).append(f"{route.class_} @ {route.organisation}")
    faults = {f.connector: f for f in await fault_control.list_faults(db)}
    found = {
        c.name: Stats(c.name, c.type, routes.get(c.name, []), faults.get(c.name))
        for c in config.connectors
    }
    since = request.app[CLOCK]() - WINDOW
    async with db.read() as session:
        records = await session.scalars(
            select(AuditRecord)
            .where(AuditRecord.event.in_(_CALLS), AuditRecord.at >= since)
            .order_by(AuditRecord.seq.desc())
            .limit(MAX_CALLS)
        )
        for record in records:
            stats = found.get(str((record.detail or {}).get("connector")))
            if stats is not None:
                _count(stats, record)
    waits = request.app[DISPATCHER].queue_waits() if DISPATCHER in request.app else {}
    for name, queue in waits.items():
        if name in found:
            found[name].queue = queue
    return list(found.values())


async def dead_letters(db: Database) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """Dead letters waiting (all, oldest first) and the last twenty replayed."""
    async with db.read() as session:
        waiting = await session.scalars(
            select(DeadLetter).where(DeadLetter.replayed_at.is_(None)).order_by(DeadLetter.id)
        )
        replayed = await session.scalars(
            select(DeadLetter)
            .where(DeadLetter.replayed_at.is_not(None))
            .order_by(DeadLetter.replayed_at.desc())
            .limit(20)
        )
        return list(waiting), list(replayed)


def faults_for(connector_type: str) -> list[FaultSpec]:
    return [
        s for s in CATALOGUE_ENTRIES if ANY_TYPE in s.applies_to or connector_type in s.applies_to
    ]


# --- views ------------------------------------------------------------------------------------


async def list_view(request: web.Request) -> web.Response:
    return await _page(request)


async def _page(
    request: web.Request, *, status: int = 200, problem: str = "", problem_connector: str = ""
) -> web.Response:
    waiting, replayed = await dead_letters(request.app[DB])
    notice = ""
    kind, subject = request.query.get("done", ""), request.query.get("subject", "")
    names = {c.name for c in request.app[CONFIG].connectors}
    # Only names and numbers this hub knows go into the notice: no text from a crafted link.
    if kind in _NOTICES and (subject in names or (kind == "replayed" and subject.isdigit())):
        notice = _NOTICES[kind].format(subject)
    return layout.html(
        request,
        "connectors.html",
        status=status,
        section="connectors",
        connectors=await connector_stats(request),
        window_minutes=int(WINDOW.total_seconds() // 60),
        waiting=waiting,
        replayed=replayed,
        faults_for=faults_for,
        notice=notice,
        problem=problem,
        problem_connector=problem_connector,
    )


def _params(spec: FaultSpec, form: Any) -> dict[str, Any]:
    """The form's fields for the fault's parameters, as the catalogue's types (blank: default)."""
    params: dict[str, Any] = {}
    for param in spec.params:
        raw = str(form.get(f"param-{param.name}", "")).strip()
        if not raw:
            continue
        if param.kind in ("number", "integer"):
            try:
                number = float(raw)
            except ValueError:
                params[param.name] = raw  # refused by the check, in its words
                continue
            params[param.name] = int(number) if number.is_integer() else number
        else:
            params[param.name] = raw
    return params


def _back(done: str, subject: str, anchor: str = "") -> str:
    """The connectors page again, saying what was done (post/redirect/get)."""
    query = urlencode({"done": done, "subject": subject})
    return f"/console/connectors?{query}#{quote(anchor or 'c-' + subject)}"


def _changed(request: web.Request) -> None:
    # This process's dispatcher applies the change at once; others within their cache interval.
    if DISPATCHER in request.app:
        request.app[DISPATCHER].faults.forget()


async def set_fault_view(request: web.Request) -> web.StreamResponse:
    from gateway.web.app import CLOCK  # app.py imports the console

    name = request.match_info["connector"]
    form = await request.post()
    fault = str(form.get("fault", ""))
    spec = next((s for s in CATALOGUE_ENTRIES if s.name == fault), None)
    try:
        await fault_control.set_fault(
            request.app[DB],
            request.app[CONFIG].connectors,
            name,
            fault,
            _params(spec, form) if spec else {},
            now=request.app[CLOCK](),
            via="console",
            actor=auth.admin_name(request),
        )
    except ProblemError as exc:
        if exc.status == 404:
            raise
        return await _page(request, status=exc.status, problem=exc.detail, problem_connector=name)
    _changed(request)
    raise web.HTTPSeeOther(_back("fault-set", name))


async def clear_fault_view(request: web.Request) -> web.StreamResponse:
    name = request.match_info["connector"]
    await fault_control.clear_fault(
        request.app[DB], name, via="console", actor=auth.admin_name(request)
    )
    _changed(request)
    raise web.HTTPSeeOther(_back("fault-cleared", name))


async def replay_view(request: web.Request) -> web.StreamResponse:
    """Queue a dead letter again: the same function as `gateway deadletters replay ID`."""
    from gateway.web.app import CLOCK  # app.py imports the console

    try:
        letter_id = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    correlation_id = await store.replay(request.app[DB], letter_id, request.app[CLOCK]())
    if correlation_id is None:
        raise ProblemError(
            409,
            "Conflict",
            f"dead letter {letter_id} does not exist, was replayed already, or its "
            "submission is gone",
        )
    audit(
        "admin.dead_letter_replayed",
        actor=auth.admin_name(request),
        correlation_id=correlation_id,
        dead_letter=letter_id,
        via="console",
    )
    if DISPATCHER in request.app:
        request.app[DISPATCHER].wake()
    raise web.HTTPSeeOther(_back("replayed", str(letter_id), "dead-letters"))
