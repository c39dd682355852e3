"""Notifications: planning deliveries when events change; claiming, expiring and recording them
for the notifier; the retry policy; the account's shared send rate.

A notification row is one (event, recipient, minutes_before). Planning is an upsert on that
unique key, so re-planning after an update never duplicates a delivery. The due time follows the
event whatever state the row is in: a change re-plans only rows whose due time moved (keeping
their attempts, backoff and error), moves a row that is being sent too (its result then lands
at the new time), and never touches a row that was sent or failed for good. A reminder SES
accepted while its event changed stays sent: at most one email per (event, recipient, reminder).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    Integer,
    Interval,
    Subquery,
    Text,
    and_,
    any_,
    case,
    cast,
    column,
    extract,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from reminders.models import Event, Notification, NotificationStatus, SendRate

# Rows that a change of the event may re-plan: nothing has gone out for them (or, while sending, nothing yet).
REPLANNABLE = (
    NotificationStatus.PENDING,
    NotificationStatus.SENDING,
    NotificationStatus.CANCELLED,
    NotificationStatus.EXPIRED,
)


def planned_deliveries(event: Event) -> list[tuple[str, int, datetime]]:
    """(recipient, minutes_before, due_at) for every reminder of every recipient."""
    return [
        (recipient, minutes, event.starts_at - timedelta(minutes=minutes))
        for recipient in event.recipients
        for minutes in event.reminders
    ]


def plan_notifications(session: Session, event: Event, now: datetime) -> None:
    """Create or re-plan the event's notification rows and cancel those no longer wanted.

    A row is re-planned only when its due time moved (or it was cancelled and is wanted again):
    its attempts and last error stay, and a backoff still running is kept. A row being sent
    stays ``sending`` under its run's lease with the new due time, so whatever the run records
    (a retry, a release) waits for that time.
    """
    deliveries = planned_deliveries(event)
    if deliveries:
        stmt = insert(Notification).values(
            [
                {
                    "event_id": event.id,
                    "recipient": recipient,
                    "minutes_before": minutes,
                    "due_at": due_at,
                    "next_attempt_at": due_at,
                    "status": NotificationStatus.PENDING.value,
                    "created_at": now,
                    "updated_at": now,
                }
                for recipient, minutes, due_at in deliveries
            ]
        )
        new_due = stmt.excluded.due_at
        sending = Notification.status == NotificationStatus.SENDING.value
        stmt = stmt.on_conflict_do_update(
            index_elements=["event_id", "recipient", "minutes_before"],
            set_={
                "due_at": new_due,
                # A retry's backoff (attempts > 0) still holds if the event moved closer.
                "next_attempt_at": case(
                    (Notification.attempts > 0, func.greatest(new_due, Notification.next_attempt_at)),
                    else_=new_due,
                ),
                "status": case((sending, Notification.status), else_=NotificationStatus.PENDING.value),
                "lease_until": case((sending, Notification.lease_until), else_=None),
                "updated_at": now,
            },
            where=and_(
                Notification.status.in_([s.value for s in REPLANNABLE]),
                or_(
                    Notification.due_at.is_distinct_from(new_due),
                    Notification.status == NotificationStatus.CANCELLED.value,
                ),
            ),
        )
        session.execute(stmt)
    wanted = [(recipient, minutes) for recipient, minutes, _ in deliveries]
    _cancel_pending(session, event.id, now, keep=wanted)


def cancel_notifications(session: Session, event_id: uuid.UUID, now: datetime) -> None:
    """Cancel every delivery of the event that has not gone out (the event was deleted)."""
    _cancel_pending(session, event_id, now, keep=[])


def _cancel_pending(session: Session, event_id: uuid.UUID, now: datetime, keep: Iterable[tuple[str, int]]) -> None:
    keep = list(keep)
    condition = and_(Notification.event_id == event_id, Notification.status == NotificationStatus.PENDING.value)
    if keep:
        condition = and_(condition, not_(tuple_(Notification.recipient, Notification.minutes_before).in_(keep)))
    session.execute(
        update(Notification)
        .where(condition)
        .values(status=NotificationStatus.CANCELLED.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def list_for_event(session: Session, event_id: uuid.UUID) -> list[Notification]:
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.event_id == event_id)
            .order_by(Notification.due_at, Notification.recipient, Notification.id)
        )
    )


# The notifier's side: claim due rows, expire or cancel what may no longer go out, record results.
#
# A claim moves rows to 'sending' with a lease and bumps ``attempts``; the bumped value doubles as
# the claim's token, so a run whose lease ran out cannot overwrite the result of the run that
# reclaimed the row.


@dataclass(frozen=True, slots=True)
class ClaimedNotification:
    """A delivery this run owns until ``lease_until``, with what the email needs."""

    id: int
    attempts: int
    recipient: str
    minutes_before: int
    # Its due time, or when it was planned if that came later.
    due_at: datetime
    event_id: uuid.UUID
    title: str
    description: str | None
    starts_at: datetime
    timezone: str


@dataclass(frozen=True, slots=True)
class Claim:
    to_send: list[ClaimedNotification]
    expired: int = 0
    cancelled: int = 0
    # Out of attempts when claimed: earlier runs kept dying before recording a result.
    failed: int = 0

    @property
    def rows(self) -> int:
        return len(self.to_send) + self.expired + self.cancelled + self.failed


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What happened to one claimed delivery, as it will be stored."""

    id: int
    attempts: int
    status: NotificationStatus
    message_id: str | None = None
    sent_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    # Never handed to SES (the run ran short of time, or stopped): due again at once, and not an attempt.
    unattempted: bool = False
    # Nobody knows whether SES took it (it timed out after the request went out): a retry may duplicate it.
    unconfirmed: bool = False

    @classmethod
    def released(cls, claimed: ClaimedNotification, now: datetime) -> DeliveryResult:
        return cls(claimed.id, claimed.attempts, NotificationStatus.PENDING, next_attempt_at=now, unattempted=True)


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


