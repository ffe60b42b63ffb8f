"""Sign-on sessions: one sign-in, shared by every portal, ended everywhere at once."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from gateway.store.engine import Database
from gateway.store.sso_models import SsoSession, SsoSessionClient

PASSWORD = "password"
CERTIFICATE = "certificate"


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

    async def start(self, user_id: str, method: str, cert_thumbprint: str | None) -> Session:
        now = self._clock()
        row = SsoSession(
            sid=secrets.token_urlsafe(32),
            user_id=user_id,
            auth_method=method,
            cert_thumbprint=cert_thumbprint,
            auth_time=now,
            expires_at=now + self._lifetime,
        )
        async with self._db.transaction() as session:
            session.add(row)
        return Session.of(row)

    async def active(self, sid: str | None) -> Session | None:
        """The session if it has neither ended nor expired."""
        if not sid or len(sid) > 64:
            return None
        async with self._db.read() as session:
            row = await session.get(SsoSession, sid)
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

    async def end(self, sid: str) -> list[str]:
        """End the session; the portals that joined it, or [] if it had already ended."""
        async with self._db.transaction() as session:
            result = await session.execute(
                update(SsoSession)
                .where(SsoSession.sid == sid, SsoSession.ended_at.is_(None))
                .values(ended_at=self._clock())
            )
            if not getattr(result, "rowcount", 0):
                return []
            joined = await session.scalars(
                select(SsoSessionClient.client_id).where(SsoSessionClient.sid == sid)
            )
            return list(joined)


# Kept a day after they expire or end: long enough for a portal's late back-channel or userinfo
# call to be told "ended" rather than "unknown", short enough that the table does not only grow.
KEEP_ENDED = timedelta(days=1)


async def purge(db: Database, now: datetime) -> int:
    """Remove sessions that expired or ended more than KEEP_ENDED ago, with who joined them."""
    before = now - KEEP_ENDED
    gone = or_(SsoSession.expires_at < before, SsoSession.ended_at < before)
    async with db.transaction() as session:
        # Explicit, not left to ON DELETE CASCADE: SQLite applies it only with foreign keys on.
        await session.execute(
            delete(SsoSessionClient).where(
                SsoSessionClient.sid.in_(select(SsoSession.sid).where(gone))
            )
        )
        result = await session.execute(delete(SsoSession).where(gone))
    return int(getattr(result, "rowcount", 0))
