"""The Alembic migrations build exactly the schema the models describe, with the indexes the
notifier's due query relies on."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from reminders import migrate
from reminders.models import Base


def test_schema_matches_models(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_upgrade_twice_is_a_no_op(migrated_engine: Engine) -> None:
    result = migrate.upgrade(migrated_engine)
    assert result == {"before": migrate.head_revision(), "after": migrate.head_revision()}


def test_due_index_is_partial_on_pending(migrated_engine: Engine) -> None:
    indexes = {ix["name"]: ix for ix in inspect(migrated_engine).get_indexes("notifications")}
    with migrated_engine.connect() as connection:
        definition = connection.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_notifications_due'")
        ).scalar_one()
    assert indexes["ix_notifications_due"]["column_names"] == ["next_attempt_at"]
    assert "WHERE" in definition and "'pending'" in definition


def test_duplicate_delivery_is_refused_by_the_database(migrated_engine: Engine) -> None:
    uniques = inspect(migrated_engine).get_unique_constraints("notifications")
    assert [u["column_names"] for u in uniques] == [["event_id", "recipient", "minutes_before"]]
