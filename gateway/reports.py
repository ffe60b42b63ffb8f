"""Reports over the route table and the hub's database: for the CLI, the admin API, the console."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from gateway.routing.bvpi157 import Bvpi157Report, build_report, check_council, organisations_of
from gateway.store.volumes import submission_volumes

if TYPE_CHECKING:
    from gateway.config import RouteConfig
    from gateway.store.engine import Database


async def bvpi157_report(
    db: Database,
    routes: Iterable[RouteConfig],
    *,
    as_of: datetime,
    council: str | None = None,
) -> Bvpi157Report:
    """BVPI 157 per council, or for `council` alone (UnknownCouncil, before any query, if none)."""
    routes = tuple(routes)
    organisations = None
    if council is not None:
        check_council(routes, council)
        organisations = organisations_of(routes, council)
    volumes = await submission_volumes(db, organisations=organisations)
    return build_report(routes, volumes, as_of=as_of, council=council)
