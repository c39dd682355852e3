"""idempotency records (Idempotency-Key on POST /events)

Revision ID: 0002_idempotency
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_idempotency"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_records",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expiry_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("in_progress_expiry_timestamp", sa.BigInteger()),
        sa.Column("payload_hash", sa.String(128), nullable=False, server_default=""),
        sa.Column("response_data", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("key", name="pk_idempotency_records"),
        sa.CheckConstraint("status IN ('INPROGRESS', 'COMPLETED')", name="ck_idempotency_records_status"),
    )
    op.create_index("ix_idempotency_records_expiry_timestamp", "idempotency_records", ["expiry_timestamp"])


def downgrade() -> None:
    op.drop_table("idempotency_records")
