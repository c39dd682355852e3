"""One notifier run: claim due reminders in batches, email them concurrently within the SES
account's send rate, and record every result, while the function's time lasts.

Delivery guarantee. A claim is committed before any email leaves, and results are committed as
they come (every ``record_every`` results, or ``record_interval_seconds`` after the oldest one
not yet stored), so overlapping runs never send the same row twice. SES takes no idempotency
key, so two duplicate windows remain, and each leaves a trace on the row
(``unconfirmed_attempts``, never reset, so a duplicate stays visible after a later success):
- a run dies after SES accepted a message and before the commit that records it (at most the
  sends in flight plus the results not yet stored): the row's lease runs out, and a later run
  reclaims it, marks it and sends it again;
- an SES call times out after its request went out (read timeout, connection closed): SES may
  have taken the email. Nothing re-sends it on the spot (botocore does not retry); the row goes
  back to pending with the unconfirmed attempt stored, and a later run sends it after the backoff.
``lease_seconds`` must exceed the function timeout, so that a live run never loses its lease: a
run compares it with its remaining time and refuses to start otherwise.

Time. No SES call starts with less than ``send_cutoff_seconds`` left (one call at its connect and
read timeouts, plus storing the results), and each batch is sized to end by then at the rate the
previous batch achieved; claimed rows that could not be sent in time are handed back as due (not
counted as an attempt) rather than left to wait for their lease.

Stopping early. When the database becomes unreachable, or the run is interrupted (Ctrl-C), it
starts no more sends, lets those in flight finish, and stores what happened if the database
lets it; an unreachable database ends the run with ``database_error`` set, not an exception.
"""

from __future__ import annotations

import math
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, suppress
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from reminders.calendar import Occurrence
from reminders.clock import Clock, utcnow
from reminders.db import is_unavailable
from reminders.mailer import ErrorKind, Mailer, SendError
from reminders.models import NotificationStatus
from reminders.observability import logger
from reminders.outbox import (
    ClaimedNotification,
    DeliveryResult,
    claim_due_notifications,
    extend_horizons,
    reclaim_expired_leases,
    record_results,
)
from reminders.rendering import Email, render_reminder
from reminders.retry import RetryPolicy
from reminders.send_rate import SendSlots, reserve_send_slots, slow_send_rate
from reminders.settings import NotifierSettings
from reminders.unsubscribe import KeysNotConfigured, UnsubscribeLinks

SessionFactory = Callable[[], AbstractContextManager[Session]]
# Tries to store a batch of results over a flaky connection before the run gives up.
RECORD_ATTEMPTS = 3
# A reservation from the shared send rate covers at most this much sending.
CHUNK_SECONDS = 0.5
# A slot not used within this long of its time is dropped: a late send must not crowd the
# slots after it (another run's, perhaps). Bounds any second's sends to rate x 1.05 + 1.
LATE_SLOT_SECONDS = 0.05

Outcome = tuple[str | None, SendError | None, datetime]


class NotifierMisconfigured(ValueError):
    """A setting no run can work with: one readable line for the log and the summary."""


def reminder_email(claimed: ClaimedNotification, now: datetime, unsubscribe: UnsubscribeLinks | None = None) -> Email:
    """The email of one claimed reminder: its occurrence, with that occurrence as an .ics, and
    (with ``unsubscribe``) the RFC 8058 headers and a visible link to stop the owner's reminders."""
    occurrence = Occurrence(
        claimed.event_id, claimed.title, claimed.description, claimed.occurrence_at, claimed.timezone
    )
    if unsubscribe is None:
        return render_reminder(claimed.recipient, occurrence, now=now)
    url = unsubscribe.url(claimed.owner, claimed.recipient)
    email = render_reminder(claimed.recipient, occurrence, now=now, links=[unsubscribe.link(url)])
    return unsubscribe.apply(email, url)


def unsubscribe_links(settings: NotifierSettings) -> UnsubscribeLinks | None:
    """How this run signs unsubscribe links; None (reminders go without) when no key or API URL is
    configured, which only tests and benches do: the template and `make run` configure both."""
    if not settings.public_api_url:
        logger.warning("PUBLIC_API_URL is not set: reminders go out without unsubscribe links")
        return None
    try:
        keys = settings.unsubscribe_key_list()
    except KeysNotConfigured as exc:
        if settings.unsubscribe_keys or settings.unsubscribe_key_secret_arn:
            raise NotifierMisconfigured(str(exc)) from None
        logger.warning("no unsubscribe key: reminders go out without unsubscribe links")
        return None
    return UnsubscribeLinks(settings.public_api_url, keys[0])


