"""Refunds are told to the council's connector too (RefundReceiver): the same notice columns as
payments.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payment_refunds") as batch_op:
        # Refunds made before this revision were never told: "none", as the model's default.
        batch_op.add_column(
            sa.Column("notify_state", sa.String(length=10), server_default="none", nullable=False)
        )
        batch_op.add_column(sa.Column("notify_connector", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("notify_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("notify_next_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("notify_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("notified_at", sa.DateTime(), nullable=True))
        batch_op.create_index(
            "ix_payment_refunds_notify", ["notify_state", "notify_next_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("payment_refunds") as batch_op:
        batch_op.drop_index("ix_payment_refunds_notify")
        for name in (
            "notified_at",
            "notify_error",
            "notify_next_at",
            "notify_attempts",
            "notify_connector",
            "notify_state",
        ):
            batch_op.drop_column(name)
