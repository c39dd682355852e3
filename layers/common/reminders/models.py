"""SQLAlchemy tables. The Alembic migrations in ``migrations/versions`` create exactly these."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    # The recipient is on the suppression list (bounced, complained, or unsubscribed from the owner).
    SUPPRESSED = "suppressed"


class Feedback(enum.StrEnum):
    """What SES reported about a sent reminder. Later reports never downgrade an earlier one:
    a complaint outranks a bounce, which outranks a delivery (so order of arrival does not matter)."""

    DELIVERED = "delivered"
    BOUNCED = "bounced"
    COMPLAINED = "complained"

    @property
    def rank(self) -> int:
        return FEEDBACK_RANK[self]


FEEDBACK_RANK = {Feedback.DELIVERED: 1, Feedback.BOUNCED: 2, Feedback.COMPLAINED: 3}


class SuppressionReason(enum.StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"


class Event(Base):
    __tablename__ = "events"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(320), nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, server_default="UTC")
    recipients: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    reminders: Mapped[list[int]] = mapped_column(ARRAY(Integer), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    # Deleted events keep their delivery log; every query filters on deleted_at IS NULL.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # RFC 5545 lines (one RRULE, any EXDATE/RDATE) as the client sent them; NULL for a one-off event.
    recurrence: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    # A series' reminders are planned for occurrences before this instant; the notifier moves it
    # forward (the rolling horizon). NULL once every occurrence is planned (one-off, or ended).
    planned_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_events_owner_starts_at_id",
            "owner",
            "starts_at",
            "id",
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # The notifier's horizon step reads only series still to be extended.
        Index(
            "ix_events_planned_until",
            "planned_until",
            postgresql_where=text("planned_until IS NOT NULL AND deleted_at IS NULL"),
        ),
    )


class Notification(Base):
    """One planned delivery: (event, occurrence, recipient, minutes_before). Also the delivery log."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("events.id", ondelete="CASCADE"), nullable=False
    )
    # The start of the occurrence this reminder is for (a one-off event's starts_at).
    occurrence_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    recipient: Mapped[str] = mapped_column(String(320), nullable=False)
    minutes_before: Mapped[int] = mapped_column(Integer, nullable=False)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_id: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    # Attempts whose outcome nobody saw (a run died or lost its lease mid-send, or SES timed out after
    # the request went out): each may have emailed the recipient. Never reset, so a duplicate stays visible.
    unconfirmed_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # SES's word on the sent email (found by message_id): delivered, bounced or complained.
    feedback: Mapped[str | None] = mapped_column(String(16))
    feedback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    __table_args__ = (
        UniqueConstraint("event_id", "occurrence_at", "recipient", "minutes_before"),
        CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'cancelled', 'expired', 'suppressed')", name="status"
        ),
        CheckConstraint("feedback IN ('delivered', 'bounced', 'complained')", name="feedback"),
        # The due query reads only this index: O(log n + k) however many rows are sent or cancelled.
        Index("ix_notifications_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        # Reclaiming rows whose lease ran out (a run died mid-batch).
        Index("ix_notifications_lease", "lease_until", postgresql_where=text("status = 'sending'")),
        # Feedback events find their notification by SES message id.
        Index("ix_notifications_message_id", "message_id", postgresql_where=text("message_id IS NOT NULL")),
    )


class IdempotencyRecord(Base):
    """One ``Idempotency-Key`` of one caller (Powertools' idempotency record, in PostgreSQL).

    ``key`` is Powertools' hashed key: a prefix and the SHA-256 of (caller, Idempotency-Key), so keys
    are scoped to the caller; ``payload_hash`` tells a retry from a different request. Timestamps
    are Powertools' own: Unix seconds (``expiry_timestamp``) and milliseconds (in progress).
    """

    __tablename__ = "idempotency_records"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    expiry_timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    in_progress_expiry_timestamp: Mapped[int | None] = mapped_column(BigInteger)
    payload_hash: Mapped[str] = mapped_column(String(128), nullable=False, server_default="")
    response_data: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    __table_args__ = (
        CheckConstraint("status IN ('INPROGRESS', 'COMPLETED')", name="status"),
        # Purging expired records reads only this index.
        Index("ix_idempotency_records_expiry_timestamp", "expiry_timestamp"),
    )


class CalendarFeed(Base):
    """A user's private iCalendar feed. The secret in its URL is not stored, only its SHA-256."""

    __tablename__ = "calendar_feeds"

    owner: Mapped[str] = mapped_column(String(320), primary_key=True)
    feed_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class SendRate(Base):
    """The SES account's send rate, shared by every notifier run: a token bucket (GCRA) that runs
    reserve slots from in chunks, slowed for everyone when SES throttles one of them."""

    __tablename__ = "send_rate"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # When the next send may start (the bucket's "theoretical arrival time").
    next_send_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # The rate SES last throttled us down to, and when; it recovers toward MAX_SEND_RATE.
    throttled_rate: Mapped[float | None] = mapped_column(Float)
    throttled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Suppression(Base):
    """An address reminders must not reach: for everyone (``owner`` NULL: a permanent bounce or a
    complaint) or for one owner's reminders (an unsubscribe). ``email`` is lower case; recipients
    are matched on ``lower(recipient)`` and stay as the owner wrote them."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    owner: Mapped[str | None] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(16), nullable=False)
    # What caused it (the bounce type, the SES feedback id), for whoever looks into it.
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    __table_args__ = (
        CheckConstraint("reason IN ('bounce', 'complaint', 'unsubscribe')", name="reason"),
        CheckConstraint("email = lower(email)", name="email_lower"),
        # One global row per address, one row per (address, owner): repeated feedback is a no-op.
        Index("ix_suppressions_global_email", "email", unique=True, postgresql_where=text("owner IS NULL")),
        Index("ix_suppressions_email_owner", "email", "owner", unique=True, postgresql_where=text("owner IS NOT NULL")),
        Index("ix_suppressions_owner", "owner", postgresql_where=text("owner IS NOT NULL")),
    )
