"""Singleton rows made once, under the startup lock: the audit head and the SSO pairwise salt.

Made at run time, they raced when two hub instances started together on an empty database (both
saw no row, both inserted, one failed). Migrations run under the startup lock, so here only one
process ever inserts them.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64  # gateway.audit.chain.GENESIS, fixed here as a migration must be


def upgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM audit_head WHERE id = 1")).first() is None:
        bind.execute(
            sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :hash)"),
            {"hash": GENESIS},
        )
    salt = bind.execute(sa.text("SELECT 1 FROM sso_settings WHERE name = 'pairwise_salt'"))
    if salt.first() is None:
        bind.execute(
            sa.text("INSERT INTO sso_settings (name, value) VALUES ('pairwise_salt', :value)"),
            {"value": secrets.token_hex(32)},
        )


def downgrade() -> None:
    # Data, not schema: an empty audit head and a salt are what 0010 would have made on first use.
    pass
