"""Citizens and their enrolments in the hub's store, read through a short per-process cache.

Every submission needs the sender's password hash and active enrolments, and its delivery needs
the enrolments again: two read transactions each, about 2 ms of the hub's CPU, for rows that
rarely change. They are cached for CACHE_SECONDS. A commit in this process that touches a citizen
or an enrolment empties the cache at once (a session event, so no writer can forget to); a
change made by another process (the CLI, another worker) applies within CACHE_SECONDS.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from connectors.protocol import Enrolment
from gateway.clock import utcnow
from gateway.identity.passwords import hash_password
from gateway.identity.single_flight import SingleFlight
from gateway.store.engine import Database
from gateway.store.models import ACTIVE, Citizen, EnrolmentRow

CACHE_SECONDS = 1.0
CACHE_SIZE = 4096
# The cache's own clock (monotonic, so the hub's movable clock does not stretch staleness).
_monotonic = time.monotonic


@dataclass(frozen=True, slots=True)
class Known:
    """What authentication needs of a citizen: stored secrets and active enrolments."""

    password_hash: str | None
    md5_hash: str | None
    enrolments: tuple[Enrolment, ...]


@dataclass(slots=True)
class _Entry:
    known: Known | None  # None: no such citizen (also worth remembering briefly)
    until: float
    generation: int


_caches: weakref.WeakKeyDictionary[Database, OrderedDict[str, _Entry]] = weakref.WeakKeyDictionary()
_loading: weakref.WeakKeyDictionary[Database, SingleFlight[tuple[str, int], Known | None]] = (
    weakref.WeakKeyDictionary()
)
# Bumped by every commit in this process that changed a citizen or an enrolment.
_generation = 0


async def find(db: Database, user_id: str) -> Citizen | None:
    async with db.read() as session:
        return await session.get(Citizen, user_id)


async def lookup(db: Database, user_id: str) -> Known | None:
    """The citizen's secrets and active enrolments, as of at most CACHE_SECONDS ago."""
    cache = _caches.setdefault(db, OrderedDict())
    entry = cache.get(user_id)
    now = _monotonic()
    if entry is not None and entry.until > now and entry.generation == _generation:
        return entry.known
    # One read for a burst of misses (32 clients whose entry expired at the same moment), but
    # never one that started before a change this process has since committed.
    generation = _generation
    return await _loading.setdefault(db, SingleFlight()).run(
        (user_id, generation), lambda: _refresh(db, cache, user_id, generation)
    )


async def _refresh(
    db: Database, cache: OrderedDict[str, _Entry], user_id: str, generation: int
) -> Known | None:
    known = await _load(db, user_id)
    cache[user_id] = _Entry(known, _monotonic() + CACHE_SECONDS, generation)
    cache.move_to_end(user_id)
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return known


async def _load(db: Database, user_id: str) -> Known | None:
    async with db.read() as session:
        citizen = await session.get(Citizen, user_id)
        if citizen is None:
            return None
        rows = await session.scalars(
            select(EnrolmentRow).where(
                EnrolmentRow.user_id == user_id, EnrolmentRow.state == ACTIVE
            )
        )
        return Known(
            password_hash=citizen.password_hash,
            md5_hash=citizen.md5_hash,
            enrolments=tuple(Enrolment(r.class_, r.organisation, dict(r.keys)) for r in rows),
        )


async def enrolments(db: Database, user_id: str) -> tuple[Enrolment, ...]:
    """The citizen's active enrolments: the only ones whose Keys a submission may carry."""
    known = await lookup(db, user_id)
    return known.enrolments if known is not None else ()


@event.listens_for(Session, "after_flush")
def _note_identity_change(session: Session, _context: Any) -> None:
    changed = (*session.new, *session.dirty, *session.deleted)
    if any(isinstance(obj, (Citizen, EnrolmentRow)) for obj in changed):
        session.info["identity_changed"] = True


@event.listens_for(Session, "do_orm_execute")
def _note_bulk_identity_change(state: Any) -> None:
    # An UPDATE or DELETE statement on these tables changes rows the session never loaded.
    if (state.is_update or state.is_delete) and any(
        mapper.class_ in (Citizen, EnrolmentRow) for mapper in state.all_mappers
    ):
        state.session.info["identity_changed"] = True


@event.listens_for(Session, "after_commit")
def _forget_on_commit(session: Session) -> None:
    global _generation
    if session.info.pop("identity_changed", False):
        _generation += 1


@event.listens_for(Session, "after_rollback")
def _nothing_changed(session: Session) -> None:
    session.info.pop("identity_changed", None)


async def register(
    db: Database,
    user_id: str,
    password: str,
    *,
    display_name: str = "",
    enrol: Iterable[tuple[str, str, Mapping[str, str]]] = (),
) -> None:
    """Create a citizen with password and enrolments (class, organisation, keys)."""
    password_hash, md5_hash = hash_password(password)
    now = utcnow()
    async with db.transaction() as session:
        session.add(
            Citizen(
                user_id=user_id,
                display_name=display_name,
                password_hash=password_hash,
                md5_hash=md5_hash,
                created_at=now,
            )
        )
        await session.flush()
        for class_, organisation, keys in enrol:
            session.add(
                EnrolmentRow(
                    user_id=user_id,
                    class_=class_,
                    organisation=organisation,
                    keys=dict(keys),
                    created_at=now,
                )
            )


async def existing_user_ids(db: Database, user_ids: Sequence[str]) -> set[str]:
    async with db.read() as session:
        rows = await session.scalars(select(Citizen.user_id).where(Citizen.user_id.in_(user_ids)))
        return set(rows)
