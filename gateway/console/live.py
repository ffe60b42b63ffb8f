"""Live updates: a server-sent event stream that says "something changed".

Each open stream polls the database about once a second for a marker (the audit chain's last
sequence number, the latest answer, the last dead letter) rather than listening to this
process's events, so a page served by one worker of `serve --workers N` still hears about
transactions another worker handled. The page's script (static/console.js) then re-fetches the
page and swaps in its `data-live` regions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from gateway.store.audit_models import AuditRecord
from gateway.store.engine import Database
from gateway.store.models import LEASED, DeadLetter, Submission
from gateway.web.keys import DB

POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
# Streams end after this long; EventSource reconnects by itself. Keeps a forgotten tab from
# holding a connection (and a shutdown) forever.
STREAM_SECONDS = 300.0

_STOPPING = web.AppKey("console_live_stopping", asyncio.Event)


def add_routes(app: web.Application) -> None:
    app[_STOPPING] = asyncio.Event()
    app.on_shutdown.append(_stop_streams)
    app.router.add_get("/console/events", events_view)


async def _stop_streams(app: web.Application) -> None:
    # on_shutdown runs before the server waits for handlers: open streams end at once.
    app[_STOPPING].set()


async def marker(db: Database) -> list[Any]:
    """What moves whenever a transaction, an answer, a lease, a dead letter or an audit record does.

    Index lookups, cheap on a large table: the audit chain's last sequence number (every
    submission, answer, retry, replay, fault change, mail and payment event is a record), the
    latest purge_after (set when a submission is answered: the dispatcher's audit record can
    reach the trail before the answer is committed), the leased submissions' count and latest
    lease (a queued one taken by a dispatcher is audited only once answered) and the last dead
    letter.
    """
    async with db.read() as session:
        seq = await session.scalar(select(func.max(AuditRecord.seq)))
        answered = await session.scalar(select(func.max(Submission.purge_after)))
        leased = (
            await session.execute(
                select(func.count(), func.max(Submission.lease_until)).where(
                    Submission.state == LEASED
                )
            )
        ).one()
        letter = await session.scalar(select(func.max(DeadLetter.id)))
    return [seq, str(answered), leased[0], str(leased[1]), letter]


async def events_view(request: web.Request) -> web.StreamResponse:
    """text/event-stream: `changed` whenever the marker moves, a comment now and then."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # a proxy in front must not hold events back
        }
    )
    db = request.app[DB]
    # The baseline is read before the client hears the stream is open: the page fetches itself
    # again on `open` (console.js), so a change is either in that fetch or reported here.
    last = await marker(db)
    await response.prepare(request)
    stopping = request.app[_STOPPING]
    started = quiet_since = time.monotonic()
    with contextlib.suppress(ConnectionResetError):
        await response.write(b"retry: 2000\n\n")
        while not stopping.is_set() and time.monotonic() - started < STREAM_SECONDS:
            current = await marker(db)
            if current != last:
                data = json.dumps({"marker": current}, default=str)
                await response.write(f"event: changed\ndata: {data}\n\n".encode())
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                await response.write(b": keepalive\n\n")
                quiet_since = time.monotonic()
            last = current
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), POLL_SECONDS)
    return response
