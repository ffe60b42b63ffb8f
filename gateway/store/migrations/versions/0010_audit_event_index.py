"""Audit records by event, newest first: the console's refusals list and its event filter.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_audit_records_event_seq", "audit_records", ["event", "seq"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_records_event_seq", table_name="audit_records")
