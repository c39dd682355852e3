"""Reminders per occurrence: the notifier over series (driving the clock), the rolling horizon,
re-planning a changed series, and the email's .ics, against PostgreSQL and a real SES endpoint."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlalchemy import Engine, select

from reminders import db
from reminders.models import Event
from reminders.planning import HORIZON
from tests.support import aws
from tests.support.notifier import Outbox, create_event, reset_send_rate, rows, run, update_event

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def outbox(aws_env: str, engine: Engine) -> Outbox:
    reset_send_rate(engine)
    return Outbox(aws_env)


@pytest.fixture
def start() -> datetime:
    # A fixed clock the tests drive: a Monday morning, 09:00 Berlin (08:00Z) in winter.
    return datetime(2030, 1, 7, 7, 0, tzinfo=UTC)


def planned_until(engine: Engine, event_id: uuid.UUID) -> datetime | None:
    with db.session_scope(engine) as session:
        return session.scalars(select(Event.planned_until).where(Event.id == event_id)).one()


def ics_start(email: dict[str, object]) -> datetime:
    (part,) = list(aws.mime(email).iter_attachments())  # type: ignore[arg-type]
    assert part.get_content_type() == "text/calendar"
    (vevent,) = Calendar.from_ical(part.get_content()).walk("VEVENT")
    return vevent.decoded("DTSTART").astimezone(UTC)


def daily_series_in_berlin(engine: Engine, start: datetime) -> tuple[datetime, uuid.UUID]:
    """An unbounded daily series an hour after ``start`` in Berlin with a 10-minute reminder: its
    first occurrence and its id."""
    first = start + timedelta(hours=1)
    event_id = create_event(
        engine,
        start,
        starts_at=first.isoformat(),
        timezone="Europe/Berlin",
        reminders=[{"minutes_before": 10}],
        recurrence=["RRULE:FREQ=DAILY"],
    )
    return first, event_id


def test_a_daily_series_sends_one_email_per_occurrence_reached_never_two_and_keeps_planning(
    engine: Engine, outbox: Outbox, start: datetime
) -> None:
    # Given an unbounded daily series at 09:00 Berlin with a 10-minute reminder
    first, event_id = daily_series_in_berlin(engine, start)
    # Its reminders are planned over the horizon, not forever
    assert len(rows(engine, event_id)) == HORIZON.days
    assert planned_until(engine, event_id) == start + HORIZON

    # When the notifier runs every day at the reminder's time, twice each time, for 60 days
    sent: list[datetime] = []
    for day in range(60):
        at = first + timedelta(days=day) - timedelta(minutes=10)
        at = datetime.combine(at.astimezone(BERLIN).date(), datetime.min.time(), BERLIN).replace(hour=8, minute=50)
        first_run = run(engine, outbox.endpoint, at)
        second_run = run(engine, outbox.endpoint, at + timedelta(seconds=30))
        sent += [at] * first_run.sent
        assert second_run.sent == 0

    # Then each of the 60 occurrences got exactly one email, at 08:50 Berlin whatever the season
    emails = outbox.emails()
    assert len(emails) == len(sent) == 60
    starts = sorted(ics_start(e) for e in emails)
    assert len(set(starts)) == 60
    assert {s.astimezone(BERLIN).strftime("%H:%M") for s in starts} == {"09:00"}
    # and the horizon kept moving with the clock, so the series never ran dry
    horizon = planned_until(engine, event_id)
    assert horizon is not None and horizon > first + timedelta(days=60)
    log = rows(engine, event_id)
    assert sum(r.status == "sent" for r in log) == 60
    assert len({(r.occurrence_at, r.recipient, r.minutes_before) for r in log}) == len(log)


def test_the_email_is_mime_with_the_occurrence_as_ics(engine: Engine, outbox: Outbox, start: datetime) -> None:
    # Given a weekly series whose third occurrence is due
    first = start + timedelta(hours=1)
    create_event(
        engine,
        start,
        title="Stand-up",
        starts_at=first.isoformat(),
        timezone="Europe/Berlin",
        reminders=[{"minutes_before": 5}],
        recurrence=["RRULE:FREQ=WEEKLY"],
    )
    third = first + timedelta(weeks=2)

    # When the notifier runs at its reminder's time
    assert run(engine, outbox.endpoint, third - timedelta(minutes=5)).sent == 1

    # Then the email parses as MIME: text, HTML, and an .ics holding that occurrence's start
    (email,) = outbox.emails()
    message = aws.mime(email)
    assert message.get_content_type() == "multipart/mixed"
    plain = message.get_body(("plain",))
    assert plain is not None and "Monday 21 January 2030, 09:00 CET" in plain.get_content()
    assert ics_start(email) == third


def test_changing_the_rule_or_time_replans_future_occurrences_and_leaves_sent_ones_alone(
    engine: Engine, outbox: Outbox, start: datetime
) -> None:
    # Given a daily series whose first two occurrences' reminders went out
    first, event_id = daily_series_in_berlin(engine, start)
    for day in range(2):
        assert run(engine, outbox.endpoint, first + timedelta(days=day, minutes=-10)).sent == 1
    sent_before = {(r.occurrence_at, r.sent_at, r.message_id) for r in rows(engine, event_id) if r.status == "sent"}
    assert len(sent_before) == 2

    # When, on day 2, the series becomes weekly on Mondays and Wednesdays at 10:00, from Wednesday on
    now = first + timedelta(days=1, hours=2)
    wednesday = datetime(2030, 1, 9, 9, 0, tzinfo=UTC)
    update_event(engine, event_id, now, starts_at=wednesday.isoformat(), recurrence=["RRULE:FREQ=WEEKLY;BYDAY=MO,WE"])

    # Then the sent rows are untouched, the old future occurrences are cancelled, and new ones planned
    log = rows(engine, event_id)
    assert {(r.occurrence_at, r.sent_at, r.message_id) for r in log if r.status == "sent"} == sent_before
    pending = sorted(r.occurrence_at for r in log if r.status == "pending")
    assert pending and all(p > now for p in pending)
    assert {p.astimezone(BERLIN).strftime("%a %H:%M") for p in pending} == {"Mon 10:00", "Wed 10:00"}
    assert all(r.occurrence_at.astimezone(BERLIN).hour == 9 for r in log if r.status == "cancelled")
    # and running on past the change sends the new times only, once each
    assert run(engine, outbox.endpoint, wednesday - timedelta(minutes=10)).sent == 1
    assert run(engine, outbox.endpoint, wednesday).sent == 0
    assert ics_start(outbox.emails()[-1]) == wednesday
    assert len(outbox.emails()) == 3


def test_an_added_exdate_cancels_just_that_occurrences_reminders(
    engine: Engine, outbox: Outbox, start: datetime
) -> None:
    first = start + timedelta(hours=1)
    event_id = create_event(
        engine,
        start,
        starts_at=first.isoformat(),
        timezone="Europe/Berlin",
        recipients=["ana@example.com", "bo@example.com"],
        reminders=[{"minutes_before": 10}, {"minutes_before": 60}],
        recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"],
    )
    before = {(r.occurrence_at, r.recipient, r.minutes_before): (r.id, r.updated_at) for r in rows(engine, event_id)}
    assert len(before) == 16

    # When the second occurrence (Monday 14 January, 09:00 Berlin) is excluded
    update_event(
        engine,
        event_id,
        start + timedelta(minutes=1),
        recurrence=["RRULE:FREQ=WEEKLY;COUNT=4", "EXDATE;TZID=Europe/Berlin:20300114T090000"],
    )

    # Then its four reminders are cancelled and the other twelve are untouched
    excluded = first + timedelta(weeks=1)
    after = rows(engine, event_id)
    assert {(r.recipient, r.minutes_before) for r in after if r.status == "cancelled"} == {
        ("ana@example.com", 10),
        ("ana@example.com", 60),
        ("bo@example.com", 10),
        ("bo@example.com", 60),
    }
    assert {r.occurrence_at for r in after if r.status == "cancelled"} == {excluded}
    untouched = {(r.occurrence_at, r.recipient, r.minutes_before): (r.id, r.updated_at) for r in after}
    assert all(untouched[k] == v for k, v in before.items() if k[0] != excluded)
    assert run(engine, outbox.endpoint, excluded).sent == 0


def test_a_deleted_series_stops(engine: Engine, outbox: Outbox, start: datetime) -> None:
    first = start + timedelta(hours=1)
    event_id = create_event(
        engine, start, starts_at=first.isoformat(), reminders=[{"minutes_before": 0}], recurrence=["RRULE:FREQ=DAILY"]
    )
    with db.session_scope(engine) as session:
        from reminders import events
        from tests.support.notifier import OWNER

        events.delete_event(session, OWNER, str(event_id), start)

    assert run(engine, outbox.endpoint, first + timedelta(days=40)).sent == 0
    assert {r.status for r in rows(engine, event_id)} == {"cancelled"}
