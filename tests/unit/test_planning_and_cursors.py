"""Planning (which deliveries an event needs) and cursor encoding, without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from reminders.errors import InvalidInput
from reminders.events import decode_cursor, encode_cursor
from reminders.models import Event
from reminders.planning import plan
from reminders.recurrence import parse_series

STARTS = datetime(2030, 12, 1, 9, 0, tzinfo=UTC)


def planned_deliveries(recipients: list[str], reminders: list[int]) -> list[tuple[str, int, datetime]]:
    result = plan(parse_series(None, STARTS, "UTC"), recipients, reminders, start=STARTS, end=STARTS)
    return [(d.recipient, d.minutes_before, d.due_at) for d in result.deliveries]


def test_one_delivery_per_recipient_and_reminder() -> None:
    assert sorted(planned_deliveries(["a@x.io", "b@x.io"], [5, 1440])) == [
        ("a@x.io", 5, STARTS - timedelta(minutes=5)),
        ("a@x.io", 1440, STARTS - timedelta(days=1)),
        ("b@x.io", 5, STARTS - timedelta(minutes=5)),
        ("b@x.io", 1440, STARTS - timedelta(days=1)),
    ]


def test_no_reminders_plans_nothing() -> None:
    assert planned_deliveries(["a@x.io"], []) == []


def test_cursor_round_trips() -> None:
    event = Event(id=uuid.uuid4(), starts_at=STARTS)
    assert decode_cursor(encode_cursor(event)) == (STARTS, event.id)


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", "WzEsMl0", "WyIyMDMwLTEyLTAxVDA5OjAwOjAwIiwieCJd"])
def test_foreign_cursors_are_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput):
        decode_cursor(cursor)
