"""Planning deliveries over a rolling horizon (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reminders.planning import HORIZON, extension_window, initial_window, needs_extension, plan
from reminders.recurrence import parse_series

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_a_one_off_event_is_planned_in_full_whatever_the_window() -> None:
    series = parse_series(None, NOW + timedelta(days=90), "UTC")

    result = plan(series, ["ana@example.com", "ben@example.com"], [5, 60], start=NOW, end=NOW + timedelta(days=1))

    assert len(result.deliveries) == 4 and result.planned_until is None
    assert {d.due_at for d in result.deliveries} == {
        NOW + timedelta(days=90, minutes=-5),
        NOW + timedelta(days=89, hours=23),
    }


def test_an_unbounded_series_is_planned_up_to_the_horizon_and_says_where_to_go_on() -> None:
    series = parse_series(["RRULE:FREQ=DAILY"], NOW + timedelta(hours=1), "Europe/Berlin")
    start, end = initial_window(NOW)

    result = plan(series, ["ana@example.com"], [5], start=start, end=end)

    assert len(result.deliveries) == HORIZON.days
    assert result.planned_until == end
    assert all(start <= d.occurrence_at < end for d in result.deliveries)


def test_a_bounded_series_that_ends_inside_the_window_needs_no_extension() -> None:
    series = parse_series(["RRULE:FREQ=WEEKLY;COUNT=3"], NOW + timedelta(hours=1), "UTC")

    result = plan(series, ["ana@example.com"], [5, 10], start=NOW, end=NOW + HORIZON)

    assert len(result.deliveries) == 6 and result.planned_until is None


def test_a_bounded_series_longer_than_the_window_is_extended_until_it_ends() -> None:
    series = parse_series(["RRULE:FREQ=WEEKLY;COUNT=10"], NOW + timedelta(hours=1), "UTC")

    first = plan(series, ["ana@example.com"], [5], start=NOW, end=NOW + HORIZON)
    assert first.planned_until is not None
    later = NOW + timedelta(days=60)
    assert needs_extension(first.planned_until, later)
    rest = plan(
        series, ["ana@example.com"], [5], start=first.planned_until, end=extension_window(first.planned_until, later)[1]
    )

    assert len(first.deliveries) + len(rest.deliveries) == 10
    assert rest.planned_until is None


def test_the_horizon_is_extended_about_once_a_day() -> None:
    planned_until = NOW + HORIZON

    assert not needs_extension(planned_until, NOW + timedelta(hours=23))
    assert needs_extension(planned_until, NOW + timedelta(hours=25))
