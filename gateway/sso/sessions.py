"""Sign-on sessions: one sign-in, shared by every portal, ended everywhere at once."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.claims import claim
from gateway.store.engine import Database
from gateway.store.sso_models import SsoSession, SsoSessionClient

PASSWORD = "password"
CERTIFICATE = "certificate"

# A portal's back-channel logout: owed (pending) from the sign-out, done once the portal
# answers 200/204, failed when it still had not 12 hours after (then audited).
LOGOUT_PENDING, LOGOUT_DONE, LOGOUT_FAILED = "pending", "done", "failed"
LOGOUT_FIRST_RETRY = timedelta(seconds=30)
LOGOUT_MAX_RETRY = timedelta(minutes=10)
LOGOUT_GIVE_UP = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class OwedLogout:
    """A back-channel logout still to be sent: the session, the portal, the citizen."""

    sid: str
    client_id: str
    user_id: str | None  # None when the session had expired before it was ended


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    user_id: str
    auth_method: str
    cert_thumbprint: str | None
    auth_time: datetime
    expires_at: datetime

    @classmethod
    def of(cls, row: SsoSession) -> Session:
        return cls(
            row.sid,
            row.user_id,
            row.auth_method,
            row.cert_thumbprint,
            row.auth_time,
            row.expires_at,
        )

    @property
    def level(self) -> int:
        """The Gateway's authentication level: 2 with a certificate, 1 with a password."""
        return 2 if self.auth_method == CERTIFICATE else 1


