"""Changing an event re-plans its reminders: only those whose due time really moved, keeping their
retry state; and the due time follows the event whatever state the reminder is in (waiting,
being sent, back to pending after the send's result, or left behind by a run that died).

The rule for a reminder that went out while its event changed: SES accepted it, so it is sent,
and it is never sent again (at most one email per event, recipient and reminder).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import Engine

from reminders import db
from reminders.mailer import ses_client
from reminders.models import Notification
from reminders.outbox import claim_due_notifications
from reminders.rendering import local_start
from tests.support.notifier import (
    FailingFirst,
    Outbox,
    create_event,
    notifier_settings,
    reset_send_rate,
    rows,
    run,
    ses_error,
    update_event,
)


@pytest.fixture
def outbox(aws_env: str, engine: Engine) -> Outbox:
    reset_send_rate(engine)
    return Outbox(aws_env)


def throttled_once(engine: Engine, outbox: Outbox, event_id: uuid.UUID, at: datetime) -> Notification:
    client = FailingFirst(ses_client(notifier_settings(outbox.endpoint)), failures=1, code="Throttling", status=400)
    assert run(engine, outbox.endpoint, at, client=client).retried == 1
    [row] = rows(engine, event_id)
    assert (row.status, row.attempts) == ("pending", 1)
    return row


def test_a_patch_that_moves_no_due_time_keeps_attempts_backoff_and_error(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    # Given a reminder that SES throttled: it waits out its backoff
    starts = now + timedelta(minutes=30)
    event_id = create_event(engine, now, starts_at=starts.isoformat(), reminders=[{"minutes_before": 30}])
    before = throttled_once(engine, outbox, event_id, now)

    # When the client saves the event again with the same start (and one more reminder)
    update_event(
        engine,
        event_id,
        now + timedelta(seconds=1),
        starts_at=starts,
        reminders=[{"minutes_before": 30}, {"minutes_before": 10}],
    )

    # Then the throttled reminder keeps its attempt, its backoff and its error
    [after, _added] = sorted(rows(engine, event_id), key=lambda r: -r.minutes_before)
    assert (after.status, after.attempts, after.next_attempt_at, after.last_error) == (
        "pending",
        1,
        before.next_attempt_at,
        before.last_error,
    )
    # And a run before the backoff ends leaves it alone
    assert run(engine, outbox.endpoint, now + timedelta(seconds=2)).claimed == 0
    assert outbox.emails() == []


def test_repeated_no_op_patches_cannot_push_retries_past_max_attempts(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    starts = now + timedelta(hours=3)
    event_id = create_event(engine, now, starts_at=starts.isoformat(), reminders=[{"minutes_before": 180}])
    client = FailingFirst(
        ses_client(notifier_settings(outbox.endpoint)), failures=99, code="ServiceUnavailable", status=503
    )

    # SES keeps failing, and after every failure a client re-saves the unchanged event
    at = now
    for _ in range(3):
        run(engine, outbox.endpoint, at, client=client, max_attempts=3)
        [row] = rows(engine, event_id)
        if row.status != "pending":
            break
        update_event(engine, event_id, at, starts_at=starts, title="Team sync (edited)")
        at = row.next_attempt_at

    assert (row.status, row.attempts) == ("failed", 3)
    assert client.calls == 3


def test_moving_a_reminder_that_waits_to_retry_keeps_its_attempt_count(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    starts = now + timedelta(minutes=30)
    event_id = create_event(engine, now, starts_at=starts.isoformat(), reminders=[{"minutes_before": 30}])
    throttled_once(engine, outbox, event_id, now)

    later = starts + timedelta(days=1)
    update_event(engine, event_id, now + timedelta(seconds=1), starts_at=later)

    [row] = rows(engine, event_id)
    new_due = later - timedelta(minutes=30)
    assert (row.status, row.attempts, row.due_at, row.next_attempt_at) == ("pending", 1, new_due, new_due)
    assert run(engine, outbox.endpoint, new_due - timedelta(minutes=1)).sent == 0
    assert run(engine, outbox.endpoint, new_due).sent == 1
    [row] = rows(engine, event_id)
    assert (row.status, row.attempts) == ("sent", 2)


def test_moving_a_reminder_earlier_does_not_cut_its_backoff_short(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    starts = now + timedelta(hours=2)
    event_id = create_event(engine, now, starts_at=starts.isoformat(), reminders=[{"minutes_before": 120}])
    before = throttled_once(engine, outbox, event_id, now)

    update_event(engine, event_id, now + timedelta(seconds=1), starts_at=starts - timedelta(minutes=1))

    [row] = rows(engine, event_id)
    assert row.due_at == now - timedelta(minutes=1)
    assert (row.attempts, row.next_attempt_at) == (1, before.next_attempt_at)


class HeldSend:
    """The real SES client, except that each send waits until the test lets it go, then answers
    with ``error`` if one is given (SES's answer to a request that was in flight)."""

    def __init__(self, client: Any, error: ClientError | None) -> None:
        self.client = client
        self.error = error
        self.entered = threading.Event()
        self.go = threading.Event()

    def send_raw_email(self, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.go.wait(30)
        if self.error is not None:
            raise self.error
        return self.client.send_raw_email(**kwargs)


def in_background(work: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_moving_the_event_while_its_reminder_is_being_sent_and_throttled_retries_at_the_new_time(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    # Given a reminder due now, in the hands of a run whose SES call is in flight
    starts = now + timedelta(minutes=10)
    event_id = create_event(engine, now, starts_at=starts.isoformat(), reminders=[{"minutes_before": 10}])
    held = HeldSend(ses_client(notifier_settings(outbox.endpoint)), ses_error("Throttling", 400))
    sending = in_background(lambda: run(engine, outbox.endpoint, now, client=held))
    assert held.entered.wait(30)
    assert [r.status for r in rows(engine, event_id)] == ["sending"]

    # When the event moves a day later, and then SES throttles that send
    tomorrow = starts + timedelta(days=1)
    update_event(engine, event_id, now + timedelta(seconds=1), starts_at=tomorrow)
    held.go.set()
    sending.join()

    # Then the retry waits for the new due time
    [row] = rows(engine, event_id)
    new_due = tomorrow - timedelta(minutes=10)
    assert (row.status, row.due_at, row.next_attempt_at, row.attempts) == ("pending", new_due, new_due, 1)
    # Not sent at the old time once the backoff is over...
    assert run(engine, outbox.endpoint, now + timedelta(hours=1)).sent == 0
    # ...but at the new one, saying the new start time
    assert run(engine, outbox.endpoint, new_due).sent == 1
    [email] = outbox.emails()
    body = email["Body"]["html_part"] or email["Body"]["text_part"]
    assert local_start(tomorrow, "UTC").split(" (")[0] in body


def test_a_reminder_that_went_out_while_its_event_moved_is_not_sent_again(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    starts = now + timedelta(minutes=10)
    event_id = create_event(engine, now, starts_at=starts.isoformat(), reminders=[{"minutes_before": 10}])
    held = HeldSend(ses_client(notifier_settings(outbox.endpoint)), None)
    sending = in_background(lambda: run(engine, outbox.endpoint, now, client=held))
    assert held.entered.wait(30)

    tomorrow = starts + timedelta(days=1)
    update_event(engine, event_id, now + timedelta(seconds=1), starts_at=tomorrow)
    held.go.set()
    sending.join()

    # SES accepted it: it is sent (before its new due time, as the log shows), once
    [row] = rows(engine, event_id)
    assert (row.status, row.sent_at, row.due_at) == ("sent", now, tomorrow - timedelta(minutes=10))
    assert run(engine, outbox.endpoint, tomorrow - timedelta(minutes=10)).claimed == 0
    assert len(outbox.emails()) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"recipients": ["ana@example.com"]},
        {"reminders": [{"minutes_before": 5}]},
    ],
    ids=["recipient removed", "reminder removed"],
)
def test_a_reminder_removed_while_it_was_being_sent_is_not_retried(
    engine: Engine, outbox: Outbox, now: datetime, change: dict[str, Any]
) -> None:
    starts = now + timedelta(hours=2)
    event_id = create_event(
        engine,
        now,
        starts_at=starts.isoformat(),
        recipients=["ana@example.com", "bo@example.com"],
        reminders=[{"minutes_before": 120}],
    )
    held = HeldSend(ses_client(notifier_settings(outbox.endpoint)), ses_error("Throttling", 400))
    sending = in_background(lambda: run(engine, outbox.endpoint, now, client=held, send_concurrency=1))
    assert held.entered.wait(30)

    update_event(engine, event_id, now + timedelta(seconds=1), **change)
    held.go.set()
    sending.join()

    # Nothing for bo (or for the removed 2-hour reminder) goes out on the retry
    run(engine, outbox.endpoint, now + timedelta(hours=1))
    sent = {(r.recipient, r.minutes_before) for r in rows(engine, event_id) if r.status == "sent"}
    assert sent == ({("ana@example.com", 120)} if "recipients" in change else set())
    assert [e["Destination"]["ToAddresses"] for e in outbox.emails()] == [[r] for r, _ in sent]


def test_a_run_that_died_before_the_event_moved_leaves_its_reminder_due_at_the_new_time(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    # Given a run that claimed the reminder and died (nothing recorded)
    starts = now + timedelta(minutes=10)
    event_id = create_event(engine, now, starts_at=starts.isoformat(), reminders=[{"minutes_before": 10}])
    with db.session_scope(engine) as session:
        claim = claim_due_notifications(session, now, limit=10, lease_seconds=120, max_attempts=5)
    assert len(claim.to_send) == 1

    # When the event moves a day later, and the lease runs out
    tomorrow = starts + timedelta(days=1)
    update_event(engine, event_id, now + timedelta(seconds=1), starts_at=tomorrow)
    summary = run(engine, outbox.endpoint, now + timedelta(seconds=121))

    # Then the reminder is back in the queue for the new time, marked as possibly sent once
    assert (summary.reclaimed, summary.sent) == (1, 0)
    [row] = rows(engine, event_id)
    new_due = tomorrow - timedelta(minutes=10)
    assert (row.status, row.next_attempt_at, row.unconfirmed_attempts) == ("pending", new_due, 1)
    assert run(engine, outbox.endpoint, new_due).sent == 1
    [row] = rows(engine, event_id)
    assert (row.status, row.attempts, row.unconfirmed_attempts) == ("sent", 2, 1)
