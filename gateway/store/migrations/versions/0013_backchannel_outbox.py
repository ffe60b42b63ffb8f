"""Back-channel logouts owed to portals, kept with the portals that joined a session.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sso_session_clients") as batch_op:
        batch_op.add_column(sa.Column("logout_state", sa.String(length=10), nullable=True))
        batch_op.add_column(
            sa.Column("logout_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("logout_next_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("logout_error", sa.Text(), nullable=True))
        batch_op.create_index(
            "ix_sso_session_clients_logout", ["logout_state", "logout_next_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sso_session_clients") as batch_op:
        batch_op.drop_index("ix_sso_session_clients_logout")
        batch_op.drop_column("logout_error")
        batch_op.drop_column("logout_next_at")
        batch_op.drop_column("logout_attempts")
        batch_op.drop_column("logout_state")
