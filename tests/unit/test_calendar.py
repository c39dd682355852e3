"""The iCalendar documents, read back with icalendar: the feed round-trips each event's rule."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from icalendar import Calendar, Event, vRecur

from reminders.calendar import Occurrence, event_uid, feed, occurrence_ics
from reminders.recurrence import parse_series

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


@dataclass
class StoredEvent:
    title: str
    starts_at: datetime
    timezone: str = "Europe/Berlin"
    recurrence: list[str] | None = None
    reminders: list[int] = field(default_factory=lambda: [5])
    description: str | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    created_at: datetime = NOW
    updated_at: datetime = NOW


def parsed(document: bytes) -> Calendar:
    return Calendar.from_ical(document)


def test_the_feed_has_one_vevent_per_event_with_its_rule_dates_zone_and_alarms() -> None:
    # Given a weekly series with an exclusion and an extra date, and a one-off event
    weekly = StoredEvent(
        "Stand-up",
        datetime(2026, 12, 7, 8, 0, tzinfo=UTC),
        recurrence=[
            "RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20270301T000000Z",
            "EXDATE:20261228T080000Z",
            "RDATE;TZID=Europe/Berlin:20261230T090000",
        ],
        reminders=[5, 60],
        description="Room 4",
    )
    once = StoredEvent("Dentist", datetime(2026, 12, 3, 15, 30, tzinfo=UTC), timezone="UTC", reminders=[])

    # When the feed is built and read back
    calendar = parsed(feed([weekly, once], now=NOW))

    # Then each event is one VEVENT with a stable UID
    events = {str(e["UID"]): e for e in calendar.walk("VEVENT")}
    assert set(events) == {event_uid(weekly.id), event_uid(once.id)}
    series = events[event_uid(weekly.id)]
    # DTSTART carries the zone (and the zone's VTIMEZONE is in the calendar)
    assert series["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert series.decoded("DTSTART") == datetime(2026, 12, 7, 9, 0, tzinfo=BERLIN)
    assert [tz.tz_name for tz in calendar.timezones] == ["Europe/Berlin"]
    # the rule round-trips: it parses back to the same series
    assert series["RRULE"] == vRecur.from_ical("FREQ=WEEKLY;UNTIL=20270301T000000Z;BYDAY=MO")
    exdates = [d.dt for d in series["EXDATE"].dts]
    rdates = [d.dt for d in series["RDATE"].dts]
    assert exdates == [datetime(2026, 12, 28, 9, 0, tzinfo=BERLIN)]
    assert rdates == [datetime(2026, 12, 30, 9, 0, tzinfo=BERLIN)]
    lines = ["RRULE:" + series["RRULE"].to_ical().decode()]
    lines += [f"EXDATE;TZID=Europe/Berlin:{d:%Y%m%dT%H%M%S}" for d in exdates]
    lines += [f"RDATE;TZID=Europe/Berlin:{d:%Y%m%dT%H%M%S}" for d in rdates]
    window = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
    original = parse_series(weekly.recurrence, weekly.starts_at, weekly.timezone)
    again = parse_series(lines, series.decoded("DTSTART").astimezone(UTC), "Europe/Berlin")
    assert list(again.occurrences(*window)) == list(original.occurrences(*window))
    # one VALARM per reminder
    triggers = sorted(a.decoded("TRIGGER") for a in series.walk("VALARM"))
    assert triggers == [timedelta(minutes=-60), timedelta(minutes=-5)]
    assert str(series["SUMMARY"]) == "Stand-up" and str(series["DESCRIPTION"]) == "Room 4"
    # and the one-off event has no rule and no alarm
    single = events[event_uid(once.id)]
    assert "RRULE" not in single and single.walk("VALARM") == []
    assert single.decoded("DTSTART") == datetime(2026, 12, 3, 15, 30, tzinfo=UTC)


def test_an_empty_feed_is_still_a_calendar() -> None:
    calendar = parsed(feed([], now=NOW))

    assert calendar.walk("VEVENT") == [] and str(calendar["VERSION"]) == "2.0"


def test_text_that_needs_escaping_survives_the_feed() -> None:
    event = StoredEvent("Sync; with, commas\\ and ünïcode", datetime(2026, 12, 3, 9, tzinfo=UTC), description="a\nb")

    (vevent,) = parsed(feed([event], now=NOW)).walk("VEVENT")

    assert str(vevent["SUMMARY"]) == event.title and str(vevent["DESCRIPTION"]) == "a\nb"


def test_the_occurrence_attachment_is_one_event_at_the_occurrences_start() -> None:
    occurrence = Occurrence(uuid.uuid4(), "Stand-up", None, datetime(2027, 4, 5, 7, 0, tzinfo=UTC), "Europe/Berlin")

    (vevent,) = parsed(occurrence_ics(occurrence, now=NOW)).walk("VEVENT")

    assert vevent.decoded("DTSTART") == datetime(2027, 4, 5, 9, 0, tzinfo=BERLIN)
    assert str(vevent["UID"]).startswith(str(occurrence.event_id))


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/Santiago", "Australia/Lord_Howe", "UTC", "No/Such_Zone"])
@pytest.mark.parametrize("start", [datetime(2027, 3, 28, 1, 30, tzinfo=UTC), datetime(2026, 12, 31, 23, 0, tzinfo=UTC)])
def test_the_occurrence_attachment_is_what_icalendar_writes_for_it_whole(zone: str, start: datetime) -> None:
    # The zone's VTIMEZONE is kept between reminders: the document must not differ from one built whole.
    occurrence = Occurrence(uuid.uuid4(), "Stand-up; ünï, \\ done", "Room 4\nsecond line", start, zone)
    for _ in range(2):
        assert occurrence_ics(occurrence, now=NOW) == whole_document(occurrence, NOW)


def whole_document(occurrence: Occurrence, now: datetime) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Event Reminders//Reminders 1.1//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"{occurrence.event_id}-{occurrence.starts_at:%Y%m%dT%H%M%SZ}@event-reminders")
    event.add("dtstamp", now)
    known = occurrence.timezone in available_timezones() or occurrence.timezone == "UTC"
    event.add("dtstart", occurrence.starts_at.astimezone(ZoneInfo(occurrence.timezone if known else "UTC")))
    event.add("summary", occurrence.title)
    event.add("description", occurrence.description)
    calendar.add_component(event)
    day = occurrence.starts_at.date()
    calendar.add_missing_timezones(first_date=day - timedelta(days=1), last_date=day + timedelta(days=366))
    return bytes(calendar.to_ical())
