"""Secure mail: encrypted messages, expiry reports to senders, the notifications outbox.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 04:44:27.945664
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_expiry_reports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=False),
        sa.Column("organisation", sa.String(length=64), nullable=False),
        sa.Column("class", sa.String(length=40), nullable=False),
        sa.Column("sender", sa.String(length=128), nullable=False),
        sa.Column("sender_message_id", sa.String(length=128), nullable=True),
        sa.Column("expired_at", sa.DateTime(), nullable=False),
        sa.Column("deleted_unread", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_expiry_reports")),
        sa.UniqueConstraint("message_id", name=op.f("uq_mail_expiry_reports_message_id")),
    )
    with op.batch_alter_table("mail_expiry_reports", schema=None) as batch_op:
        batch_op.create_index(
            "ix_mail_expiry_reports_organisation", ["organisation", "id"], unique=False
        )

    op.create_table(
        "mail_messages",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation", sa.String(length=64), nullable=False),
        sa.Column("class", sa.String(length=40), nullable=False),
        sa.Column("key_type", sa.String(length=64), nullable=False),
        sa.Column("key_value", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=12), nullable=False),
        sa.Column("in_reply_to", sa.String(length=32), nullable=True),
        sa.Column("sender", sa.String(length=128), nullable=False),
        sa.Column("sender_message_id", sa.String(length=128), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("subject_ct", sa.LargeBinary(), nullable=False),
        sa.Column("body_ct", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("read_at", sa.DateTime(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("expiry_reported_at", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("delivery_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["citizens.user_id"],
            name=op.f("fk_mail_messages_user_id_citizens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_messages")),
        sa.UniqueConstraint("organisation", "sender_message_id", name="uq_mail_messages_sender_id"),
    )
    with op.batch_alter_table("mail_messages", schema=None) as batch_op:
        batch_op.create_index("ix_mail_messages_expiry", ["expires_at"], unique=False)
        batch_op.create_index(
            "ix_mail_messages_user", ["user_id", "direction", "created_at"], unique=False
        )

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.String(length=512), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["citizens.user_id"],
            name=op.f("fk_notifications_user_id_citizens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_user", ["user_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_user")
    op.drop_table("notifications")
    with op.batch_alter_table("mail_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_messages_user")
        batch_op.drop_index("ix_mail_messages_expiry")
    op.drop_table("mail_messages")
    with op.batch_alter_table("mail_expiry_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_mail_expiry_reports_organisation")
    op.drop_table("mail_expiry_reports")
