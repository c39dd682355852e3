"""The notifier against a real PostgreSQL and a real SES API (moto server, or LocalStack when
AWS_ENDPOINT_URL is set). Time is driven through the ``clock`` the run is given."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar
from sqlalchemy import Engine, func, select

from reminders import db, events, settings
from reminders.delivery import RunSummary, run_notifier
from reminders.mailer import SesMailer, ses_client
from reminders.models import Notification, NotificationStatus
from reminders.outbox import DeliveryResult, claim_due_notifications, record_results
from reminders.rendering import Email, local_start
from reminders.schemas import EventCreate, EventUpdate
from tests.support import aws
from tests.support.lambdas import FakeLambdaContext, load_function
from tests.support.notifier import (
    OWNER,
    FailingFirst,
    Outbox,
    create_event,
    metrics_emitted,
    notifier_settings,
    reset_send_rate,
    rows,
    run,
)

SCHEDULED_EVENT = Path(__file__).resolve().parents[1] / "events" / "eventbridge_scheduled.json"


@pytest.fixture
def outbox(aws_env: str, engine: Engine) -> Outbox:
    reset_send_rate(engine)
    return Outbox(aws_env)


def test_reminder_of_an_event_starting_in_three_minutes_goes_out_once(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    # Given an event starting in 3 minutes with a 5-minute reminder, shown in Berlin time
    starts_at = now + timedelta(minutes=3)
    event_id = create_event(
        engine,
        now,
        title="Budget review",
        description="Room 4 <bring numbers>",
        starts_at=starts_at.isoformat(),
        timezone="Europe/Berlin",
        reminders=[{"minutes_before": 5}],
    )

    # When the notifier runs
    summary = run(engine, outbox.endpoint, now)

    # Then exactly one email went out, titled, with the start time in the event's time zone
    assert summary.sent == 1
    [email] = outbox.emails()
    assert "Budget review" in email["Subject"]
    assert email["Destination"]["ToAddresses"] == ["ana@example.com"]
    assert email["Source"] == aws.SENDER
    body = email["Body"]["html_part"] or email["Body"]["text_part"]
    assert local_start(starts_at, "Europe/Berlin").split(" (")[0] in body
    assert "Room 4 &lt;bring numbers&gt;" in body or "Room 4 <bring numbers>" in body
    [row] = rows(engine, event_id)
    assert (row.status, row.attempts, row.message_id, row.sent_at) == ("sent", 1, email["Id"], now)

    # And running again sends nothing more
    assert run(engine, outbox.endpoint, now + timedelta(minutes=1)).sent == 0
    assert len(outbox.emails()) == 1


def test_every_recipient_gets_every_reminder_when_due(engine: Engine, outbox: Outbox, now: datetime) -> None:
    recipients = ["ana@example.com", "bo@example.com", "cy@example.com"]
    event_id = create_event(
        engine,
        now,
        starts_at=(now + timedelta(minutes=30)).isoformat(),
        recipients=recipients,
        reminders=[{"minutes_before": 5}, {"minutes_before": 60}],
    )

    # The 60-minute reminders are overdue now; the 5-minute ones are due in 25 minutes
    assert run(engine, outbox.endpoint, now).sent == 3
    assert run(engine, outbox.endpoint, now + timedelta(minutes=10)).sent == 0
    assert run(engine, outbox.endpoint, now + timedelta(minutes=25)).sent == 3

    emails = outbox.emails()
    assert Counter(e["Destination"]["ToAddresses"][0] for e in emails) == dict.fromkeys(recipients, 2)
    assert {(r.recipient, r.minutes_before, r.status) for r in rows(engine, event_id)} == {
        (recipient, minutes, "sent") for recipient in recipients for minutes in (5, 60)
    }


def test_moving_the_start_replans_the_reminder(engine: Engine, outbox: Outbox, now: datetime) -> None:
    event_id = create_event(engine, now, starts_at=(now + timedelta(minutes=10)).isoformat())
    later = now + timedelta(hours=2)
    with db.session_scope(engine) as session:
        events.update_event(session, OWNER, str(event_id), EventUpdate(starts_at=later), now)

    # Not at the old due time...
    assert run(engine, outbox.endpoint, now + timedelta(minutes=6)).sent == 0
    # ...but at the new one
    assert run(engine, outbox.endpoint, later - timedelta(minutes=5)).sent == 1
    [row] = rows(engine, event_id)
    assert (row.status, row.due_at) == ("sent", later - timedelta(minutes=5))
    assert len(outbox.emails()) == 1


def test_deleting_an_event_cancels_its_reminders(engine: Engine, outbox: Outbox, now: datetime) -> None:
    event_id = create_event(engine, now, starts_at=(now + timedelta(minutes=3)).isoformat())
    with db.session_scope(engine) as session:
        events.delete_event(session, OWNER, str(event_id), now)

    summary = run(engine, outbox.endpoint, now)

    assert summary.sent == 0
    assert [r.status for r in rows(engine, event_id)] == ["cancelled"]
    assert outbox.emails() == []


def test_reminder_of_an_event_that_already_started_expires(engine: Engine, outbox: Outbox, now: datetime) -> None:
    event_id = create_event(engine, now, starts_at=(now + timedelta(minutes=1)).isoformat())

    # The notifier was down until well after the start (past the one-minute grace)
    summary = run(engine, outbox.endpoint, now + timedelta(minutes=3))

    assert (summary.sent, summary.expired) == (0, 1)
    assert [r.status for r in rows(engine, event_id)] == ["expired"]
    assert outbox.emails() == []


def test_throttled_reminder_is_retried_with_growing_delays_then_sent(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    event_id = create_event(
        engine, now, starts_at=(now + timedelta(minutes=30)).isoformat(), reminders=[{"minutes_before": 30}]
    )
    config = notifier_settings(outbox.endpoint)
    client = FailingFirst(ses_client(config), failures=2, code="Throttling", status=400)

    at, delays = now, []
    for _ in range(2):
        summary = run(engine, outbox.endpoint, at, client=client)
        assert (summary.sent, summary.retried) == (0, 1)
        [row] = rows(engine, event_id)
        assert row.status == "pending" and "Throttling" in (row.last_error or "")
        delays.append(row.next_attempt_at - at)
        # Not due again before its backoff ends
        assert run(engine, outbox.endpoint, at + delays[-1] / 2, client=client).claimed == 0
        at = row.next_attempt_at

    assert delays[0] < delays[1]
    assert run(engine, outbox.endpoint, at, client=client).sent == 1
    [row] = rows(engine, event_id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert len(outbox.emails()) == 1


def test_permanent_rejection_fails_at_once_and_keeps_the_error(engine: Engine, outbox: Outbox, now: datetime) -> None:
    event_id = create_event(engine, now, starts_at=(now + timedelta(minutes=3)).isoformat())

    # SES (moto) rejects a sender that is not a verified identity
    summary = run(engine, outbox.endpoint, now, sender_email="nobody@unverified.example.org")

    assert (summary.sent, summary.failed, summary.retried) == (0, 1, 0)
    [row] = rows(engine, event_id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "MessageRejected" in (row.last_error or "")
    assert run(engine, outbox.endpoint, now + timedelta(hours=1)).claimed == 0
    assert outbox.emails() == []


def test_transient_errors_fail_after_the_allowed_attempts(engine: Engine, outbox: Outbox, now: datetime) -> None:
    event_id = create_event(
        engine, now, starts_at=(now + timedelta(hours=3)).isoformat(), reminders=[{"minutes_before": 180}]
    )
    config = notifier_settings(outbox.endpoint)
    client = FailingFirst(ses_client(config), failures=99, code="ServiceUnavailable", status=503)

    at = now
    for attempt in (1, 2, 3):
        summary = run(engine, outbox.endpoint, at, client=client, max_attempts=3)
        [row] = rows(engine, event_id)
        assert row.attempts == attempt
        at = row.next_attempt_at

    assert (summary.failed, row.status) == (1, "failed")
    assert (row.last_error or "").startswith("gave up after 3 attempts: ServiceUnavailable")
    assert outbox.emails() == []


def test_rows_of_a_run_that_died_are_sent_once_its_lease_expires(engine: Engine, outbox: Outbox, now: datetime) -> None:
    event_id = create_event(
        engine,
        now,
        starts_at=(now + timedelta(minutes=20)).isoformat(),
        recipients=["ana@example.com", "bo@example.com"],
        reminders=[{"minutes_before": 20}],
    )
    # A run claimed both and died before recording anything (tests/integration/test_notifier_crash.py
    # kills a real one)
    with db.session_scope(engine) as session:
        claim = claim_due_notifications(session, now, limit=10, lease_seconds=120, max_attempts=5)
    assert len(claim.to_send) == 2
    assert {r.status for r in rows(engine, event_id)} == {"sending"}

    # While the lease holds, other runs leave the rows alone
    assert run(engine, outbox.endpoint, now + timedelta(seconds=60)).claimed == 0
    # Once it has expired, a later run sends them, and the rows keep a trace of the lost attempt
    summary = run(engine, outbox.endpoint, now + timedelta(seconds=121))

    assert (summary.reclaimed, summary.sent) == (2, 2)
    assert {(r.status, r.attempts, r.unconfirmed_attempts) for r in rows(engine, event_id)} == {("sent", 2, 1)}
    assert sorted(e["Destination"]["ToAddresses"][0] for e in outbox.emails()) == [
        "ana@example.com",
        "bo@example.com",
    ]


class TimeRunsOutAfterFirstSend:
    def __init__(self, mailer: SesMailer) -> None:
        self.mailer = mailer
        self.seconds_left = 50.0

    def send(self, email: Email) -> str:
        message_id = self.mailer.send(email)
        self.seconds_left = 1.0
        return message_id


def test_reminders_claimed_when_time_runs_short_are_handed_back_unsent(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    event_id = create_event(
        engine,
        now,
        starts_at=(now + timedelta(minutes=3)).isoformat(),
        recipients=["ana@example.com", "bo@example.com", "cy@example.com"],
    )
    config = notifier_settings(outbox.endpoint, send_concurrency=1, ses_timeout_seconds=5, record_reserve_seconds=5)
    mailer = TimeRunsOutAfterFirstSend(SesMailer(config.sender_email, ses_client(config)))

    summary = run_notifier(
        lambda: db.session_scope(engine), mailer, config, clock=lambda: now, time_left=lambda: mailer.seconds_left
    )

    assert (summary.sent, summary.released) == (1, 2)
    assert sorted((r.status, r.attempts) for r in rows(engine, event_id)) == [
        ("pending", 0),
        ("pending", 0),
        ("sent", 1),
    ]
    # The next run sends the two it handed back, and only those
    assert run(engine, outbox.endpoint, now + timedelta(minutes=1)).sent == 2
    assert sorted(e["Destination"]["ToAddresses"][0] for e in outbox.emails()) == [
        "ana@example.com",
        "bo@example.com",
        "cy@example.com",
    ]


@pytest.mark.slow
def test_four_notifiers_at_once_email_each_of_5000_reminders_exactly_once(
    engine: Engine, database_url: str, outbox: Outbox, now: datetime
) -> None:
    # Given 100 events with 50 recipients each, all due
    recipients = [f"guest{i}@example.com" for i in range(50)]
    with db.session_scope(engine) as session:
        for n in range(100):
            events.create_event(
                session,
                OWNER,
                EventCreate.model_validate(
                    {
                        "title": f"Launch {n}",
                        "starts_at": (now + timedelta(minutes=30)).isoformat(),
                        "recipients": recipients,
                        "reminders": [{"minutes_before": 60}],
                    }
                ),
                now,
            )

    # When four notifiers run at the same time, each with its own database engine
    summaries: list[RunSummary] = []
    errors: list[BaseException] = []

    def notifier() -> None:
        own_engine = db.make_engine(database_url)
        try:
            summaries.append(run(own_engine, outbox.endpoint, now, batch_size=100, send_concurrency=4))
        except BaseException as exc:
            errors.append(exc)
        finally:
            own_engine.dispose()

    threads = [threading.Thread(target=notifier) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then every reminder was emailed exactly once
    assert errors == []
    assert sum(s.sent for s in summaries) == 5000
    emails = outbox.emails()
    per_delivery = Counter((e["Destination"]["ToAddresses"][0], e["Subject"]) for e in emails)
    assert len(emails) == 5000 and len(per_delivery) == 5000
    with db.session_scope(engine) as session:
        query = select(Notification.status, func.count()).group_by(Notification.status)
        statuses = {status: count for status, count in session.execute(query)}
    assert statuses == {"sent": 5000}


@pytest.fixture
def notifier_handler(engine: Engine, aws_env: str) -> Iterator[Callable[..., dict[str, Any]]]:
    settings.notifier_settings.cache_clear()
    yield load_function("notifier").lambda_handler
    settings.notifier_settings.cache_clear()


def test_an_at_start_reminder_goes_out_on_the_run_just_after_the_start(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    starts_at = now + timedelta(minutes=10)
    event_id = create_event(engine, now, starts_at=starts_at.isoformat(), reminders=[{"minutes_before": 0}])

    assert run(engine, outbox.endpoint, starts_at + timedelta(seconds=40)).sent == 1
    assert [r.status for r in rows(engine, event_id)] == ["sent"]


def test_handler_runs_on_a_scheduled_event_and_returns_a_summary(
    engine: Engine, outbox: Outbox, notifier_handler: Callable[..., dict[str, Any]]
) -> None:
    from reminders.clock import utcnow

    create_event(engine, utcnow(), starts_at=(utcnow() + timedelta(minutes=3)).isoformat())

    result = notifier_handler(json.loads(SCHEDULED_EVENT.read_text()), FakeLambdaContext())

    assert result["sent"] == 1
    assert {"claimed", "failed", "retried", "expired"} <= result.keys()
    assert len(outbox.emails()) == 1


@pytest.mark.parametrize("payload", [{}, {"detail-type": "Scheduled Event"}, {"time": "yesterday"}])
def test_handler_answers_a_bad_payload_with_a_clear_error(
    notifier_handler: Callable[..., dict[str, Any]], payload: dict[str, Any]
) -> None:
    result = notifier_handler(payload, FakeLambdaContext())

    assert result["statusCode"] == 400
    assert result["message"] == "expected an EventBridge Scheduled Event"
    assert result["sent"] == 0


def test_delivery_lag_counts_from_when_a_late_planned_reminder_became_due(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    # Given an event created 10 minutes before it starts, with a 1-day reminder (due yesterday)
    create_event(engine, now, starts_at=(now + timedelta(minutes=10)).isoformat(), reminders=[{"minutes_before": 1440}])

    # When the notifier runs 30 seconds later
    summary = run(engine, outbox.endpoint, now + timedelta(seconds=30))

    # Then the reminder goes out, and its lag is the 30 seconds since it was planned, not a day
    assert summary.sent == 1
    assert summary.lags_seconds == [30.0]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MAX_SEND_RATE": "fast"}, "max_send_rate"),
        ({"DATABASE_URL": "mysql://u@db/app"}, "PostgreSQL URL"),
    ],
)
def test_handler_reports_a_bad_configuration_without_a_traceback(
    notifier_handler: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    db.dispose_engine()

    result = notifier_handler(json.loads(SCHEDULED_EVENT.read_text()), FakeLambdaContext())

    assert result["statusCode"] == 503 and result["sent"] == 0
    assert expected in result["message"]


def test_no_send_starts_when_less_than_one_ses_call_and_storing_its_result_is_left(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    event_id = create_event(engine, now, starts_at=(now + timedelta(minutes=3)).isoformat())

    # 12 s left: one SES call may take 2 x 5 s (connect, then read), and storing its result 5 s more
    summary = run(engine, outbox.endpoint, now, time_left=lambda: 12.0, ses_timeout_seconds=5, record_reserve_seconds=5)

    assert (summary.claimed, summary.sent) == (0, 0)
    assert [r.status for r in rows(engine, event_id)] == ["pending"]
    assert outbox.emails() == []


@pytest.fixture
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from reminders.observability import metrics

    # While disabled, Powertools keeps what earlier tests added; start from nothing.
    metrics.clear_metrics()
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")


def test_handler_refuses_to_run_with_a_lease_shorter_than_its_timeout(
    engine: Engine,
    outbox: Outbox,
    notifier_handler: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    metrics_on: None,
) -> None:
    from reminders.clock import utcnow

    event_id = create_event(engine, utcnow(), starts_at=(utcnow() + timedelta(minutes=3)).isoformat())
    monkeypatch.setenv("LEASE_SECONDS", "60")

    # A 60 s function: a run could still be sending when its 60 s lease runs out
    result = notifier_handler(json.loads(SCHEDULED_EVENT.read_text()), FakeLambdaContext(remaining_ms=60_000))

    assert (result["statusCode"], result["sent"]) == (503, 0)
    assert "LEASE_SECONDS (60) must exceed the function's timeout (60 s)" in result["message"]
    assert metrics_emitted(capsys.readouterr().out)["NotifierMisconfigured"]["values"] == [1]
    assert [r.status for r in rows(engine, event_id)] == ["pending"]
    assert outbox.emails() == []


def test_handler_reports_an_unreachable_database_with_a_summary_and_a_metric(
    notifier_handler: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    metrics_on: None,
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{aws.free_port()}/postgres")
    db.dispose_engine()

    result = notifier_handler(json.loads(SCHEDULED_EVENT.read_text()), FakeLambdaContext())

    assert (result["statusCode"], result["sent"], result["claimed"]) == (503, 0, 0)
    assert result["message"].startswith("database unavailable: ")
    assert metrics_emitted(capsys.readouterr().out)["NotifierDatabaseUnavailable"]["values"] == [1]


def test_a_total_outage_fails_every_reminder_and_emits_the_failure_metric(
    engine: Engine,
    outbox: Outbox,
    notifier_handler: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    metrics_on: None,
) -> None:
    from reminders.clock import utcnow

    recipients = ["ana@example.com", "bo@example.com", "cy@example.com"]
    create_event(engine, utcnow(), starts_at=(utcnow() + timedelta(minutes=3)).isoformat(), recipients=recipients)
    # SES rejects every send: the sender is not a verified identity
    monkeypatch.setenv("SENDER_EMAIL", "nobody@unverified.example.org")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "notifier")

    result = notifier_handler(json.loads(SCHEDULED_EVENT.read_text()), FakeLambdaContext())

    assert (result["sent"], result["failed"]) == (0, 3)
    failed = metrics_emitted(capsys.readouterr().out)["RemindersFailed"]
    # What the template's alarm reads: EventReminders / RemindersFailed, Sum
    assert (failed["namespace"], failed["values"]) == ("EventReminders", [3])


def test_results_are_stored_as_given_whatever_their_text_holds(engine: Engine, now: datetime) -> None:
    # Results travel to the database as one JSON document: quotes, backslashes, braces, commas,
    # line breaks and non-ASCII in an error or message id must come back as they were.
    recipients = ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    event_id = create_event(engine, now, starts_at=(now + timedelta(minutes=3)).isoformat(), recipients=recipients)
    with db.session_scope(engine) as session:
        claim = claim_due_notifications(session, now, limit=10, lease_seconds=120, max_attempts=5)
    sent, retried, released, unconfirmed = sorted(claim.to_send, key=lambda c: c.recipient)
    error = 'Throttling: "rate" \\ exceeded, {retry} later\nünï ☃'
    later = now + timedelta(seconds=90, microseconds=123456)
    results = [
        DeliveryResult(sent.id, sent.attempts, NotificationStatus.SENT, message_id='0100-"id"\\{x,y}', sent_at=now),
        DeliveryResult(
            retried.id, retried.attempts, NotificationStatus.PENDING, next_attempt_at=later, last_error=error
        ),
        DeliveryResult.released(released, now),
        DeliveryResult(
            unconfirmed.id,
            unconfirmed.attempts,
            NotificationStatus.PENDING,
            next_attempt_at=later,
            last_error="ReadTimeout",
            unconfirmed=True,
        ),
    ]
    with db.session_scope(engine) as session:
        assert record_results(session, results, now) == 4

    stored = {row.recipient: row for row in rows(engine, event_id)}
    a, b, c, d = (stored[r] for r in recipients)
    assert (a.status, a.message_id, a.sent_at, a.lease_until) == ("sent", '0100-"id"\\{x,y}', now, None)
    assert (b.status, b.last_error, b.next_attempt_at, b.attempts) == ("pending", error, later, 1)
    assert (c.status, c.attempts, c.last_error, c.next_attempt_at) == ("pending", 0, None, now)
    assert (d.status, d.unconfirmed_attempts, d.last_error, d.attempts) == ("pending", 1, "ReadTimeout", 1)
    # Stored once: the same results again write nothing (no claim holds those rows any more)
    with db.session_scope(engine) as session:
        assert record_results(session, results[1:], now) == 0


def test_the_recipients_of_one_occurrence_get_the_same_ics_stamped_with_the_batch_time(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    # Given an event with three recipients, due now
    recipients = ["ana@example.com", "ben@example.com", "cy@example.com"]
    create_event(engine, now, starts_at=(now + timedelta(minutes=3)).isoformat(), recipients=recipients)
    ticks = iter(now + timedelta(seconds=i) for i in range(1000))

    # When a run whose clock moves on with every reading sends them
    assert run(engine, outbox.endpoint, lambda: next(ticks)).sent == 3

    # Then each email carries the occurrence's .ics, one document for all three, stamped with the
    # time the batch was claimed (the run's clock had moved on by the time each was sent)
    documents = set()
    for email in outbox.emails():
        (part,) = list(aws.mime(email).iter_attachments())
        documents.add(part.get_payload(decode=True))
    assert len(documents) == 1
    (vevent,) = Calendar.from_ical(documents.pop()).walk("VEVENT")
    assert vevent.decoded("DTSTAMP") > now and vevent.decoded("DTSTAMP") < now + timedelta(seconds=10)
