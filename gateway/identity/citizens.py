"""Citizens and their enrolments in the hub's store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import select

from connectors.protocol import Enrolment
from gateway.clock import utcnow
from gateway.identity.passwords import hash_password
from gateway.store.engine import Database
from gateway.store.models import ACTIVE, Citizen, EnrolmentRow


async def find(db: Database, user_id: str) -> Citizen | None:
    async with db.read() as session:
        return await session.get(Citizen, user_id)


async def enrolments(db: Database, user_id: str) -> tuple[Enrolment, ...]:
    """The citizen's active enrolments: the only ones whose Keys a submission may carry."""
    async with db.read() as session:
        rows = await session.scalars(
            select(EnrolmentRow).where(
                EnrolmentRow.user_id == user_id, EnrolmentRow.state == ACTIVE
            )
        )
        return tuple(Enrolment(r.class_, r.organisation, dict(r.keys)) for r in rows)


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
