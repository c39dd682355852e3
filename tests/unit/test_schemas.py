"""Validation rules of the API contract, checked on the pydantic models alone."""

from __future__ import annotations

import base64
import json
import unicodedata
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reminders.errors import InvalidInput
from reminders.events import decode_cursor
from reminders.schemas import EARLIEST, LATEST, EventCreate, EventUpdate, parse_timestamp
from tests.support.strategies import BODIES, DATE_TIME_STRINGS, JSON_VALUES

VALID: dict[str, Any] = {
    "title": "Team sync",
    "starts_at": "2030-12-01T09:00:00Z",
    "recipients": ["ana@example.com"],
}


def test_defaults_are_utc_and_a_five_minute_reminder() -> None:
    event = EventCreate.model_validate(VALID)
    assert event.timezone == "UTC"
    assert [r.minutes_before for r in event.reminders] == [5]
    assert event.description is None


def test_title_is_trimmed() -> None:
    assert EventCreate.model_validate({**VALID, "title": "  Sync  "}).title == "Sync"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", ""),
        ("title", "   "),
        ("title", "x" * 201),
        ("title", 123),
        ("title", None),
        ("description", "x" * 5001),
        ("starts_at", "2030-12-01T09:00:00"),  # naive
        ("starts_at", "tomorrow"),
        ("timezone", "Mars/Olympus"),
        ("timezone", ""),
        ("recipients", []),
        ("recipients", ["not-an-email"]),
        ("recipients", ["a@example.com", "A@example.com"]),
        ("recipients", [f"u{i}@example.com" for i in range(51)]),
        ("recipients", "ana@example.com"),
        ("reminders", [{"minutes_before": -1}]),
        ("reminders", [{"minutes_before": 43_201}]),
        ("reminders", [{"minutes_before": 5}, {"minutes_before": 5}]),
        ("reminders", [{"minutes_before": m} for m in range(11)]),
        ("reminders", [{"minutes_before": "5"}]),
        ("reminders", [{"minutes_before": 5.5}]),
        ("reminders", [{"minutes": 5}]),
        ("owner", "mallory@example.com"),
    ],
)
def test_invalid_fields_are_rejected(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        EventCreate.model_validate({**VALID, field: value})
    assert info.value.errors()[0]["loc"][0] == field


def test_limits_are_inclusive() -> None:
    event = EventCreate.model_validate(
        {
            **VALID,
            "title": "x" * 200,
            "description": "d" * 5000,
            "recipients": [f"u{i}@example.com" for i in range(50)],
            "reminders": [{"minutes_before": m} for m in (0, 1, 2, 3, 4, 5, 6, 7, 8, 43_200)],
        }
    )
    assert len(event.recipients) == 50 and len(event.reminders) == 10


def test_no_reminders_is_allowed() -> None:
    assert EventCreate.model_validate({**VALID, "reminders": []}).reminders == []


def test_offsets_are_kept_as_aware_times() -> None:
    event = EventCreate.model_validate({**VALID, "starts_at": "2030-12-01T10:00:00+01:00"})
    assert event.starts_at.utcoffset() is not None
    assert event.starts_at.isoformat() == "2030-12-01T10:00:00+01:00"


def test_update_accepts_any_subset_and_may_clear_description_only() -> None:
    assert EventUpdate.model_validate({}).model_dump(exclude_unset=True) == {}
    assert EventUpdate.model_validate({"description": None}).model_dump(exclude_unset=True) == {"description": None}
    for field in ("title", "starts_at", "timezone", "recipients", "reminders"):
        with pytest.raises(ValidationError):
            EventUpdate.model_validate({field: None})


# --- Properties: any JSON value in any field is a model or a ValidationError, never anything else ---


def _storable(model: EventCreate | EventUpdate) -> None:
    """What the database and the driver need of an accepted value."""
    for name in ("title", "description", "timezone"):
        value = getattr(model, name)
        if value is not None:
            assert not any(
                unicodedata.category(c) in ("Cc", "Cs") for c in value if c not in "\t\n\r" or name == "title"
            )
    if model.starts_at is not None:
        assert model.starts_at.tzinfo is not None
        in_utc = model.starts_at.astimezone(UTC)  # what pg8000 does with it: must not overflow
        assert EARLIEST <= in_utc <= LATEST
        assert model.starts_at.astimezone(ZoneInfo("Pacific/Kiritimati")).year <= 9999
        assert model.starts_at.astimezone(ZoneInfo("Etc/GMT+12")).year >= 1


@settings(max_examples=200, deadline=None)
@given(BODIES)
def test_any_create_body_is_a_model_or_a_validation_error(body: dict[str, Any]) -> None:
    try:
        model = EventCreate.model_validate(body)
    except ValidationError:
        return
    _storable(model)


@settings(max_examples=200, deadline=None)
@given(BODIES)
def test_any_update_body_is_a_model_or_a_validation_error(body: dict[str, Any]) -> None:
    try:
        model = EventUpdate.model_validate(body)
    except ValidationError:
        return
    assert None not in [v for k, v in model.model_dump(exclude_unset=True).items() if k != "description"]
    _storable(model)


@settings(max_examples=150, deadline=None)
@given(DATE_TIME_STRINGS | JSON_VALUES)
def test_a_timestamp_is_in_range_or_a_value_error(value: Any) -> None:
    try:
        parsed = parse_timestamp(value)
    except ValueError:
        return
    assert EARLIEST <= parsed.astimezone(UTC) <= LATEST


@settings(max_examples=150, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 3), max_value=datetime(9999, 12, 29), timezones=st.just(UTC)))
def test_every_instant_in_range_round_trips_through_rfc3339(moment: datetime) -> None:
    assert parse_timestamp(moment.isoformat()) == moment
    assert parse_timestamp(moment.isoformat().replace("+00:00", "Z")) == moment


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=600) | JSON_VALUES.map(lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode()))
def test_any_cursor_decodes_or_is_invalid_input(cursor: str) -> None:
    try:
        starts_at, _ = decode_cursor(cursor)
    except InvalidInput as exc:
        assert exc.field == "cursor"
        return
    assert EARLIEST <= starts_at.astimezone(UTC) <= LATEST
