"""Validation rules of the API contract, checked on the pydantic models alone."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reminders.schemas import EventCreate, EventUpdate

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
