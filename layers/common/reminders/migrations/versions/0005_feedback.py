"""delivery feedback (bounces, complaints, deliveries) and suppressions

Revision ID: 0005_feedback
Revises: 0004_occurrences
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_feedback"
down_revision = "0004_occurrences"
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('pending', 'sending', 'sent', 'failed', 'cancelled', 'expired')"
NEW_STATUSES = "status IN ('pending', 'sending', 'sent', 'failed', 'cancelled', 'expired', 'suppressed')"


def upgrade() -> None:
    op.drop_constraint("ck_notifications_status", "notifications", type_="check")
    op.create_check_constraint("ck_notifications_status", "notifications", NEW_STATUSES)
    op.add_column("notifications", sa.Column("feedback", sa.String(16)))
    op.add_column("notifications", sa.Column("feedback_at", sa.DateTime(timezone=True)))
    op.create_check_constraint(
        "ck_notifications_feedback", "notifications", "feedback IN ('delivered', 'bounced', 'complained')"
    )
    # Feedback finds its notification by SES message id.
    op.create_index(
        "ix_notifications_message_id",
        "notifications",
        ["message_id"],
        postgresql_where=sa.text("message_id IS NOT NULL"),
    )
    op.create_table(
        "suppressions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("owner", sa.String(320)),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_suppressions"),
        sa.CheckConstraint("reason IN ('bounce', 'complaint', 'unsubscribe')", name="ck_suppressions_reason"),
        sa.CheckConstraint("email = lower(email)", name="ck_suppressions_email_lower"),
    )
    op.create_index(
        "ix_suppressions_global_email",
        "suppressions",
        ["email"],
        unique=True,
        postgresql_where=sa.text("owner IS NULL"),
    )
    op.create_index(
        "ix_suppressions_email_owner",
        "suppressions",
        ["email", "owner"],
        unique=True,
        postgresql_where=sa.text("owner IS NOT NULL"),
    )
    op.create_index("ix_suppressions_owner", "suppressions", ["owner"], postgresql_where=sa.text("owner IS NOT NULL"))


def downgrade() -> None:
    op.drop_table("suppressions")
    op.drop_index("ix_notifications_message_id", table_name="notifications")
    op.drop_constraint("ck_notifications_feedback", "notifications", type_="check")
    op.drop_column("notifications", "feedback_at")
    op.drop_column("notifications", "feedback")
    op.execute("UPDATE notifications SET status = 'cancelled' WHERE status = 'suppressed'")
    op.drop_constraint("ck_notifications_status", "notifications", type_="check")
    op.create_check_constraint("ck_notifications_status", "notifications", OLD_STATUSES)
