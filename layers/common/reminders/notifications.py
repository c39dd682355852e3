"""Notifications: planning deliveries when events change (and, for the notifier, claiming,
delivering and retrying them).

A notification row is one (event, recipient, minutes_before). Planning is an upsert on that
unique key, so re-planning after an update never duplicates a delivery and never touches a row
that was already sent, is being sent, or failed for good.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import and_, not_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from reminders.models import Event, Notification, NotificationStatus

# Rows that a change of the event may re-plan: nothing has gone out for them.
REPLANNABLE = (NotificationStatus.PENDING, NotificationStatus.CANCELLED, NotificationStatus.EXPIRED)


def planned_deliveries(event: Event) -> list[tuple[str, int, datetime]]:
    """(recipient, minutes_before, due_at) for every reminder of every recipient."""
    return [
        (recipient, minutes, event.starts_at - timedelta(minutes=minutes))
        for recipient in event.recipients
        for minutes in event.reminders
    ]


def plan_notifications(session: Session, event: Event, now: datetime) -> None:
    """Create or re-plan the event's notification rows and cancel those no longer wanted."""
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
        stmt = stmt.on_conflict_do_update(
            index_elements=["event_id", "recipient", "minutes_before"],
            set_={
                "due_at": stmt.excluded.due_at,
                "next_attempt_at": stmt.excluded.next_attempt_at,
                "status": NotificationStatus.PENDING.value,
                "attempts": 0,
                "lease_until": None,
                "last_error": None,
                "updated_at": now,
            },
            where=Notification.status.in_([s.value for s in REPLANNABLE]),
        )
        session.execute(stmt)
    wanted = [(recipient, minutes) for recipient, minutes, _ in deliveries]
    _cancel_pending(session, event.id, now, keep=wanted)


def cancel_notifications(session: Session, event_id: uuid.UUID, now: datetime) -> None:
    """Cancel every delivery of the event that has not gone out (the event was deleted)."""
    _cancel_pending(session, event_id, now, keep=[])


def _cancel_pending(
    session: Session, event_id: uuid.UUID, now: datetime, keep: Iterable[tuple[str, int]]
) -> None:
    keep = list(keep)
    condition = and_(Notification.event_id == event_id, Notification.status == NotificationStatus.PENDING.value)
    if keep:
        condition = and_(
            condition, not_(tuple_(Notification.recipient, Notification.minutes_before).in_(keep))
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

