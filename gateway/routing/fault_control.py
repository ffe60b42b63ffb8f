"""Setting, listing and clearing connector faults: the one path the admin API and the CLI share.

Faults live in the `connector_faults` table so every hub process on the database sees them
(within the dispatcher's cache interval). Every set and clear is logged as a structured
`faults.set` / `faults.cleared` event naming the connector, the fault, its parameters and the
channel (api, cli); the tamper-evident audit trail is a later issue and will record these events
from `_record` too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.audit import log as audit_log
from gateway.config import ConnectorConfig
from gateway.routing.faults import FaultProfile, NoFaultSet, profile_for
from gateway.store.engine import Database
from gateway.store.fault_models import ConnectorFault

log = structlog.get_logger("gateway.faults")


async def list_faults(db: Database) -> list[FaultProfile]:
    """Every fault set, by connector name."""
    async with db.read() as session:
        rows = await session.scalars(select(ConnectorFault).order_by(ConnectorFault.connector))
        return [_profile(row) for row in rows]


async def set_fault(
    db: Database,
    connectors: Iterable[ConnectorConfig],
    connector: str,
    fault: object,
    params: object,
    *,
    now: datetime,
    via: str,
    actor: str | None = None,
    logger: Any = None,
) -> FaultProfile:
    """Check and store the fault (replacing any the connector had); refusals are ProblemErrors.

    `via` names the channel (api, console, cli) in the log event and `actor` the admin, where
    known; `logger` replaces the module's logger (the CLI's writes to stderr, leaving stdout to
    the command's answer).
    """
    profile = profile_for(connectors, connector, fault, params, now)
    for last_try in (False, True):
        try:
            async with db.transaction() as session:
                row = await session.get(ConnectorFault, connector)
                if row is None:
                    row = ConnectorFault(connector=connector)
                    session.add(row)
                row.fault, row.params, row.set_at = profile.fault, dict(profile.params), now
            break
        except IntegrityError:
            # Another admin set this connector's first fault at the same moment: theirs is in,
            # so this one replaces it, as it would have a moment later.
            if last_try:
                raise
    _record(logger or log, "faults.set", profile, via, actor)
    return profile


async def clear_fault(
    db: Database, connector: str, *, via: str, actor: str | None = None, logger: Any = None
) -> FaultProfile:
    """Remove the connector's fault; NoFaultSet (404) if it had none.

    Not checked against the configuration: a fault left on a connector since removed from it
    can still be cleared.
    """
    async with db.transaction() as session:
        row = await session.get(ConnectorFault, connector)
        if row is None:
            raise NoFaultSet(connector)
        removed = _profile(row)
        await session.delete(row)
    _record(logger or log, "faults.cleared", removed, via, actor)
    return removed


def _profile(row: ConnectorFault) -> FaultProfile:
    params: dict[str, Any] = dict(row.params)
    return FaultProfile(row.connector, row.fault, params, row.set_at)


def _record(logger: Any, event: str, profile: FaultProfile, via: str, actor: str | None) -> None:
    fields: dict[str, Any] = {
        "connector": profile.connector,
        "fault": profile.fault,
        "params": dict(profile.params),
        "via": via,
    }
    logger.info(event, actor=actor, **fields)
    trail = audit_log.current.get()
    if trail is not None:  # an admin action: into the tamper-evident trail too
        trail.record(f"admin.{event}", actor=actor, **fields)
