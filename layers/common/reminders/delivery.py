"""One notifier run: claim due reminders in batches, email them concurrently under the SES send
rate, and record every result, while the function's time lasts.

Delivery guarantee. A claim is committed before any email leaves, and results are committed
every ``record_every`` sends, so overlapping runs never send the same row twice. SES takes no
idempotency key, so one duplicate window remains: if a run dies after SES accepted a message
but before the commit that records it (at most ``record_every`` results plus the sends in
flight), the row's lease runs out and a later run sends that reminder again. ``lease_seconds``
must exceed the function timeout so that a live run never loses its lease. A dropped database
connection while recording is retried, so it does not widen that window.

Time. Each batch is sized to end ``time_budget_margin_seconds`` before the function's timeout
at the rate the previous batch achieved; claimed rows that could not be sent in time are handed
back as due (not counted as an attempt) rather than left to wait for their lease.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from reminders.clock import Clock, utcnow
from reminders.mailer import ErrorKind, Mailer, SendError, render_reminder
from reminders.models import NotificationStatus
from reminders.notifications import (
    ClaimedNotification,
    DeliveryResult,
    RetryPolicy,
    claim_due_notifications,
    reclaim_expired_leases,
    record_results,
)
from reminders.settings import NotifierSettings

SessionFactory = Callable[[], AbstractContextManager[Session]]
# Tries to store a batch of results over a flaky connection before the run gives up.
RECORD_ATTEMPTS = 3


class RateLimiter:
    """A token bucket shared by the sending threads (GCRA form: one timestamp, one lock).

    Hand-written because it is twenty lines and the libraries for it are asyncio- or Redis-bound.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate
        # Idle time earns at most `burst` tokens (default: one second's worth).
        self.tolerance = (max(1.0, burst if burst is not None else rate) - 1) * self.interval
        self._clock = clock
        self._sleep = sleep
        self._tat = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a send may start; return the seconds waited."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            wait = max(0.0, tat - now - self.tolerance)
            self._tat = tat + self.interval
        if wait:
            self._sleep(wait)
        return wait

    def slow_down(self, floor: float = 1.0) -> None:
        """SES said we send too fast (other senders share the account): halve the rate."""
        with self._lock:
            self.interval = min(self.interval * 2, 1.0 / floor)


@dataclass
class RunSummary:
    """What one run did; ``as_dict`` is the function's JSON result."""

    sent: int = 0
    claimed: int = 0
    failed: int = 0
    retried: int = 0
    expired: int = 0
    cancelled: int = 0
    reclaimed: int = 0
    # Claimed but handed back unsent because the function's time ran short.
    released: int = 0
    batches: int = 0
    # Results a run could not store because its claim had been taken over (lease ran out).
    unrecorded: int = 0
    duration_seconds: float = 0.0
    # Seconds from due_at to sent_at of every email sent; emitted as a metric, not returned.
    lags_seconds: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("lags_seconds")
        data["duration_seconds"] = round(self.duration_seconds, 3)
        if self.lags_seconds:
            data["max_lag_seconds"] = round(max(self.lags_seconds), 3)
        return data


def run_notifier(
    sessions: SessionFactory,
    mailer: Mailer,
    settings: NotifierSettings,
    *,
    clock: Clock = utcnow,
    time_left: Callable[[], float] = lambda: math.inf,
    rng: random.Random | None = None,
) -> RunSummary:
    """Deliver due reminders batch after batch until none is due or time runs short.

    ``time_left`` returns the seconds the function has left (Lambda's remaining time); each
    batch is sized so that, at ``max_send_rate``, it ends ``time_budget_margin_seconds`` early.
    """
    started = time.monotonic()
    summary = RunSummary()
    policy = RetryPolicy(settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds)
    limiter = RateLimiter(settings.max_send_rate)
    rng = rng or random.Random()
    rate = settings.max_send_rate

    def out_of_time() -> bool:
        # Half the margin is kept for storing the results of the sends already made.
        return time_left() < settings.time_budget_margin_seconds / 2

    with ThreadPoolExecutor(settings.send_concurrency, thread_name_prefix="send") as pool:
        while True:
            limit = _batch_limit(settings, time_left(), rate)
            if limit < 1:
                break
            now = clock()
            with sessions() as session:
                summary.reclaimed += reclaim_expired_leases(session, now, limit=limit)
                claim = claim_due_notifications(
                    session,
                    now,
                    limit=limit,
                    lease_seconds=settings.lease_seconds,
                    max_attempts=settings.max_attempts,
                    start_grace_seconds=settings.start_grace_seconds,
                )
            summary.batches += 1
            summary.claimed += claim.rows
            summary.expired += claim.expired
            summary.cancelled += claim.cancelled
            summary.failed += claim.failed
            batch_started = time.monotonic()
            _deliver(claim.to_send, pool, limiter, sessions, mailer, settings, policy, clock, rng, summary, out_of_time)
            if claim.to_send:
                # Size the next batch by what this one achieved (slow SES, throttling), not the ceiling.
                achieved = len(claim.to_send) / max(time.monotonic() - batch_started, 1e-3)
                rate = min(settings.max_send_rate, achieved)
            if claim.rows < limit:
                break
    summary.duration_seconds = time.monotonic() - started
    return summary