def check_lease(settings: NotifierSettings, seconds_left: float) -> None:
    """Refuse to run if this run could outlive the lease it puts on the reminders it claims.

    The time left at the start stands for the function's timeout (Lambda's are whole seconds;
    the cold start is not counted in it).
    """
    if math.isfinite(seconds_left) and settings.lease_seconds <= math.ceil(seconds_left):
        raise NotifierMisconfigured(
            f"LEASE_SECONDS ({settings.lease_seconds}) must exceed the function's timeout "
            f"({math.ceil(seconds_left)} s): otherwise another run may send the reminders this one is sending"
        )


def describe_database_error(exc: BaseException) -> str:
    """One line for the log and the summary: the server's SQLSTATE and message, or the driver's
    error with the socket error behind it."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    details = orig.args[0] if orig.args else None
    if isinstance(details, dict):  # pg8000 passes the server's error fields
        return f"{details.get('C', '')} {details.get('M', '')}".strip()
    cause = orig.__cause__ or orig.__context__
    because = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    return f"{type(orig).__name__}: {orig}{because}"


@dataclass
class RunSummary:
    """What one run did; ``as_dict`` is the function's JSON result."""

    sent: int = 0
    claimed: int = 0
    failed: int = 0
    retried: int = 0
    expired: int = 0
    cancelled: int = 0
    # The recipient is suppressed (bounced, complained, unsubscribed): not sent.
    suppressed: int = 0
    reclaimed: int = 0
    # Reminders planned for the next occurrences of series (the rolling horizon).
    planned: int = 0
    # Claimed but handed back unsent (the function's time ran short, or the run stopped early).
    released: int = 0
    batches: int = 0
    # SES calls that timed out after the request went out: SES may have the email; the row says so.
    unconfirmed: int = 0
    # Results a run could not store because its claim had been taken over (lease ran out).
    unrecorded: int = 0
    # Results a run could not store because the database was unreachable: their rows come back
    # when their lease runs out, marked as possibly sent.
    unstored: int = 0
    duration_seconds: float = 0.0
    # Why the run stopped early: the database was unreachable (the handler answers 503).
    database_error: str | None = None
    # Seconds from due_at to sent_at of every email sent; emitted as a metric, not returned.
    lags_seconds: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("lags_seconds")
        data.pop("database_error")
        data["duration_seconds"] = round(self.duration_seconds, 3)
        if self.lags_seconds:
            data["max_lag_seconds"] = round(max(self.lags_seconds), 3)
        return data


