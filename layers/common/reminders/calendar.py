"""iCalendar documents (RFC 5545) built with ``icalendar``: a user's private feed, and the one
occurrence that a reminder email carries as its ``.ics`` attachment.

Pure code: it takes events (anything shaped like :class:`CalendarEvent`) and returns bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol

from icalendar import Alarm, Calendar, Event

from reminders.recurrence import RecurrenceError, Series, one_off, parse_series, zone_named

PRODUCT_ID = "-//Event Reminders//Reminders 1.1//EN"
UID_DOMAIN = "event-reminders"
FEED_NAME = "Event reminders"
# Calendar clients poll a subscribed feed; this asks for about once an hour.
REFRESH = timedelta(hours=1)
# VTIMEZONE transitions are written out for this long after the latest start.
ZONE_YEARS_AHEAD = 10


class CalendarEvent(Protocol):
    """What the documents need of an event (the ``events`` row satisfies it)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def timezone(self) -> str: ...
    @property
    def reminders(self) -> Sequence[int]: ...
    @property
    def recurrence(self) -> Sequence[str] | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of an event, as a reminder email describes it."""

    event_id: uuid.UUID
    title: str
    description: str | None
    starts_at: datetime
    timezone: str


def event_uid(event_id: uuid.UUID) -> str:
    """Stable per event: a client that re-reads the feed updates the event instead of adding one."""
    return f"{event_id}@{UID_DOMAIN}"


def occurrence_uid(event_id: uuid.UUID, starts_at: datetime) -> str:
    return f"{event_id}-{starts_at.astimezone(UTC):%Y%m%dT%H%M%SZ}@{UID_DOMAIN}"


def series_of(event: CalendarEvent) -> Series:
    """The event's series; a stored rule that no longer parses is shown as its first occurrence."""
    try:
        return parse_series(event.recurrence, event.starts_at, event.timezone)
    except RecurrenceError:
        return one_off(event.starts_at, _zone_or_utc(event.timezone))


def feed(events: Iterable[CalendarEvent], *, now: datetime, name: str = FEED_NAME) -> bytes:
    """The private feed: one VEVENT per event, with its rule, dates and a VALARM per reminder."""
    calendar = _calendar(now)
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", name)
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", REFRESH)
    starts: list[datetime] = []
    for event in events:
        series = series_of(event)
        component = _vevent(event_uid(event.id), event.title, event.description, series.local(series.starts_at), now)
        component.add("created", event.created_at.astimezone(UTC))
        component.add("last-modified", event.updated_at.astimezone(UTC))
        if series.rule is not None:
            component.add("rrule", series.rule.parts)
        if series.exdates:
            component.add("exdate", [series.local(d) for d in sorted(series.exdates)])
        if series.rdates:
            component.add("rdate", [series.local(d) for d in series.rdates])
        for minutes in sorted(event.reminders):
            component.add_component(_alarm(event.title, minutes))
        calendar.add_component(component)
        starts.append(series.starts_at)
    _add_zones(calendar, starts, now)
    return bytes(calendar.to_ical())


def occurrence_ics(occurrence: Occurrence, *, now: datetime) -> bytes:
    """One occurrence as a stand-alone event (its own UID), for a reminder email's attachment.

    The document is the calendar's head, its zone's VTIMEZONE and the VEVENT, as icalendar writes
    them; the first two are the same for every reminder of a zone and day, and are kept (the
    VTIMEZONE cost ~0.3 ms of CPU to build and write, most of a reminder's). Whole documents are
    kept too, per occurrence and ``now``: the notifier stamps a batch's reminders with the batch's
    time, so the recipients of one occurrence share one document.
    """
    return _occurrence_ics(occurrence, now)


@lru_cache(maxsize=1024)
def _occurrence_ics(occurrence: Occurrence, now: datetime) -> bytes:
    zone = _zone_or_utc(occurrence.timezone)
    series = one_off(occurrence.starts_at, zone)
    vevent = _vevent(
        occurrence_uid(occurrence.event_id, occurrence.starts_at),
        occurrence.title,
        occurrence.description,
        series.local(series.starts_at),
        now,
    )
    return _occurrence_head() + _occurrence_zone(zone, series.starts_at.date()) + vevent.to_ical() + _END_CALENDAR


_END_CALENDAR = b"END:VCALENDAR\r\n"


@lru_cache(maxsize=1)
def _occurrence_head() -> bytes:
    calendar = _calendar(datetime.now(UTC))
    calendar.add("method", "PUBLISH")
    document = bytes(calendar.to_ical())
    assert document.endswith(_END_CALENDAR)
    return document.removesuffix(_END_CALENDAR)


@lru_cache(maxsize=256)
def _occurrence_zone(zone: str, day: date) -> bytes:
    """The VTIMEZONE(s) icalendar adds for a start in ``zone`` on ``day``: its transitions from the
    day before to a year after (none for UTC)."""
    calendar = Calendar()
    calendar.add_component(_vevent("zone", "zone", None, datetime.combine(day, time(12), zone_named(zone)), UTC_EPOCH))
    calendar.add_missing_timezones(first_date=day - timedelta(days=1), last_date=day + timedelta(days=366))
    return b"".join(bytes(component.to_ical()) for component in calendar.walk("VTIMEZONE"))


UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _calendar(now: datetime) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    return calendar


def _vevent(uid: str, title: str, description: str | None, local_start: datetime, now: datetime) -> Event:
    component = Event()
    component.add("uid", uid)
    component.add("dtstamp", now.astimezone(UTC))
    component.add("dtstart", local_start)
    component.add("summary", title)
    if description:
        component.add("description", description)
    return component


def _alarm(title: str, minutes: int) -> Alarm:
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", f"Reminder: {title}")
    alarm.add("trigger", timedelta(minutes=-minutes))
    return alarm


def _add_zones(calendar: Calendar, starts: Sequence[datetime], now: datetime) -> None:
    if not starts:
        return
    first = min(starts).date() - timedelta(days=1)
    last = max([*starts, now]).date()
    calendar.add_missing_timezones(first_date=first, last_date=date(last.year + ZONE_YEARS_AHEAD, 1, 1))


def _zone_or_utc(name: str) -> str:
    try:
        zone_named(name)
    except RecurrenceError:
        return "UTC"
    return name