def _batch_limit(settings: NotifierSettings, seconds_left: float, rate: float) -> int:
    budget = seconds_left - settings.time_budget_margin_seconds
    if math.isinf(budget):
        return settings.batch_size
    return min(settings.batch_size, math.floor(budget * rate))


def _deliver(
    batch: list[ClaimedNotification],
    pool: ThreadPoolExecutor,
    limiter: RateLimiter,
    sessions: SessionFactory,
    mailer: Mailer,
    settings: NotifierSettings,
    policy: RetryPolicy,
    clock: Clock,
    rng: random.Random,
    summary: RunSummary,
    out_of_time: Callable[[], bool],
) -> None:
    def send(claimed: ClaimedNotification) -> tuple[str | None, SendError | None, datetime]:
        if out_of_time():
            return None, None, clock()
        limiter.acquire()
        if out_of_time():
            return None, None, clock()
        try:
            message_id = mailer.send(render_reminder(claimed))
        except SendError as exc:
            if exc.kind is ErrorKind.THROTTLED:
                limiter.slow_down()
            return None, exc, clock()
        return message_id, None, clock()

    futures: dict[Future[tuple[str | None, SendError | None, datetime]], ClaimedNotification] = {
        pool.submit(send, claimed): claimed for claimed in batch
    }
    pending: list[DeliveryResult] = []
    try:
        for future in as_completed(futures):
            claimed = futures[future]
            try:
                message_id, error, at = future.result()
            except Exception as exc:
                # A bug in rendering or the mailer: the row is retried and fails in the open.
                message_id, error, at = (
                    None,
                    SendError(ErrorKind.TRANSIENT, f"{type(exc).__name__}: {exc}"),
                    clock(),
                )
            pending.append(_result(claimed, message_id, error, at, policy, rng, summary))
            if len(pending) >= settings.record_every:
                _record(sessions, pending, clock(), summary)
                pending = []
        _record(sessions, pending, clock(), summary)
    except BaseException:
        # Stop what has not started: fewer emails sent whose result cannot be stored.
        for future in futures:
            future.cancel()
        raise


def _result(
    claimed: ClaimedNotification,
    message_id: str | None,
    error: SendError | None,
    at: datetime,
    policy: RetryPolicy,
    rng: random.Random,
    summary: RunSummary,
) -> DeliveryResult:
    if error is None and message_id is None:
        summary.released += 1
        return DeliveryResult.released(claimed, at)
    if error is None:
        summary.sent += 1
        summary.lags_seconds.append(max(0.0, (at - claimed.due_at).total_seconds()))
        return DeliveryResult(claimed.id, claimed.attempts, NotificationStatus.SENT, message_id=message_id, sent_at=at)
    result = policy.after_failure(claimed, error.message, retryable=error.retryable, now=at, rng=rng)
    if result.status is NotificationStatus.PENDING:
        summary.retried += 1
    else:
        summary.failed += 1
    return result


def _record(sessions: SessionFactory, results: list[DeliveryResult], now: datetime, summary: RunSummary) -> None:
    if not results:
        return
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            with sessions() as session:
                written = record_results(session, results, now)
            break
        except DBAPIError as exc:
            # Emails already left: a dropped connection must not turn them into duplicates.
            retryable = exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
            if attempt == RECORD_ATTEMPTS or not retryable:
                raise
            time.sleep(0.2 * attempt)
    summary.unrecorded += len(results) - written
