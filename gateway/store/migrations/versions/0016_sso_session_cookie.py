"""SSO: the session cookie is a secret apart from the public `sid`; codes record their tokens.

Sessions begun before this have no cookie hash, so no browser cookie finds them any more (their
cookie was their sid, which every portal was given): those citizens sign in again at the next
portal they visit. Tokens already issued from them keep working until the session expires or
is signed out (by id_token_hint) as before.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sso_sessions") as batch_op:
        batch_op.add_column(sa.Column("cookie_hash", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_sso_sessions_cookie_hash", ["cookie_hash"], unique=True)
    with op.batch_alter_table("sso_codes") as batch_op:
        batch_op.add_column(sa.Column("issued_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sso_codes") as batch_op:
        batch_op.drop_column("issued_at")
    with op.batch_alter_table("sso_sessions") as batch_op:
        batch_op.drop_index("ix_sso_sessions_cookie_hash")
        batch_op.drop_column("cookie_hash")
