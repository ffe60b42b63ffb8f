"""Single sign-on (OpenID Connect provider): signing keys, relying parties, sessions, codes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.models import Base, UTCDateTime


class SsoKey(Base):
    """An ES256 signing key; the newest unretired one signs, retired ones verify for a while."""

    __tablename__ = "sso_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SsoSetting(Base):
    """Provider-wide secrets made on first start (the pairwise subject salt)."""

    __tablename__ = "sso_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SsoClient(Base):
    """A relying party: a council portal, registered through the admin API or the CLI."""

    __tablename__ = "sso_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str] = mapped_column(String(64))  # the council; also the pairwise sector
    auth_method: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str | None] = mapped_column(Text)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SsoSession(Base):
    """One sign-in at the hub, shared by every portal the citizen visits until it ends."""

    __tablename__ = "sso_sessions"

    # Public: every portal sees it (the `sid` claim of ID, access and logout tokens).
    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The browser's gw_sso cookie is a separate secret, kept only as its SHA-256 (hex) so that
    # neither a portal (which knows the sid) nor a reader of the database can sign in with it.
    # None for sessions begun before migration 0016: no cookie finds them any more.
    cookie_hash: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    auth_method: Mapped[str] = mapped_column(String(16))  # password | certificate
    cert_thumbprint: Mapped[str | None] = mapped_column(String(64))  # x5t#S256, base64url
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_sso_sessions_user", "user_id"),
        Index("ix_sso_sessions_cookie_hash", "cookie_hash", unique=True),
    )


class SsoSessionClient(Base):
    """A portal that received tokens in a session: told when the session ends."""

    __tablename__ = "sso_session_clients"

    sid: Mapped[str] = mapped_column(
        ForeignKey("sso_sessions.sid", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The back-channel logout owed when the session ends (gateway/sso/backchannel.py): set
    # pending in the transaction that ends it, so a hub dying before it tells the portal leaves
    # the telling to another pass; retried until the portal accepts or the hub gives up.
    logout_state: Mapped[str | None] = mapped_column(String(10))  # pending | done | failed
    logout_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    logout_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    logout_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_sso_session_clients_logout", "logout_state", "logout_next_at"),)


class SsoCode(Base):
    """An authorization code (stored by digest), single use, bound to PKCE and redirect URI."""

    __tablename__ = "sso_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    sid: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When tokens were issued for it: a later replay revokes them (RFC 6749 §4.1.2) by ending
    # the sign-on; a code spent by a failed exchange issued nothing, so its replay ends nothing.
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
