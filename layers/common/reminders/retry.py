"""The retry policy: how long a failed send waits before the next attempt, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from reminders.models import NotificationStatus
from reminders.outbox import ClaimedNotification, DeliveryResult


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with "equal jitter": the delay grows with every attempt, yet runs
    that were throttled together do not all come back in the same second."""

    max_attempts: int = 5
    base_seconds: float = 30.0
    max_seconds: float = 3600.0

    def delay(self, attempt: int, rng: random.Random) -> timedelta:
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(attempt - 1, 0))
        return timedelta(seconds=ceiling / 2 + rng.uniform(0, ceiling / 2))

    def after_failure(
        self,
        claimed: ClaimedNotification,
        error: str,
        *,
        retryable: bool,
        now: datetime,
        rng: random.Random,
        unconfirmed: bool = False,
    ) -> DeliveryResult:
        """Pending again after a backoff, or failed for good (permanent, or the last attempt).

        An ``unconfirmed`` attempt (SES may have taken the email) is stored as such before any retry.
        """
        if retryable and claimed.attempts < self.max_attempts:
            return DeliveryResult(
                claimed.id,
                claimed.attempts,
                NotificationStatus.PENDING,
                next_attempt_at=now + self.delay(claimed.attempts, rng),
                last_error=error,
                unconfirmed=unconfirmed,
            )
        if retryable:
            error = f"gave up after {claimed.attempts} attempts: {error}"
        return DeliveryResult(
            claimed.id, claimed.attempts, NotificationStatus.FAILED, last_error=error, unconfirmed=unconfirmed
        )