class _Stop:
    """Tells the sending threads to start nothing more, and why."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.database_error: str | None = None

    def database_unavailable(self, exc: BaseException) -> None:
        self.database_error = self.database_error or describe_database_error(exc)
        self.event.set()

    @property
    def is_set(self) -> bool:
        return self.event.is_set()


class SharedSendRate:
    """Paces this run's sends so that all runs together keep to the account's send rate.

    Slots come from the database's token bucket (``reserve_send_slots``) in chunks, so it costs
    a round trip per chunk, not per email; the sends of a chunk are spread evenly over it, and a
    slot missed by more than ``LATE_SLOT_SECONDS`` is dropped. A chunk starts at one slot per
    sending thread and doubles while the threads use every slot (up to ``CHUNK_SECONDS`` of
    sending); it halves when slots go unused (the run sends slower than the account may), so
    the account's slots are not wasted. A throttle from SES slows the shared rate for every run.
    Hand-written: the rate limiters on PyPI are per process, or need Redis.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        max_rate: float,
        concurrency: int,
        stop: _Stop,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._max_rate = max_rate
        self._concurrency = concurrency
        self._rate = max_rate
        self._stop = stop
        self._clock = clock
        self._slots: deque[float] = deque()
        # Sends of the current batch that have no slot yet: a chunk never reserves more.
        self._unreserved = 0
        self._chunk = concurrency
        self._reservations = 0
        # Slots that went unused since the last reservation.
        self._dropped = 0
        self._lock = threading.Lock()
        # A reservation is under way (one at a time); waiters for slots wait on _refilled.
        self._reserving = False
        self._refilled = threading.Condition(self._lock)
        # Bumped when SES throttles: a reservation asked for before then brings slots at the old pace.
        self._generation = 0

    def expect(self, sends: int) -> None:
        with self._lock:
            self._unreserved = max(0, sends - len(self._slots))

    def acquire(self) -> bool:
        """Wait for this send's slot; False if the run is stopping meanwhile.

        The next chunk is reserved while this one still has slots (when it is down to a quarter),
        by one thread and outside the lock: the other threads keep taking slots meanwhile instead
        of all waiting on the database's round trip.
        """
        with self._lock:
            ahead = self._start_reservation(len(self._slots) <= self._chunk // 4)
        if ahead is not None:
            self._reserve(ahead)
        with self._lock:
            while True:
                if not self._slots:
                    if self._reserving:
                        self._refilled.wait()
                        continue
                    needed = self._start_reservation(True)
                    assert needed is not None
                    self._lock.release()
                    try:
                        self._reserve(needed)
                    finally:
                        self._lock.acquire()
                    continue
                slot = self._slots.popleft()
                if self._clock() - slot <= LATE_SLOT_SECONDS:
                    break
                # Missed: the send it was for still needs one.
                self._dropped += 1
                self._unreserved += 1
        delay = slot - self._clock()
        # Under a millisecond early is on time (a sleep that short costs more: the GIL's hand-over).
        if delay > 0.001 and self._stop.event.wait(delay):
            return False
        return not self._stop.is_set

    def _start_reservation(self, wanted: bool) -> tuple[int, int] | None:
        """Under the lock: size the next chunk and mark a reservation under way; returns (slots,
        generation) for :meth:`_reserve`, or None if none is wanted or one is under way already."""
        if not wanted or self._reserving or (self._slots and not self._unreserved):
            return None
        if self._reservations:
            resized = self._chunk // 2 if self._dropped else self._chunk * 2
            self._chunk = max(1, min(resized, max(self._concurrency, math.ceil(self._rate * CHUNK_SECONDS))))
        self._reservations += 1
        self._dropped = 0
        count = max(1, min(self._unreserved, self._chunk))
        self._unreserved = max(0, self._unreserved - count)
        self._reserving = True
        return count, self._generation

    def _reserve(self, reservation: tuple[int, int]) -> None:
        """Without the lock: one round trip to the shared token bucket, then the slots are added."""
        count, generation = reservation
        slots: SendSlots | None = None
        try:
            asked = self._clock()
            with self._sessions() as session:
                slots = reserve_send_slots(session, count, max_rate=self._max_rate)
            # The database measured from about halfway through the round trip.
            start = (asked + self._clock()) / 2 + slots.starts_in
        finally:
            with self._lock:
                self._reserving = False
                if slots is None or generation != self._generation:
                    # Failed, or SES throttled meanwhile: these sends still need slots (at the new pace).
                    self._unreserved += count
                else:
                    self._rate = slots.rate
                    self._slots.extend(start + i / slots.rate for i in range(slots.count))
                self._refilled.notify_all()

    def slow_down(self) -> None:
        """SES throttled a send: slow the account down and give up this run's slots at the old pace."""
        try:
            with self._sessions() as session:
                rate = slow_send_rate(session, max_rate=self._max_rate)
        except DBAPIError as exc:
            if not is_unavailable(exc):
                raise
            self._stop.database_unavailable(exc)
            return
        with self._lock:
            self._rate = rate
            self._generation += 1
            self._unreserved += len(self._slots)
            self._slots.clear()


class _Recorder:
    """Stores results as they come, every ``record_every`` results or ``record_interval_seconds``
    after the oldest one not yet stored. If the database fails, sending stops at once (every
    email sent from then on would be one whose result cannot be stored) while it tries again."""

    def __init__(
        self, sessions: SessionFactory, settings: NotifierSettings, clock: Clock, summary: RunSummary, stop: _Stop
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._summary = summary
        self._stop = stop
        self.pending: list[DeliveryResult] = []
        self._oldest = 0.0

    def add(self, result: DeliveryResult) -> None:
        if not self.pending:
            self._oldest = time.monotonic()
        self.pending.append(result)

    def seconds_to_flush(self) -> float | None:
        if not self.pending:
            return None
        return max(0.0, self._oldest + self._settings.record_interval_seconds - time.monotonic())

    def due(self) -> bool:
        return len(self.pending) >= self._settings.record_every or self.seconds_to_flush() == 0.0

    def flush(self) -> None:
        if not self.pending:
            return
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                with self._sessions() as session:
                    written = record_results(session, self.pending, self._clock())
                break
            except DBAPIError as exc:
                if not is_unavailable(exc):
                    raise
                self._stop.database_unavailable(exc)
                # Emails already left: a dropped connection must not turn them into duplicates.
                if attempt == RECORD_ATTEMPTS:
                    raise
                time.sleep(0.2 * attempt)
        self._summary.unrecorded += len(self.pending) - written
        self.pending = []


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

    ``time_left`` returns the seconds the function has left (Lambda's remaining time). Raises
    :class:`NotifierMisconfigured` if the lease is too short for it; an unreachable database
    ends the run early with ``database_error`` set.
    """
    started = time.monotonic()
    check_lease(settings, time_left())
    links = unsubscribe_links(settings)
    summary = RunSummary()
    policy = RetryPolicy(settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds)
    stop = _Stop()
    pacer = SharedSendRate(sessions, settings.max_send_rate, settings.send_concurrency, stop)
    rng = rng or random.Random()
    rate = settings.max_send_rate

    def out_of_time() -> bool:
        return time_left() < settings.send_cutoff_seconds

    try:
        # A step of every run: series whose planned horizon runs short get their next occurrences.
        with sessions() as session:
            summary.planned = extend_horizons(session, clock(), limit=settings.horizon_batch_size)
        with ThreadPoolExecutor(settings.send_concurrency, thread_name_prefix="send") as pool:
            while not stop.is_set:
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
                summary.suppressed += claim.suppressed
                batch_started = time.monotonic()
                recorder = _Recorder(sessions, settings, clock, summary, stop)
                _deliver(
                    claim.to_send,
                    now,
                    links,
                    pool,
                    pacer,
                    recorder,
                    mailer,
                    settings,
                    policy,
                    clock,
                    rng,
                    summary,
                    stop,
                    out_of_time,
                )
                if claim.to_send:
                    # Size the next batch by what this one achieved (slow SES, throttling), not the ceiling.
                    achieved = len(claim.to_send) / max(time.monotonic() - batch_started, 1e-3)
                    rate = min(settings.max_send_rate, achieved)
                if claim.rows < limit:
                    break
    except DBAPIError as exc:
        if not is_unavailable(exc):
            raise
        stop.database_unavailable(exc)
    summary.database_error = stop.database_error
    summary.duration_seconds = time.monotonic() - started
    return summary


def _batch_limit(settings: NotifierSettings, seconds_left: float, rate: float) -> int:
    budget = seconds_left - settings.send_cutoff_seconds
    if math.isinf(budget):
        return settings.batch_size
    return min(settings.batch_size, math.floor(budget * rate))


def _deliver(
    batch: list[ClaimedNotification],
    stamp: datetime,
    links: UnsubscribeLinks | None,
    pool: ThreadPoolExecutor,
    pacer: SharedSendRate,
    recorder: _Recorder,
    mailer: Mailer,
    settings: NotifierSettings,
    policy: RetryPolicy,
    clock: Clock,
    rng: random.Random,
    summary: RunSummary,
    stop: _Stop,
    out_of_time: Callable[[], bool],
) -> None:
    def send(claimed: ClaimedNotification) -> Outcome:
        if stop.is_set or out_of_time():
            return None, None, clock()
        try:
            if not pacer.acquire():
                return None, None, clock()
        except DBAPIError as exc:
            # The shared send rate lives in the database: without it, no send may start.
            if not is_unavailable(exc):
                raise
            stop.database_unavailable(exc)
            return None, None, clock()
        if stop.is_set or out_of_time():
            return None, None, clock()
        try:
            # Stamped (the .ics's DTSTAMP) with the batch's time: one occurrence's recipients share its .ics.
            message_id = mailer.send(reminder_email(claimed, stamp, links))
        except SendError as exc:
            if exc.kind is ErrorKind.THROTTLED:
                pacer.slow_down()
            return None, exc, clock()
        return message_id, None, clock()

    pacer.expect(len(batch))
    futures: dict[Future[Outcome], ClaimedNotification] = {pool.submit(send, claimed): claimed for claimed in batch}
    collected: set[Future[Outcome]] = set()
    # Completed sends, as they complete (concurrent.futures.wait would cost O(batch) per completion).
    completed: queue.SimpleQueue[Future[Outcome]] = queue.SimpleQueue()
    for future in futures:
        future.add_done_callback(completed.put)

    def collect(done: Iterable[Future[Outcome]]) -> None:
        for future in done:
            if future not in collected:
                collected.add(future)
                recorder.add(_result(futures[future], *_outcome(future, clock), policy, rng, summary))

    try:
        while len(collected) < len(futures):
            with suppress(queue.Empty):
                collect([completed.get(timeout=recorder.seconds_to_flush())])
            if recorder.due():
                recorder.flush()
        recorder.flush()
    except BaseException:
        # Interrupted, or the database is gone: start nothing more, let the sends in flight end
        # (one SES call at most), and store what happened while the database still lets us.
        stop.event.set()
        for future in futures:
            future.cancel()
        collect(wait(futures, timeout=settings.ses_call_seconds).done)
        try:
            recorder.flush()
        except DBAPIError:
            summary.unstored += len(recorder.pending)
        raise


def _outcome(future: Future[Outcome], clock: Clock) -> Outcome:
    if future.cancelled():
        return None, None, clock()
    try:
        return future.result()
    except Exception as exc:
        # A bug in rendering or the mailer: the row is retried and fails in the open.
        return None, SendError(ErrorKind.TRANSIENT, f"{type(exc).__name__}: {exc}"), clock()


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
    unconfirmed = error.kind is ErrorKind.AMBIGUOUS
    summary.unconfirmed += unconfirmed
    result = policy.after_failure(
        claimed, error.message, retryable=error.retryable, now=at, rng=rng, unconfirmed=unconfirmed
    )
    if result.status is NotificationStatus.PENDING:
        summary.retried += 1
    else:
        summary.failed += 1
    return result
