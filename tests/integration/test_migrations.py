"""The Alembic migrations build exactly the schema the models describe, with the indexes the
notifier's due query relies on."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from reminders import db, migrate
from reminders.models import Base
from tests.support.postgres import test_database as fresh_database


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
    assert [u["column_names"] for u in uniques] == [["event_id", "occurrence_at", "recipient", "minutes_before"]]


def test_existing_reminders_are_carried_over_to_their_events_start() -> None:
    # Given a database at the revision before occurrences, with an event and its reminder
    with fresh_database() as url:
        engine = db.make_engine(url, pool_size=1)
        try:
            migrate.upgrade(engine, "0003_delivery_trace")
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO events (id, owner, title, starts_at, timezone, recipients, reminders) VALUES "
                        "('6f1c0000-0000-4000-8000-000000000001', 'ana', 'Sync', '2030-12-01T09:00:00Z', 'UTC', "
                        "'{ana@example.com}', '{5}')"
                    )
                )
                connection.execute(
                    text(
                        "INSERT INTO notifications (event_id, recipient, minutes_before, due_at, next_attempt_at, "
                        "status) VALUES ('6f1c0000-0000-4000-8000-000000000001', 'ana@example.com', 5, "
                        "'2030-12-01T08:55:00Z', '2030-12-01T08:55:00Z', 'sent')"
                    )
                )

            # When it is migrated to occurrences (and back, and forth again)
            migrate.upgrade(engine)
            with engine.begin() as connection:
                carried = connection.execute(text("SELECT occurrence_at, status FROM notifications")).one()
                recurrence = connection.execute(text("SELECT recurrence, planned_until FROM events")).one()

            # Then its occurrence is the event's start, and nothing else changed
            assert carried == (datetime(2030, 12, 1, 9, 0, tzinfo=UTC), "sent")
            assert recurrence == (None, None)

            # And a downgrade keeps each reminder's first occurrence, then the upgrade applies again
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT INTO notifications (event_id, occurrence_at, recipient, minutes_before, due_at, "
                        "next_attempt_at) SELECT event_id, occurrence_at + interval '1 week', recipient, "
                        "minutes_before, due_at + interval '1 week', next_attempt_at + interval '1 week' "
                        "FROM notifications"
                    )
                )
                config = migrate._config()
                config.attributes["connection"] = connection
                command.downgrade(config, "0003_delivery_trace")
                assert connection.execute(text("SELECT count(*) FROM notifications")).scalar_one() == 1
            assert migrate.upgrade(engine)["after"] == migrate.head_revision()
        finally:
            engine.dispose()
