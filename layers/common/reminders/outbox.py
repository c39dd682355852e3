"""The outbox: the ``notifications`` table's SQL. Planning reminders per occurrence (what to
plan is decided by :mod:`reminders.planning`), extending a series' horizon, and the notifier's
claim, expiry and recording of results.

A row is one (event, occurrence, recipient, minutes_before). Planning is an upsert on that unique
key, so re-planning after an update never duplicates a delivery. The due time follows the event
whatever state the row is in: a change re-plans only rows whose due time moved (keeping their
attempts, backoff and error), moves a row that is being sent too (its result then lands at the
new time), and never touches a row that was sent or failed for good. A reminder SES accepted
while its event changed stays sent: at most one email per (event, occurrence, recipient, reminder).
A one-off event's occurrence is the event itself: moving it moves its rows. A series' rows are
planned for occurrences before ``events.planned_until`` (the rolling horizon the notifier
extends); changing a series re-plans from now on, and rows of occurrences it no longer has
(an added EXDATE, say) are cancelled unless they went out.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Executable,
    Integer,
    Subquery,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.orm import Session, aliased
from sqlalchemy.types import TypeEngine

from reminders import planning
from reminders.calendar import series_of
from reminders.models import Event, Notification, NotificationStatus, Suppression
from reminders.planning import Delivery

# Rows that a change of the event may re-plan: nothing has gone out for them (or, while sending, nothing yet).
REPLANNABLE = (
    NotificationStatus.PENDING,
    NotificationStatus.SENDING,
    NotificationStatus.CANCELLED,
    NotificationStatus.EXPIRED,
)
# Rows that are done: the email went out, or never will (failed for good).
DONE = (NotificationStatus.SENT, NotificationStatus.FAILED)


def plan_notifications(session: Session, event: Event, now: datetime) -> None:
    """Create or re-plan the event's rows (from now to its horizon) and cancel those no longer wanted.

    A row is re-planned only when its due time moved (or it was cancelled and is wanted again):
    its attempts and last error stay, and a backoff still running is kept. A row being sent
    stays ``sending`` under its run's lease with the new due time, so whatever the run records
    (a retry, a release) waits for that time.
    """
    series = series_of(event)
    start, end = planning.initial_window(now)
    if event.planned_until is not None:
        end = max(end, event.planned_until)
    plan = planning.plan(series, event.recipients, event.reminders, start=start, end=end)
    deliveries = plan.deliveries
    if not series.recurring:
        deliveries = _follow_the_start(session, event, deliveries, now)
    _upsert(session, event.id, deliveries, now)
    _cancel_unwanted(session, event.id, plan, now)
    event.planned_until = plan.planned_until


def extend_horizons(session: Session, now: datetime, *, limit: int) -> int:
    """Plan the next occurrences of series whose horizon is running out; returns rows planned.

    Reads only ``ix_events_planned_until``; events another run is extending are skipped.
    """
    due = (
        select(Event)
        .where(
            Event.planned_until.is_not(None),
            Event.deleted_at.is_(None),
            Event.planned_until < now + planning.HORIZON - planning.EXTEND_AFTER,
        )
        .order_by(Event.planned_until)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    planned = 0
    for event in session.scalars(due).all():
        assert event.planned_until is not None
        start, end = planning.extension_window(event.planned_until, now)
        plan = planning.plan(series_of(event), event.recipients, event.reminders, start=start, end=end)
        planned += _upsert(session, event.id, plan.deliveries, now)
        event.planned_until = plan.planned_until
    session.flush()
    return planned


def cancel_notifications(session: Session, event_id: uuid.UUID, now: datetime) -> None:
    """Cancel every delivery of the event that has not gone out (the event was deleted)."""
    session.execute(
        update(Notification)
        .where(Notification.event_id == event_id, Notification.status == NotificationStatus.PENDING.value)
        .values(status=NotificationStatus.CANCELLED.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def _follow_the_start(session: Session, event: Event, deliveries: list[Delivery], now: datetime) -> list[Delivery]:
    """A one-off event's rows move with it (their due time is then re-planned by the upsert); a
    reminder already sent or failed for good is not planned again at the new time."""
    other = aliased(Notification)
    # One row per (recipient, reminder) moves (a series made a one-off has several); the rest are
    # cancelled with whatever else the plan does not want.
    movable = (
        select(func.min(Notification.id))
        .where(
            Notification.event_id == event.id,
            Notification.occurrence_at != event.starts_at,
            Notification.status.in_([s.value for s in REPLANNABLE]),
            ~exists().where(
                other.event_id == Notification.event_id,
                other.occurrence_at == event.starts_at,
                other.recipient == Notification.recipient,
                other.minutes_before == Notification.minutes_before,
            ),
        )
        .group_by(Notification.recipient, Notification.minutes_before)
    )
    session.execute(
        update(Notification)
        .where(Notification.id.in_(movable.scalar_subquery()))
        .values(occurrence_at=event.starts_at)
        .execution_options(synchronize_session=False)
    )
    done = set(
        session.execute(
            select(Notification.recipient, Notification.minutes_before).where(
                Notification.event_id == event.id,
                Notification.occurrence_at != event.starts_at,
                Notification.status.in_([s.value for s in DONE]),
            )
        ).all()
    )
    return [d for d in deliveries if (d.recipient, d.minutes_before) not in done]


def _wanted(deliveries: Sequence[Delivery]) -> Any:
    """The deliveries as a table (occurrence_at, recipient, minutes_before, due_at): one statement
    and three arrays however many rows (pg8000 allows 32767 parameters per statement)."""
    return (
        func.unnest(
            _array([d.occurrence_at for d in deliveries], DateTime(timezone=True)),
            _array([d.recipient for d in deliveries], Text()),
            _array([d.minutes_before for d in deliveries], Integer()),
            _array([d.due_at for d in deliveries], DateTime(timezone=True)),
        )
        .table_valued(
            column("occurrence_at", DateTime(timezone=True)),
            column("recipient", Text()),
            column("minutes_before", Integer()),
            column("due_at", DateTime(timezone=True)),
            name="w",
        )
        .render_derived()
    )


def _upsert(session: Session, event_id: uuid.UUID, deliveries: Sequence[Delivery], now: datetime) -> int:
    if not deliveries:
        return 0
    w = _wanted(deliveries)
    rows = select(
        literal(event_id, Notification.event_id.type),
        w.c.occurrence_at,
        w.c.recipient,
        w.c.minutes_before,
        w.c.due_at,
        w.c.due_at,
        literal(NotificationStatus.PENDING.value, Text()),
        literal(now, DateTime(timezone=True)),
        literal(now, DateTime(timezone=True)),
    )
    stmt = insert(Notification).from_select(
        [
            "event_id",
            "occurrence_at",
            "recipient",
            "minutes_before",
            "due_at",
            "next_attempt_at",
            "status",
            "created_at",
            "updated_at",
        ],
        rows,
    )
    new_due = stmt.excluded.due_at
    sending = Notification.status == NotificationStatus.SENDING.value
    stmt = stmt.on_conflict_do_update(
        index_elements=["event_id", "occurrence_at", "recipient", "minutes_before"],
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
    return int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


def _cancel_unwanted(session: Session, event_id: uuid.UUID, plan: planning.Plan, now: datetime) -> None:
    """Cancel pending rows the plan no longer has: a removed recipient or reminder, an occurrence
    the series lost (in the planned window; earlier ones are left to expire)."""
    condition = and_(Notification.event_id == event_id, Notification.status == NotificationStatus.PENDING.value)
    if plan.start is not None:
        condition = and_(condition, Notification.occurrence_at >= plan.start)
    if plan.deliveries:
        w = _wanted(plan.deliveries)
        condition = and_(
            condition,
            not_(
                exists(
                    select(1)
                    .select_from(w)
                    .where(
                        w.c.occurrence_at == Notification.occurrence_at,
                        w.c.recipient == Notification.recipient,
                        w.c.minutes_before == Notification.minutes_before,
                    )
                )
            ),
        )
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
    # The start of the occurrence the reminder is for.
    occurrence_at: datetime
    timezone: str
    # The event's owner (unsubscribe links name owner and recipient).
    owner: str = ""


@dataclass(frozen=True, slots=True)
class Claim:
    to_send: list[ClaimedNotification]
    expired: int = 0
    cancelled: int = 0
    # Out of attempts when claimed: earlier runs kept dying before recording a result.
    failed: int = 0
    # The recipient is on the suppression list: never sent.
    suppressed: int = 0

    @property
    def rows(self) -> int:
        return len(self.to_send) + self.expired + self.cancelled + self.failed + self.suppressed


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


def _reclaim_statement() -> Executable:
    stale = (
        select(Notification.id)
        .where(
            Notification.status == NotificationStatus.SENDING.value,
            Notification.lease_until < bindparam("now", type_=DateTime(timezone=True)),
        )
        .order_by(Notification.lease_until)
        .limit(bindparam("limit", type_=Integer()))
        .with_for_update(skip_locked=True)
        .subquery("stale")
    )
    return (
        update(Notification)
        .where(Notification.id == _any_of(stale))
        .values(
            status=NotificationStatus.PENDING.value,
            lease_until=None,
            next_attempt_at=func.greatest(Notification.next_attempt_at, Notification.due_at),
            last_error="lease expired before the result was recorded; the email may have gone out",
            unconfirmed_attempts=Notification.unconfirmed_attempts + 1,
            updated_at=bindparam("now", type_=DateTime(timezone=True)),
        )
    )


def reclaim_expired_leases(session: Session, now: datetime, *, limit: int) -> int:
    """Put rows whose lease ran out (their run died mid-batch) back in the due queue, at their due
    time if the event moved meanwhile, marked as possibly sent (that run may have emailed them)."""
    result = session.connection().execute(_RECLAIM, {"now": now, "limit": limit})
    return int(result.rowcount or 0)


def _claim_statement() -> Executable:
    now = bindparam("now", type_=DateTime(timezone=True))
    due = (
        select(Notification.id)
        .where(Notification.status == NotificationStatus.PENDING.value, Notification.next_attempt_at <= now)
        .order_by(Notification.next_attempt_at)
        .limit(bindparam("limit", type_=Integer()))
        .with_for_update(skip_locked=True)
        .subquery("due")
    )
    still_wanted = and_(
        Notification.recipient == any_(Event.recipients), Notification.minutes_before == any_(Event.reminders)
    )
    new_status = case(
        (or_(Event.deleted_at.is_not(None), not_(still_wanted)), NotificationStatus.CANCELLED.value),
        (is_suppressed(Notification.recipient, Event.owner), NotificationStatus.SUPPRESSED.value),
        (
            Notification.occurrence_at < bindparam("expire_before", type_=DateTime(timezone=True)),
            NotificationStatus.EXPIRED.value,
        ),
        (Notification.attempts >= bindparam("max_attempts", type_=Integer()), NotificationStatus.FAILED.value),
        else_=NotificationStatus.SENDING.value,
    )
    sending = new_status == NotificationStatus.SENDING.value
    return (
        update(Notification)
        .where(Notification.id == _any_of(due), Event.id == Notification.event_id)
        .values(
            status=new_status,
            attempts=Notification.attempts + case((sending, 1), else_=0),
            lease_until=case((sending, bindparam("lease_until", type_=DateTime(timezone=True))), else_=None),
            last_error=case(
                (
                    new_status == NotificationStatus.FAILED.value,
                    func.concat(bindparam("gave_up", type_=Text()), Notification.last_error),
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
            cast(Notification.occurrence_at, Text),
            Event.timezone,
            Event.owner,
        )
    )


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

    Rows locked by another run are skipped, never waited for. Rows of occurrences that started more
    than ``start_grace_seconds`` ago become ``expired``; rows of deleted events, and of recipients
    or reminders the event no longer has (removed while the row was being sent), ``cancelled``;
    neither is sent. Rows whose recipient is suppressed (for everyone, or for the event's owner)
    become ``suppressed`` and are not sent either.
    """
    parameters = {
        "now": now,
        "limit": limit,
        "expire_before": now - timedelta(seconds=start_grace_seconds),
        "max_attempts": max_attempts,
        "lease_until": now + timedelta(seconds=lease_seconds),
        "gave_up": f"gave up after {max_attempts} attempts: ",
    }
    to_send: list[ClaimedNotification] = []
    counts = {NotificationStatus.EXPIRED.value: 0, NotificationStatus.CANCELLED.value: 0}
    counts[NotificationStatus.FAILED.value] = 0
    counts[NotificationStatus.SUPPRESSED.value] = 0
    sending = NotificationStatus.SENDING.value
    for row in session.connection().execute(_CLAIM, parameters):
        if row[1] == sending:
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
                    occurrence_at=datetime.fromisoformat(row[9]),
                    timezone=row[10],
                    owner=row[11],
                )
            )
        else:
            counts[row[1]] += 1
    return Claim(
        to_send,
        expired=counts[NotificationStatus.EXPIRED.value],
        cancelled=counts[NotificationStatus.CANCELLED.value],
        failed=counts[NotificationStatus.FAILED.value],
        suppressed=counts[NotificationStatus.SUPPRESSED.value],
    )


