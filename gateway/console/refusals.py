"""Refused requests: envelopes the hub answered with a GovTalk error before storing anything.

They never got a CorrelationID, so the transactions list cannot show them; a council testing its
client wants to see them first. They are the `dsp.refused` audit records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from sqlalchemy import select

from gateway.console import layout
from gateway.console.paging import PAGE_SIZE, Page, cut, page_number
from gateway.store.audit_models import AuditRecord
from gateway.store.engine import Database
from gateway.web.keys import DB

EVENT = "dsp.refused"


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused envelope, as its audit record tells it."""

    seq: int
    at: datetime
    number: int | None
    text: str
    class_: str
    sender: str
    request_id: str


def add_routes(app: web.Application) -> None:
    app.router.add_get("/console/refusals", refusals_view)


async def refusals(db: Database, number: int) -> Page[Refusal]:
    """A page of refusals, newest first (by the audit index on event, seq)."""
    async with db.read() as session:
        rows = await session.scalars(
            select(AuditRecord)
            .where(AuditRecord.event == EVENT)
            .order_by(AuditRecord.seq.desc())
            .offset((number - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE + 1)
        )
        return cut([_refusal(r) for r in rows], number)


def _refusal(record: AuditRecord) -> Refusal:
    detail = record.detail or {}
    found = detail.get("number")
    return Refusal(
        seq=record.seq,
        at=record.at,
        number=found if isinstance(found, int) else None,
        text=str(detail.get("text") or ""),
        class_=str(detail.get("class_") or ""),
        sender=str(detail.get("sender") or ""),
        request_id=str(detail.get("request_id") or ""),
    )


async def refusals_view(request: web.Request) -> web.Response:
    page = await refusals(request.app[DB], page_number(request.query.get("page")))
    return await layout.render(request, "refusals.html", section="transactions", page=page)
