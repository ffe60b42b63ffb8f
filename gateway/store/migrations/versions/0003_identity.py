"""Identity: citizen kinds, enrolment journey (facts, PIN, lockout), letters, citizen certificates, signature replay store.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 04:09:25.844501
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seen_signatures",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_seen_signatures")),
    )
    with op.batch_alter_table("seen_signatures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_seen_signatures_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "citizen_certificates",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=False),
        sa.Column("not_after", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["citizens.user_id"],
            name=op.f("fk_citizen_certificates_user_id_citizens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_citizen_certificates")),
    )
    with op.batch_alter_table("citizen_certificates", schema=None) as batch_op:
        batch_op.create_index("ix_citizen_certificates_user", ["user_id"], unique=False)

    op.create_table(
        "letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("organisation", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("address", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("enrolment_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("arrives_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["citizens.user_id"],
            name=op.f("fk_letters_user_id_citizens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letters")),
    )
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.create_index("ix_letters_user", ["user_id"], unique=False)

    with op.batch_alter_table("citizens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="individual")
        )
        batch_op.alter_column("password_hash", existing_type=sa.VARCHAR(length=256), nullable=True)
        batch_op.alter_column("md5_hash", existing_type=sa.VARCHAR(length=256), nullable=True)

    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=24), nullable=False, server_default="active")
        )
        batch_op.add_column(
            sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("pin_hash", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("pin_expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("pin_used_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("activated_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enrolments", schema=None) as batch_op:
        batch_op.drop_column("activated_at")
        batch_op.drop_column("pin_used_at")
        batch_op.drop_column("pin_expires_at")
        batch_op.drop_column("pin_hash")
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_attempts")
        batch_op.drop_column("state")

    with op.batch_alter_table("citizens", schema=None) as batch_op:
        batch_op.alter_column("md5_hash", existing_type=sa.VARCHAR(length=256), nullable=False)
        batch_op.alter_column("password_hash", existing_type=sa.VARCHAR(length=256), nullable=False)
        batch_op.drop_column("kind")

    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.drop_index("ix_letters_user")

    op.drop_table("letters")
    with op.batch_alter_table("citizen_certificates", schema=None) as batch_op:
        batch_op.drop_index("ix_citizen_certificates_user")

    op.drop_table("citizen_certificates")
    with op.batch_alter_table("seen_signatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_seen_signatures_expires_at"))

    op.drop_table("seen_signatures")