class SessionStore:
    def __init__(self, db: Database, clock: Callable[[], datetime], lifetime: timedelta) -> None:
        self._db = db
        self._clock = clock
        self._lifetime = lifetime

    async def start(
        self, user_id: str, method: str, cert_thumbprint: str | None
    ) -> tuple[Session, str]:
        """A new session and the secret for the browser's cookie (kept only as its hash)."""
        now = self._clock()
        # The sid is public (portals get it in every token); the cookie must not be derivable
        # from it, or any portal could sign in as the citizen at every other.
        cookie = secrets.token_urlsafe(32)
        row = SsoSession(
            sid=secrets.token_urlsafe(32),
            cookie_hash=cookie_digest(cookie),
            user_id=user_id,
            auth_method=method,
            cert_thumbprint=cert_thumbprint,
            auth_time=now,
            expires_at=now + self._lifetime,
        )
        async with self._db.transaction() as session:
            session.add(row)
        return Session.of(row), cookie

    async def active(self, sid: str | None) -> Session | None:
        """The session with this (public) sid if it has neither ended nor expired."""
        if not sid or len(sid) > 64:
            return None
        async with self._db.read() as session:
            row = await session.get(SsoSession, sid)
        return self._live(row)

    async def by_cookie(self, cookie: str | None) -> Session | None:
        """The session a browser's cookie holds, if it has neither ended nor expired."""
        return self._live(await self._cookie_row(cookie))

    async def cookie_sid(self, cookie: str | None) -> str | None:
        """The public sid of the session a browser's cookie holds, ended or not."""
        row = await self._cookie_row(cookie)
        return row.sid if row is not None else None

    async def _cookie_row(self, cookie: str | None) -> SsoSession | None:
        if not cookie or len(cookie) > 64:
            return None
        async with self._db.read() as session:
            return await session.scalar(
                select(SsoSession).where(SsoSession.cookie_hash == cookie_digest(cookie))
            )

    def _live(self, row: SsoSession | None) -> Session | None:
        if row is None or row.ended_at is not None or row.expires_at <= self._clock():
            return None
        return Session.of(row)

    async def join(self, sid: str, client_id: str) -> None:
        """Record that a portal holds tokens from this session (to tell it of sign-out)."""
        try:
            async with self._db.transaction() as session:
                if await session.get(SsoSessionClient, (sid, client_id)) is None:
                    session.add(
                        SsoSessionClient(sid=sid, client_id=client_id, first_at=self._clock())
                    )
        except IntegrityError:
            pass  # a concurrent token request recorded it first

    async def end(self, sid: str, *, retry_from: timedelta) -> list[str]:
        """End the session; the portals that joined it, or [] if it had already ended.

        Each portal is owed a back-channel logout from now on, in the same transaction: the
        caller tells them at once, and the retry pass takes over `retry_from` later any it could
        not (or all of them, if this process dies first).
        """
        now = self._clock()
        async with self._db.transaction() as session:
            result = await session.execute(
                update(SsoSession)
                .where(SsoSession.sid == sid, SsoSession.ended_at.is_(None))
                .values(ended_at=now)
            )
            if not getattr(result, "rowcount", 0):
                return []
            joined = list(
                await session.scalars(
                    select(SsoSessionClient.client_id).where(SsoSessionClient.sid == sid)
                )
            )
            await session.execute(
                update(SsoSessionClient)
                .where(SsoSessionClient.sid == sid)
                .values(logout_state=LOGOUT_PENDING, logout_next_at=now + retry_from)
            )
            return joined

    async def logouts_due(self, claim_for: timedelta) -> list[OwedLogout]:
        """Back-channel logouts due again, claimed for `claim_for` so no other hub sends them."""
        now = self._clock()
        async with self._db.read() as session:
            rows = (
                await session.execute(
                    select(
                        SsoSessionClient.sid,
                        SsoSessionClient.client_id,
                        SsoSessionClient.logout_next_at,
                        SsoSession.user_id,
                    )
                    .join(SsoSession, SsoSession.sid == SsoSessionClient.sid)
                    .where(
                        SsoSessionClient.logout_state == LOGOUT_PENDING,
                        SsoSessionClient.logout_next_at <= now,
                    )
                    .limit(100)
                )
            ).all()
        if not rows:
            return []
        # Of several hubs sharing the database, the one that claims a logout sends it.
        async with self._db.transaction() as session:
            claimed = await claim(
                session,
                SsoSessionClient,
                (SsoSessionClient.sid, SsoSessionClient.client_id),
                SsoSessionClient.logout_next_at,
                [((row.sid, row.client_id), row.logout_next_at) for row in rows],
                now + claim_for,
                SsoSessionClient.logout_state == LOGOUT_PENDING,
            )
        return [
            OwedLogout(row.sid, row.client_id, row.user_id)
            for row in rows
            if (row.sid, row.client_id) in claimed
        ]

    async def logout_outcome(self, sid: str, client_id: str, error: str | None) -> bool:
        """Record a back-channel logout attempt; True if it was given up on with this one."""
        now = self._clock()
        async with self._db.transaction() as session:
            row = await session.get(SsoSessionClient, (sid, client_id), with_for_update=True)
            ended = await session.scalar(select(SsoSession.ended_at).where(SsoSession.sid == sid))
            if row is None or row.logout_state != LOGOUT_PENDING:
                return False
            row.logout_attempts += 1
            row.logout_error = error
            if error is None:
                row.logout_state, row.logout_next_at = LOGOUT_DONE, None
                return False
            if ended is None or now - ended >= LOGOUT_GIVE_UP:
                row.logout_state, row.logout_next_at = LOGOUT_FAILED, None
                return True
            delay = LOGOUT_FIRST_RETRY * 2 ** min(row.logout_attempts - 1, 10)
            row.logout_next_at = now + min(delay, LOGOUT_MAX_RETRY)
            return False


def cookie_digest(cookie: str) -> str:
    """How a cookie is stored: a 256-bit random secret needs no salt or slow hash."""
    return hashlib.sha256(cookie.encode("ascii", "replace")).hexdigest()


# Kept a day after they expire or end: long enough for a portal's late back-channel or userinfo
# call to be told "ended" rather than "unknown", short enough that the table does not only grow.
KEEP_ENDED = timedelta(days=1)


async def purge(db: Database, now: datetime) -> int:
    """Remove sessions that expired or ended more than KEEP_ENDED ago, with who joined them,
    unless a portal is still owed its back-channel logout (a long-expired session ended late)."""
    before = now - KEEP_ENDED
    owing = select(SsoSessionClient.sid).where(SsoSessionClient.logout_state == LOGOUT_PENDING)
    gone = and_(
        or_(SsoSession.expires_at < before, SsoSession.ended_at < before),
        SsoSession.sid.not_in(owing),
    )
    async with db.transaction() as session:
        # Explicit, not left to ON DELETE CASCADE: SQLite applies it only with foreign keys on.
        await session.execute(
            delete(SsoSessionClient).where(
                SsoSessionClient.sid.in_(select(SsoSession.sid).where(gone))
            )
        )
        result = await session.execute(delete(SsoSession).where(gone))
    return int(getattr(result, "rowcount", 0))
