"""Alembic environment: runs on the connection handed over by ``reminders.migrate``."""

from __future__ import annotations

from alembic import context

from reminders.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through reminders.migrate.upgrade(), which provides a connection")

context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