def is_suppressed(recipient: Any, owner: Any) -> ColumnElement[bool]:
    """Whether the suppression list keeps reminders from ``owner`` away from ``recipient``: two
    probes of the suppressions' unique indexes (global, then per owner)."""
    email = func.lower(recipient)
    return or_(
        exists().where(Suppression.email == email, Suppression.owner.is_(None)),
        exists().where(Suppression.email == email, Suppression.owner == owner, Suppression.owner.is_not(None)),
    )


def _record_statement() -> Executable:
    # The results arrive as one JSON array (json.dumps is C; pg8000 writes an array parameter
    # element by element in Python), read as a table by jsonb_to_recordset.
    v = (
        func.jsonb_to_recordset(cast(bindparam("results", type_=Text()), JSONB))
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
        .render_derived(with_types=True)
    )
    sent = NotificationStatus.SENT.value
    return (
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
            updated_at=bindparam("now", type_=DateTime(timezone=True)),
        )
    )


def _json_time(at: datetime | None) -> str | None:
    if at is None:
        return None
    if at.tzinfo is None:
        raise ValueError("result times must be timezone-aware")
    return at.isoformat()


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
    document = json.dumps(
        [
            {
                "id": r.id,
                "attempts": r.attempts,
                "status": r.status.value,
                "message_id": r.message_id,
                "sent_at": _json_time(r.sent_at),
                "next_attempt_at": _json_time(r.next_attempt_at),
                "last_error": r.last_error,
                "unattempted": r.unattempted,
                "unconfirmed": r.unconfirmed,
            }
            for r in results
        ]
    )
    # Core, not the ORM's bulk update: nothing in the session holds these rows.
    result = session.connection().execute(_RECORD, {"results": document, "now": now})
    return int(result.rowcount or 0)


def _any_of(ids: Subquery) -> ColumnElement[Any]:
    # "id = ANY((SELECT array_agg(id) ...))" runs the locking subquery once, up front, and then
    # reads the rows by primary key; a join on it lets the planner pick a scan of the whole table.
    return any_(cast(select(func.array_agg(ids.c.id)).scalar_subquery(), ARRAY(BigInteger())))


def _array(values: list[Any], item_type: TypeEngine[Any]) -> ColumnElement[Any]:
    # Typed explicitly: pg8000 cannot infer an array's type from a list of NULLs.
    return cast(literal(values, ARRAY(item_type)), ARRAY(item_type))


# The notifier's statements, built once: a run claims and records many times, and building them
# cost more CPU than running them (SQLAlchemy then reuses their compiled form too).
_RECLAIM = _reclaim_statement()
_CLAIM = _claim_statement()
_RECORD = _record_statement()
