"""The retry policy and the send-rate limiter, without a database or SES."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from reminders.delivery import RateLimiter
from reminders.models import NotificationStatus
from reminders.notifications import ClaimedNotification, RetryPolicy

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
        starts_at=NOW + timedelta(minutes=5),
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


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_lets_a_burst_through_then_spaces_sends() -> None:
    time = FakeTime()
    limiter = RateLimiter(rate=10, burst=3, clock=time.clock, sleep=time.sleep)

    waits = [limiter.acquire() for _ in range(6)]

    assert waits[:3] == [0, 0, 0]
    assert waits[3:] == pytest.approx([0.1, 0.1, 0.1])
    # Six sends in 0.3 s: three from the burst, then one every 0.1 s
    assert time.now - 100.0 == pytest.approx(0.3)


def test_rate_limiter_holds_the_rate_over_time() -> None:
    time = FakeTime()
    limiter = RateLimiter(rate=14, clock=time.clock, sleep=time.sleep)

    for _ in range(14 * 10):
        limiter.acquire()

    # 140 sends at 14/s: a burst of 14 at once, then 126 more spaced 1/14 s apart
    assert time.now - 100.0 == pytest.approx(9.0)


def test_rate_limiter_halves_its_rate_when_ses_throttles() -> None:
    time = FakeTime()
    limiter = RateLimiter(rate=10, burst=1, clock=time.clock, sleep=time.sleep)
    limiter.acquire()

    limiter.slow_down()

    assert limiter.acquire() == pytest.approx(0.1)
    assert limiter.acquire() == pytest.approx(0.2)
