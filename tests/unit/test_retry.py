"""The retry policy and the run's time rules, without a database or SES (the shared send rate
needs PostgreSQL: tests/integration/test_send_rate.py)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pg8000.dbapi
import pytest
from sqlalchemy.exc import DBAPIError

from reminders.delivery import NotifierMisconfigured, check_lease, describe_database_error
from reminders.models import NotificationStatus
from reminders.outbox import ClaimedNotification
from reminders.retry import RetryPolicy
from reminders.settings import NotifierSettings

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def claimed(attempts: int) -> ClaimedNotification:
    return ClaimedNotification(
        id=1,
        attempts=attempts,
        recipient="ana@example.com",
        minutes_before=5,
        due_at=NOW,
        event_id=uuid.uuid4(),
        title="Sync",
        description=None,
        occurrence_at=NOW + timedelta(minutes=5),
        timezone="UTC",
    )


def test_delays_grow_exponentially_with_jitter_and_are_capped() -> None:
    policy = RetryPolicy(max_attempts=20, base_seconds=30, max_seconds=600)
    rng = random.Random(7)
    for attempt in range(1, 15):
        ceiling = min(600, 30 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = policy.delay(attempt, rng).total_seconds()
            assert ceiling / 2 <= delay <= ceiling


def test_jitter_spreads_retries_of_rows_throttled_together() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    delays = {policy.delay(3, rng) for _ in range(100)}
    assert len(delays) > 90


def test_retryable_error_goes_back_to_pending_until_the_last_attempt() -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=10, max_seconds=100)
    rng = random.Random(0)

    retry = policy.after_failure(claimed(2), "Throttling: slow down", retryable=True, now=NOW, rng=rng)
    assert retry.status is NotificationStatus.PENDING
    assert retry.next_attempt_at is not None and NOW + timedelta(seconds=10) <= retry.next_attempt_at
    assert retry.last_error == "Throttling: slow down"

    final = policy.after_failure(claimed(3), "Throttling: slow down", retryable=True, now=NOW, rng=rng)
    assert final.status is NotificationStatus.FAILED
    assert final.last_error == "gave up after 3 attempts: Throttling: slow down"


def test_permanent_error_fails_at_once() -> None:
    result = RetryPolicy().after_failure(
        claimed(1), "MessageRejected: bad address", retryable=False, now=NOW, rng=random.Random()
    )
    assert (result.status, result.last_error) == (NotificationStatus.FAILED, "MessageRejected: bad address")


def test_an_unconfirmed_attempt_is_kept_on_the_retry_and_on_the_final_failure() -> None:
    policy = RetryPolicy(max_attempts=2)
    rng = random.Random(0)

    retry = policy.after_failure(claimed(1), "ReadTimeoutError", retryable=True, now=NOW, rng=rng, unconfirmed=True)
    final = policy.after_failure(claimed(2), "ReadTimeoutError", retryable=True, now=NOW, rng=rng, unconfirmed=True)

    assert (retry.status, retry.unconfirmed) == (NotificationStatus.PENDING, True)
    assert (final.status, final.unconfirmed) == (NotificationStatus.FAILED, True)


def settings(**values: object) -> NotifierSettings:
    return NotifierSettings(database_url="postgresql://unused", **values)  # type: ignore[arg-type]


def test_sending_stops_early_enough_for_one_ses_call_and_storing_its_result() -> None:
    config = settings(ses_timeout_seconds=5, record_reserve_seconds=5)
    # Connect timeout, then read timeout (botocore does not retry), then the commit
    assert (config.ses_call_seconds, config.send_cutoff_seconds) == (10, 15)


# A 60 s function has a little less than 60 s left when its handler starts.
@pytest.mark.parametrize(("lease", "seconds_left"), [(60, 60.0), (60, 59.93), (60, 90.0), (5, 5.5)])
def test_a_lease_that_does_not_outlast_the_run_is_refused(lease: int, seconds_left: float) -> None:
    with pytest.raises(NotifierMisconfigured, match=rf"LEASE_SECONDS \({lease}\) must exceed"):
        check_lease(settings(lease_seconds=lease), seconds_left)


@pytest.mark.parametrize(("lease", "seconds_left"), [(120, 60.0), (61, 60.0), (5, float("inf"))])
def test_a_lease_longer_than_the_run_is_accepted(lease: int, seconds_left: float) -> None:
    check_lease(settings(lease_seconds=lease), seconds_left)


def driver_error(error: Exception) -> Exception:
    """The error as SQLAlchemy raises it from pg8000."""
    return DBAPIError.instance("SELECT 1", {}, error, pg8000.dbapi.Error)


def server_error(code: str, message: str) -> Exception:
    return driver_error(pg8000.dbapi.DatabaseError({"S": "FATAL", "C": code, "M": message}))


def test_a_database_error_is_described_in_one_line() -> None:
    assert describe_database_error(server_error("57P01", "terminating connection")) == "57P01 terminating connection"
