"""occurrences: recurring events, reminders per occurrence, private calendar feeds

Revision ID: 0004_occurrences
Revises: 0003_delivery_trace
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_occurrences"
down_revision = "0003_delivery_trace"
branch_labels = None
depends_on = None

OLD_UNIQUE = "uq_notifications_event_id_recipient_minutes_before"
# The models' naming convention, truncated to PostgreSQL's 63 characters as SQLAlchemy does it.
NEW_UNIQUE = "uq_notifications_event_id_occurrence_at_recipient_minut_0a21"


def upgrade() -> None:
    op.add_column("events", sa.Column("recurrence", postgresql.ARRAY(sa.Text())))
    op.add_column("events", sa.Column("planned_until", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_events_planned_until",
        "events",
        ["planned_until"],
        postgresql_where=sa.text("planned_until IS NOT NULL AND deleted_at IS NULL"),
    )
    # Existing reminders are for the one occurrence their event had: its starts_at.
    op.add_column("notifications", sa.Column("occurrence_at", sa.DateTime(timezone=True)))
    op.execute(
        "UPDATE notifications SET occurrence_at = events.starts_at FROM events WHERE events.id = notifications.event_id"
    )
    op.alter_column("notifications", "occurrence_at", nullable=False)
    op.drop_constraint(OLD_UNIQUE, "notifications", type_="unique")
    op.create_unique_constraint(
        NEW_UNIQUE, "notifications", ["event_id", "occurrence_at", "recipient", "minutes_before"]
    )
    op.create_table(
        "calendar_feeds",
        sa.Column("owner", sa.String(320), nullable=False),
        sa.Column("feed_id", sa.UUID(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("owner", name="pk_calendar_feeds"),
        sa.UniqueConstraint("secret_hash", name="uq_calendar_feeds_secret_hash"),
    )


def downgrade() -> None:
    op.drop_table("calendar_feeds")
    # One row per (event, recipient, minutes_before) again: keep each one's first occurrence.
    op.execute(
        "DELETE FROM notifications n USING notifications m WHERE n.event_id = m.event_id "
        "AND n.recipient = m.recipient AND n.minutes_before = m.minutes_before AND n.occurrence_at > m.occurrence_at"
    )
    op.drop_constraint(NEW_UNIQUE, "notifications", type_="unique")
    op.create_unique_constraint(OLD_UNIQUE, "notifications", ["event_id", "recipient", "minutes_before"])
    op.drop_column("notifications", "occurrence_at")
    op.drop_index("ix_events_planned_until", table_name="events")
    op.drop_column("events", "planned_until")
    op.drop_column("events", "recurrence")
