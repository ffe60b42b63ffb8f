"""Single sign-on: signing keys, settings, relying parties, sessions, authorization codes.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sso_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("private_pem", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("retired_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_sso_keys")),
    )
    op.create_table(
        "sso_settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sso_settings")),
    )
    op.create_table(
        "sso_clients",
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("organisation", sa.String(length=64), nullable=False),
        sa.Column("auth_method", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.Text(), nullable=True),
        sa.Column("jwks", sa.JSON(), nullable=True),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("post_logout_redirect_uris", sa.JSON(), nullable=False),
        sa.Column("backchannel_logout_uri", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_sso_clients")),
    )
    op.create_table(
        "sso_sessions",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("auth_method", sa.String(length=16), nullable=False),
        sa.Column("cert_thumbprint", sa.String(length=64), nullable=True),
        sa.Column("auth_time", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_sso_sessions")),
    )
    op.create_index("ix_sso_sessions_user", "sso_sessions", ["user_id"], unique=False)
    op.create_table(
        "sso_session_clients",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("first_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sid"],
            ["sso_sessions.sid"],
            name=op.f("fk_sso_session_clients_sid_sso_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sid", "client_id", name=op.f("pk_sso_session_clients")),
    )
    op.create_table(
        "sso_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=True),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_sso_codes")),
    )
    op.create_index(op.f("ix_sso_codes_expires_at"), "sso_codes", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sso_codes_expires_at"), table_name="sso_codes")
    op.drop_table("sso_codes")
    op.drop_table("sso_session_clients")
    op.drop_index("ix_sso_sessions_user", table_name="sso_sessions")
    op.drop_table("sso_sessions")
    op.drop_table("sso_clients")
    op.drop_table("sso_settings")
    op.drop_table("sso_keys")
