"""Fault injection: the fault set on each connector instance.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connector_faults",
        sa.Column("connector", sa.String(length=200), nullable=False),
        sa.Column("fault", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connector", name=op.f("pk_connector_faults")),
    )


def downgrade() -> None:
    op.drop_table("connector_faults")
