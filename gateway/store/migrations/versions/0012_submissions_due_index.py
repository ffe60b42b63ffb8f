"""The dispatcher's index: submissions by state, connector and next attempt.

Replaces ix_submissions_claim (state, next_attempt_at), with which finding the due connectors and
claiming one connector's work read every due row (gateway/store/due_sql.py says why).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_submissions_due", "submissions", ["state", "connector", "next_attempt_at"], unique=False
    )
    op.drop_index("ix_submissions_claim", table_name="submissions")


def downgrade() -> None:
    op.create_index(
        "ix_submissions_claim", "submissions", ["state", "next_attempt_at"], unique=False
    )
    op.drop_index("ix_submissions_due", table_name="submissions")
