"""Sign-on sessions do not pile up: a day after they expire or end they are removed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from gateway.clock import MovableClock
from gateway.sso import sessions as sso_sessions
from gateway.store.engine import Database
from gateway.store.sso_models import SsoSession, SsoSessionClient
from gateway.web.keys import DB, SSO
from tests.conftest import HubFactory

LIFETIME = timedelta(minutes=480)  # [sso] session_minutes, the default


async def sids(db: Database) -> set[str]:
    async with db.read() as session:
        return set(await session.scalars(select(SsoSession.sid)))


async def joined(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(SsoSessionClient)) or 0)


async def test_a_session_is_kept_a_day_after_it_ends_or_expires_then_removed(
    hub_factory: HubFactory,
) -> None:
    clock = MovableClock()
    hub = await hub_factory(clock=clock)  # purge pass hourly: called directly below
    db, store = hub.app[DB], hub.app[SSO].sessions
    start = clock()
    ended, _ = await store.start("DEMO0SUN0001", sso_sessions.PASSWORD, None)
    await store.join(ended.sid, "portal-a")
    assert await store.end(ended.sid, retry_from=timedelta(seconds=10)) == ["portal-a"]
    await store.logout_outcome(ended.sid, "portal-a", None)  # the portal was told
    expiring, _ = await store.start("DEMO0SED0001", sso_sessions.PASSWORD, None)

    # Ended a day ago less a minute: kept, and a portal asking is told it ended.
    assert await sso_sessions.purge(db, start + timedelta(days=1, minutes=-1)) == 0
    assert await sids(db) == {ended.sid, expiring.sid}
    # A day after it ended it goes, with the portals it told; the other has not expired yet.
    assert await sso_sessions.purge(db, start + timedelta(days=1, minutes=1)) == 1
    assert await sids(db) == {expiring.sid} and await joined(db) == 0
    # A day after it expired, the other goes too; one started since stays.
    clock.advance(LIFETIME + timedelta(days=1, minutes=1))
    live, _ = await store.start("DEMO0SUN0001", sso_sessions.CERTIFICATE, "thumb")
    assert await sso_sessions.purge(db, clock()) == 1
    assert await sids(db) == {live.sid}
    assert await store.active(live.sid) is not None


async def test_a_session_ended_long_after_it_expired_stays_while_a_portal_is_owed(
    hub_factory: HubFactory,
) -> None:
    clock = MovableClock()
    hub = await hub_factory(clock=clock)
    db, store = hub.app[DB], hub.app[SSO].sessions
    stale, _ = await store.start("DEMO0SUN0001", sso_sessions.PASSWORD, None)
    await store.join(stale.sid, "portal-a")
    clock.advance(LIFETIME + timedelta(days=2))
    assert await store.end(stale.sid, retry_from=timedelta(seconds=10)) == ["portal-a"]
    assert await sso_sessions.purge(db, clock()) == 0  # the logout is still owed
    await store.logout_outcome(stale.sid, "portal-a", None)  # told
    assert await sso_sessions.purge(db, clock()) == 1
    assert await sids(db) == set()


async def test_the_hubs_purge_pass_removes_them(hub_factory: HubFactory) -> None:
    clock = MovableClock()
    hub = await hub_factory({"retention": {"purge_interval_seconds": 0.05}}, clock=clock)
    db, store = hub.app[DB], hub.app[SSO].sessions
    old, _ = await store.start("DEMO0SUN0001", sso_sessions.PASSWORD, None)
    clock.advance(LIFETIME + timedelta(days=2))
    async with asyncio.timeout(10):
        while old.sid in await sids(db):  # noqa: ASYNC110 - the hub's own background pass
            await asyncio.sleep(0.05)
