"""delivery trace (unconfirmed attempts) and the account-wide send rate

Revision ID: 0003_delivery_trace
Revises: 0002_idempotency
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_delivery_trace"
down_revision = "0002_idempotency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "notifications",
        sa.Column("unconfirmed_attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "send_rate",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("next_send_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("throttled_rate", sa.Float()),
        sa.Column("throttled_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("name", name="pk_send_rate"),
    )


def downgrade() -> None:
    op.drop_table("send_rate")
    op.drop_column("notifications", "unconfirmed_attempts")