def reclaim_expired_leases(session: Session, now: datetime, *, limit: int) -> int:
    """Put rows whose lease ran out (their run died mid-batch) back in the due queue, at their due
    time if the event moved meanwhile, marked as possibly sent (that run may have emailed them)."""
    stale = (
        select(Notification.id)
        .where(Notification.status == NotificationStatus.SENDING.value, Notification.lease_until < now)
        .order_by(Notification.lease_until)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .subquery("stale")
    )
    result = session.execute(
        update(Notification)
        .where(Notification.id == _any_of(stale))
        .values(
            status=NotificationStatus.PENDING.value,
            lease_until=None,
            next_attempt_at=func.greatest(Notification.next_attempt_at, Notification.due_at),
            last_error="lease expired before the result was recorded; the email may have gone out",
            unconfirmed_attempts=Notification.unconfirmed_attempts + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def claim_due_notifications(
    session: Session,
    now: datetime,
    *,
    limit: int,
    lease_seconds: float,
    max_attempts: int,
    start_grace_seconds: float = 0,
) -> Claim:
    """Claim up to ``limit`` due rows in one statement; the caller commits before sending.

    Rows locked by another run are skipped, never waited for. Rows of events that started more
    than ``start_grace_seconds`` ago become ``expired``; rows of deleted events, and of recipients
    or reminders the event no longer has (removed while the row was being sent), ``cancelled``;
    neither is sent.
    """
    due = (
        select(Notification.id)
        .where(Notification.status == NotificationStatus.PENDING.value, Notification.next_attempt_at <= now)
        .order_by(Notification.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .subquery("due")
    )
    still_wanted = and_(
        Notification.recipient == any_(Event.recipients), Notification.minutes_before == any_(Event.reminders)
    )
    new_status = case(
        (or_(Event.deleted_at.is_not(None), not_(still_wanted)), NotificationStatus.CANCELLED.value),
        (Event.starts_at < now - timedelta(seconds=start_grace_seconds), NotificationStatus.EXPIRED.value),
        (Notification.attempts >= max_attempts, NotificationStatus.FAILED.value),
        else_=NotificationStatus.SENDING.value,
    )
    sending = new_status == NotificationStatus.SENDING.value
    stmt = (
        update(Notification)
        .where(Notification.id == _any_of(due), Event.id == Notification.event_id)
        .values(
            status=new_status,
            attempts=Notification.attempts + case((sending, 1), else_=0),
            lease_until=case((sending, now + timedelta(seconds=lease_seconds)), else_=None),
            last_error=case(
                (
                    new_status == NotificationStatus.FAILED.value,
                    func.concat(f"gave up after {max_attempts} attempts: ", Notification.last_error),
                ),
                else_=Notification.last_error,
            ),
            updated_at=now,
        )
        .returning(
            Notification.id,
            Notification.status,
            Notification.attempts,
            Notification.recipient,
            Notification.minutes_before,
            # As text: pg8000 parses timestamptz with strptime (~75 us each), fromisoformat takes ~1 us.
            # When it became due: planned after its due time (an event created at short notice), it
            # became due when planned; delivery lag counts from here.
            cast(func.greatest(Notification.due_at, Notification.created_at), Text),
            Event.id,
            Event.title,
            Event.description,
            cast(Event.starts_at, Text),
            Event.timezone,
        )
        .execution_options(synchronize_session=False)
    )
    to_send: list[ClaimedNotification] = []
    counts = {NotificationStatus.EXPIRED.value: 0, NotificationStatus.CANCELLED.value: 0}
    counts[NotificationStatus.FAILED.value] = 0
    for row in session.execute(stmt):
        if row.status == NotificationStatus.SENDING.value:
            to_send.append(
                ClaimedNotification(
                    id=row[0],
                    attempts=row[2],
                    recipient=row[3],
                    minutes_before=row[4],
                    due_at=datetime.fromisoformat(row[5]),
                    event_id=row[6],
                    title=row[7],
                    description=row[8],
                    starts_at=datetime.fromisoformat(row[9]),
                    timezone=row[10],
                )
            )
        else:
            counts[row.status] += 1
    return Claim(
        to_send,
        expired=counts[NotificationStatus.EXPIRED.value],
        cancelled=counts[NotificationStatus.CANCELLED.value],
        failed=counts[NotificationStatus.FAILED.value],
    )


def record_results(session: Session, results: Sequence[DeliveryResult], now: datetime) -> int:
    """Store a batch of results in one statement (pg8000's executemany is a round trip per row).

    A result counts only while its claim still holds (status 'sending', same attempt), except
    that a sent email is always recorded: it went out, whoever owns the row now. A row going back
    to pending waits for its due time too, in case the event moved while it was being sent; an
    unconfirmed attempt is added to the row's trace.
    Returns how many rows were written.
    """
    if not results:
        return 0
    v = (
        func.unnest(
            _array([r.id for r in results], BigInteger()),
            _array([r.attempts for r in results], Integer()),
            _array([r.status.value for r in results], Text()),
            _array([r.message_id for r in results], Text()),
            _array([r.sent_at for r in results], DateTime(timezone=True)),
            _array([r.next_attempt_at for r in results], DateTime(timezone=True)),
            _array([r.last_error for r in results], Text()),
            _array([r.unattempted for r in results], Boolean()),
            _array([r.unconfirmed for r in results], Boolean()),
        )
        .table_valued(
            column("id", BigInteger()),
            column("attempts", Integer()),
            column("status", Text()),
            column("message_id", Text()),
            column("sent_at", DateTime(timezone=True)),
            column("next_attempt_at", DateTime(timezone=True)),
            column("last_error", Text()),
            column("unattempted", Boolean()),
            column("unconfirmed", Boolean()),
            name="v",
        )
        .render_derived()
    )
    sent = NotificationStatus.SENT.value
    stmt = (
        update(Notification)
        .where(
            Notification.id == v.c.id,
            or_(
                and_(v.c.status == sent, Notification.status != sent),
                and_(
                    Notification.status == NotificationStatus.SENDING.value,
                    Notification.attempts == v.c.attempts,
                ),
            ),
        )
        .values(
            status=v.c.status,
            message_id=func.coalesce(v.c.message_id, Notification.message_id),
            sent_at=func.coalesce(v.c.sent_at, Notification.sent_at),
            next_attempt_at=case(
                (
                    v.c.status == NotificationStatus.PENDING.value,
                    func.greatest(v.c.next_attempt_at, Notification.due_at),
                ),
                else_=Notification.next_attempt_at,
            ),
            last_error=case((v.c.unattempted, Notification.last_error), else_=v.c.last_error),
            attempts=Notification.attempts - case((v.c.unattempted, 1), else_=0),
            unconfirmed_attempts=Notification.unconfirmed_attempts + case((v.c.unconfirmed, 1), else_=0),
            lease_until=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


# The account's send rate, shared by every run: a GCRA token bucket in one row. A run reserves
# consecutive send slots in chunks (one round trip per chunk, not per email) and spaces its sends
# over them, so overlapping runs together keep to the rate. A throttle from SES slows the rate for
# everyone, once per second however many runs saw it, and the rate doubles back toward the
# maximum every RATE_RECOVERY_SECONDS without a throttle. Times are the database's, so the runs'
# clocks do not matter.
SEND_RATE_NAME = "ses"
RATE_RECOVERY_SECONDS = 30.0
THROTTLE_EVERY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class SendSlots:
    """``count`` send slots reserved for a run: the first ``starts_in`` seconds from now, then one
    every ``1 / rate`` seconds."""

    count: int
    starts_in: float
    rate: float


def _current_rate(max_rate: float) -> ColumnElement[float]:
    since_throttle = cast(extract("epoch", func.statement_timestamp() - SendRate.throttled_at), Float)
    recovered = SendRate.throttled_rate * func.power(2.0, func.least(since_throttle / RATE_RECOVERY_SECONDS, 60.0))
    ceiling = literal(max_rate, Float)
    return case((SendRate.throttled_at.is_(None), ceiling), else_=func.least(ceiling, recovered))


def _seconds(amount: ColumnElement[Any]) -> ColumnElement[Any]:
    return amount * literal_column("interval '1 second'", Interval)


def reserve_send_slots(session: Session, count: int, *, max_rate: float) -> SendSlots:
    """Reserve the account's next ``count`` send slots (commit at once: other runs wait on this row)."""
    rate = _current_rate(max_rate)
    now = func.statement_timestamp()
    first = insert(SendRate).values(name=SEND_RATE_NAME, next_send_at=now + _seconds(literal(count / max_rate, Float)))
    stmt = first.on_conflict_do_update(
        index_elements=[SendRate.name],
        set_={"next_send_at": func.greatest(SendRate.next_send_at, now) + _seconds(count / rate)},
    ).returning(cast(extract("epoch", SendRate.next_send_at - now), Float), rate)
    ends_in, granted = session.execute(stmt).one()
    return SendSlots(count, max(0.0, ends_in - count / granted), granted)


def slow_send_rate(session: Session, *, max_rate: float, floor: float = 1.0) -> float:
    """SES throttled a send: halve the account's rate (unless another run just did); return the rate now."""
    rate = _current_rate(max_rate)
    now = func.statement_timestamp()
    slowed = session.execute(
        update(SendRate)
        .where(
            SendRate.name == SEND_RATE_NAME,
            or_(
                SendRate.throttled_at.is_(None),
                SendRate.throttled_at < now - _seconds(literal(THROTTLE_EVERY_SECONDS, Float)),
            ),
        )
        .values(throttled_rate=func.greatest(rate / 2, min(floor, max_rate)), throttled_at=now)
        .returning(SendRate.throttled_rate)
    ).scalar_one_or_none()
    if slowed is not None:
        return float(slowed)
    current = session.execute(select(rate).where(SendRate.name == SEND_RATE_NAME)).scalar_one_or_none()
    return float(current) if current is not None else max_rate


def _any_of(ids: Subquery) -> ColumnElement[Any]:
    # "id = ANY((SELECT array_agg(id) ...))" runs the locking subquery once, up front, and then
    # reads the rows by primary key; a join on it lets the planner pick a scan of the whole table.
    return any_(cast(select(func.array_agg(ids.c.id)).scalar_subquery(), ARRAY(BigInteger())))


def _array(values: list[Any], item_type: TypeEngine[Any]) -> ColumnElement[Any]:
    # Typed explicitly: pg8000 cannot infer an array's type from a list of NULLs.
    return cast(literal(values, ARRAY(item_type)), ARRAY(item_type))
