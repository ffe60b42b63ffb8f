"""Transaction volumes for reports: stored submissions counted per (organisation, base class).

Read-only. Every stored submission counts, in any state, but tests: a GatewayTest submission or a
test-in-live one (checked, not processed) is not a citizen's transaction. Purged ones are gone from
the table and so are not counted (gateway/routing/bvpi157.py's VOLUMES_NOTE says so in the
report).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from gateway.store.models import Submission

if TYPE_CHECKING:
    from gateway.store.engine import Database


async def submission_volumes(
    db: Database, *, organisations: Collection[str] | None = None
) -> dict[tuple[str, str], int]:
    """(organisation, base class) → stored submissions; only `organisations`' when given."""
    query = (
        select(Submission.organisation, Submission.base_class, func.count())
        .where(Submission.gateway_test.is_(False), Submission.test_in_live.is_(False))
        .group_by(Submission.organisation, Submission.base_class)
    )
    if organisations is not None:
        query = query.where(Submission.organisation.in_(sorted(organisations)))
    async with db.read() as session:
        rows = (await session.execute(query)).all()
    return {(org, class_): int(count) for org, class_, count in rows}
