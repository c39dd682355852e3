"""A notifier process killed or interrupted mid-batch: the real handler in a child process (as
Lambda runs it), a real PostgreSQL, and a stand-in SES over HTTP that records every email it
accepted. Nothing may be lost; at most the sends in flight (plus the results not yet stored) may
go out twice, and each of those rows keeps a trace of it."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from reminders.clock import utcnow
from tests.support.notifier import (
    create_event,
    delivery_log,
    email_key,
    finished,
    notifier_process,
    reset_send_rate,
    run,
    standin_env,
)
from tests.support.ses_standin import SesStandIn, standin, standin_server  # noqa: F401 (fixtures)

CONCURRENCY = 4
RECORD_EVERY = 25
LEASE_SECONDS = 31
EVENTS, RECIPIENTS = 6, 50


def reminders_due(engine: Engine) -> dict[str, int]:
    """300 reminders due now: event title -> row count; each email is known by (recipient, subject)."""
    reset_send_rate(engine)
    now = utcnow()
    for n in range(EVENTS):
        create_event(
            engine,
            now,
            title=f"Launch {n}",
            starts_at=(now + timedelta(hours=1)).isoformat(),
            recipients=[f"guest{i}@example.com" for i in range(RECIPIENTS)],
            reminders=[{"minutes_before": 60}],
        )
    return {f"Launch {n}": RECIPIENTS for n in range(EVENTS)}


def with_status(engine: Engine, status: str) -> set[tuple[str, str]]:
    return {key for key, (row_status, _) in delivery_log(engine).items() if row_status == status}


def start_and_wait_for(standin: SesStandIn, env: dict[str, str], accepted: int) -> Any:  # noqa: F811
    process = notifier_process(env, timeout=LEASE_SECONDS - 1)
    deadline = time.monotonic() + 120
    while len(standin.accepted()) < accepted:
        assert process.poll() is None, finished(process)[2]
        assert time.monotonic() < deadline, "the notifier sent too little"
        time.sleep(0.05)
    return process


def send_the_rest(engine: Engine, standin: SesStandIn) -> None:  # noqa: F811
    """Runs after the lease ran out, until nothing is due."""
    for _ in range(5):
        summary = run(engine, standin.endpoint, utcnow() + timedelta(seconds=LEASE_SECONDS + 1))
        if summary.claimed == 0:
            return


@pytest.mark.slow
def test_a_notifier_killed_mid_batch_loses_nothing_and_repeats_at_most_the_sends_in_flight(
    engine: Engine,
    database_url: str,
    standin: SesStandIn,  # noqa: F811
) -> None:
    # Given 300 reminders due and SES answering in 20 ms
    reminders_due(engine)
    standin.configure(latency=0.02)
    env = standin_env(
        standin.endpoint,
        database_url,
        max_send_rate=100,
        send_concurrency=CONCURRENCY,
        batch_size=100,
        record_every=RECORD_EVERY,
        lease_seconds=LEASE_SECONDS,
    )

    # When the notifier process is killed with SIGKILL after about 100 emails
    process = start_and_wait_for(standin, env, accepted=100)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(0.5)  # requests already on the wire still reach SES
    out_unrecorded = {email_key(r) for r in standin.accepted()} - with_status(engine, "sent")

    # And later runs pick up what it left, once its lease has run out
    send_the_rest(engine, standin)

    # Then no reminder is lost, and only the emails it sent but never recorded went out twice
    per_reminder = Counter(email_key(r) for r in standin.accepted())
    lost = EVENTS * RECIPIENTS - len(per_reminder)
    twice = {key for key, count in per_reminder.items() if count > 1}
    print(f"\nSIGKILL mid-batch: {lost} reminders lost, {len(twice)} sent twice")
    assert lost == 0
    assert max(per_reminder.values()) <= 2
    assert twice == out_unrecorded
    assert len(twice) <= CONCURRENCY + RECORD_EVERY
    assert len(with_status(engine, "sent")) == EVENTS * RECIPIENTS
    # And each of those rows says a second email may have gone out
    assert all(delivery_log(engine)[key][1] == 1 for key in twice)


@pytest.mark.slow
def test_an_interrupted_notifier_stores_what_it_sent_before_it_exits(
    engine: Engine,
    database_url: str,
    standin: SesStandIn,  # noqa: F811
) -> None:
    # Given 300 reminders due, claimed in one batch
    reminders_due(engine)
    standin.configure(latency=0.02)
    env = standin_env(
        standin.endpoint,
        database_url,
        max_send_rate=100,
        send_concurrency=CONCURRENCY,
        batch_size=300,
        lease_seconds=LEASE_SECONDS,
    )

    # When the notifier process gets Ctrl-C (SIGINT) mid-batch
    process = start_and_wait_for(standin, env, accepted=50)
    process.send_signal(signal.SIGINT)
    _, _, stderr = finished(process, timeout=60)
    assert "KeyboardInterrupt" in stderr

    # Then, before exiting, it stored every email it had sent and handed the rest back
    sent = {email_key(r) for r in standin.accepted()}
    assert with_status(engine, "sending") == set()
    assert with_status(engine, "sent") == sent
    # And the next run sends the rest, and nothing twice
    send_the_rest(engine, standin)
    per_reminder = Counter(email_key(r) for r in standin.accepted())
    assert (len(per_reminder), max(per_reminder.values())) == (EVENTS * RECIPIENTS, 1)
