"""SES delivery feedback: what SES event publishing reports (Bounce, Complaint, Delivery, Reject),
read from the SNS notifications that carry it, and recorded.

A report finds its notification by SES message id (stored when the email was sent) and sets its
``feedback``; a permanent bounce or a complaint also puts the address on the global suppression
list. Recording is idempotent and order-free: feedback only ever moves up (delivered < bounced <
complained) and suppressions are added once, so SNS's at-least-once, unordered delivery is
harmless. A transient (or undetermined) bounce is recorded but suppresses nothing: the mailbox may
work tomorrow. A Reject (SES refused to send it: a virus) and any other event type are counted
and logged, nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import case, or_, update
from sqlalchemy.orm import Session

from reminders import suppressions
from reminders.models import FEEDBACK_RANK, Feedback, Notification, SuppressionReason

# Event types SES event publishing uses ("eventType"); identity notifications say "notificationType".
RECORDED_TYPES = ("Bounce", "Complaint", "Delivery", "Reject")


class UnreadableFeedback(ValueError):
    """Not an SES event we can read (one line, for the log)."""


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Mail(_Loose):
    message_id: str = Field(alias="messageId", min_length=1, max_length=200)
    destination: list[str] = []
    timestamp: datetime | None = None


class _Recipient(_Loose):
    email_address: str = Field(alias="emailAddress", min_length=1, max_length=1000)
    diagnostic_code: str | None = Field(default=None, alias="diagnosticCode")


class _Bounce(_Loose):
    bounce_type: str = Field(alias="bounceType")
    bounce_sub_type: str | None = Field(default=None, alias="bounceSubType")
    bounced_recipients: list[_Recipient] = Field(default=[], alias="bouncedRecipients")
    timestamp: datetime | None = None
    feedback_id: str | None = Field(default=None, alias="feedbackId")


class _Complaint(_Loose):
    complained_recipients: list[_Recipient] = Field(default=[], alias="complainedRecipients")
    timestamp: datetime | None = None
    feedback_id: str | None = Field(default=None, alias="feedbackId")
    complaint_feedback_type: str | None = Field(default=None, alias="complaintFeedbackType")


class _Delivery(_Loose):
    recipients: list[str] = []
    timestamp: datetime | None = None


class _Reject(_Loose):
    reason: str | None = None


class SesEvent(_Loose):
    """The JSON SES publishes for one email (event publishing, or an identity notification)."""

    event_type: str | None = Field(default=None, alias="eventType")
    notification_type: str | None = Field(default=None, alias="notificationType")
    mail: _Mail
    bounce: _Bounce | None = None
    complaint: _Complaint | None = None
    delivery: _Delivery | None = None
    reject: _Reject | None = None

    @property
    def kind(self) -> str:
        return self.event_type or self.notification_type or "unknown"


@dataclass(frozen=True, slots=True)
class Report:
    """One SES event, as the product reads it."""

    kind: Literal["Bounce", "Complaint", "Delivery", "Reject", "Other"]
    message_id: str
    recipients: tuple[str, ...] = ()
    feedback: Feedback | None = None
    # Suppress the recipients for everyone: a permanent bounce or a complaint.
    suppress: SuppressionReason | None = None
    detail: str = ""
    permanent: bool = False
    at: datetime | None = None
    event_type: str = ""


def read_report(message: str | dict[str, Any]) -> Report:
    """An SES event (its JSON text, or already parsed) as a :class:`Report`; raises
    :class:`UnreadableFeedback` for anything else."""
    try:
        data = json.loads(message) if isinstance(message, str) else message
        event = SesEvent.model_validate(data)
    except (ValueError, RecursionError, ValidationError) as exc:
        reason = exc.errors()[0].get("msg") if isinstance(exc, ValidationError) else type(exc).__name__
        raise UnreadableFeedback(f"not an SES event: {reason}") from None
    mail = event.mail
    kind = event.kind
    if kind == "Bounce" and event.bounce is not None:
        bounce = event.bounce
        permanent = bounce.bounce_type == "Permanent"
        return Report(
            kind="Bounce",
            message_id=mail.message_id,
            recipients=_addresses([r.email_address for r in bounce.bounced_recipients] or mail.destination),
            feedback=Feedback.BOUNCED,
            suppress=SuppressionReason.BOUNCE if permanent else None,
            detail=f"{bounce.bounce_type}/{bounce.bounce_sub_type or '-'} {bounce.feedback_id or ''}".strip(),
            permanent=permanent,
            at=bounce.timestamp or mail.timestamp,
            event_type=kind,
        )
    if kind == "Complaint" and event.complaint is not None:
        complaint = event.complaint
        return Report(
            kind="Complaint",
            message_id=mail.message_id,
            recipients=_addresses([r.email_address for r in complaint.complained_recipients] or mail.destination),
            feedback=Feedback.COMPLAINED,
            suppress=SuppressionReason.COMPLAINT,
            detail=f"complaint/{complaint.complaint_feedback_type or '-'} {complaint.feedback_id or ''}".strip(),
            at=complaint.timestamp or mail.timestamp,
            event_type=kind,
        )
    if kind == "Delivery" and event.delivery is not None:
        return Report(
            kind="Delivery",
            message_id=mail.message_id,
            recipients=_addresses(event.delivery.recipients or mail.destination),
            feedback=Feedback.DELIVERED,
            at=event.delivery.timestamp or mail.timestamp,
            event_type=kind,
        )
    if kind == "Reject":
        why = event.reject.reason if event.reject else None
        return Report(kind="Reject", message_id=mail.message_id, detail=why or "", event_type=kind)
    if kind in RECORDED_TYPES:
        raise UnreadableFeedback(f"{kind} event without its {kind.lower()} object")
    return Report(kind="Other", message_id=mail.message_id, event_type=kind[:40])


def _addresses(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(suppressions.normalize(v) for v in values if "@" in v))


@dataclass
class FeedbackSummary:
    """What a batch of SNS records did (the function's result and its metrics)."""

    delivered: int = 0
    bounced_permanent: int = 0
    bounced_transient: int = 0
    complained: int = 0
    rejected: int = 0
    other: int = 0
    # Records that were not an SES event we can read: logged and skipped.
    unreadable: int = 0
    # Reports for a message id no notification has (not ours, or older than the log).
    unknown_message: int = 0
    suppressions_added: int = 0
    skipped: list[str] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


def record_report(session: Session, report: Report, now: datetime, summary: FeedbackSummary) -> None:
    """Store one report: the notification's feedback (never downgraded), then any suppression."""
    if report.kind == "Bounce":
        if report.permanent:
            summary.bounced_permanent += len(report.recipients) or 1
        else:
            summary.bounced_transient += len(report.recipients) or 1
    elif report.kind == "Complaint":
        summary.complained += len(report.recipients) or 1
    elif report.kind == "Delivery":
        summary.delivered += len(report.recipients) or 1
    elif report.kind == "Reject":
        summary.rejected += 1
    else:
        summary.other += 1
    if report.feedback is not None and not set_feedback(session, report.message_id, report.feedback, report.at or now):
        summary.unknown_message += 1
    if report.suppress is not None:
        for address in report.recipients:
            summary.suppressions_added += suppressions.suppress_everywhere(
                session, address, report.suppress, now, detail=f"{report.detail} {report.message_id}"[:1000]
            )


def set_feedback(session: Session, message_id: str, feedback: Feedback, at: datetime) -> bool:
    """Raise the notification's feedback to ``feedback`` unless it already says as much or more;
    False when no notification has that message id."""
    rank = case({f.value: r for f, r in FEEDBACK_RANK.items()}, value=Notification.feedback, else_=0)
    updated = session.execute(
        update(Notification)
        .where(Notification.message_id == message_id)
        .values(
            feedback=case(
                (or_(Notification.feedback.is_(None), rank < feedback.rank), feedback.value),
                else_=Notification.feedback,
            ),
            feedback_at=case(
                (or_(Notification.feedback.is_(None), rank < feedback.rank), at), else_=Notification.feedback_at
            ),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(updated.rowcount)  # type: ignore[attr-defined]


def sns_messages(event: Any) -> Iterator[tuple[str, str | None, str | None]]:
    """(SNS message id, message text, why it cannot be read) of each record of a Lambda SNS event."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        yield "-", None, "not an SNS event (no Records list)"
        return
    for index, record in enumerate(records):
        sns = record.get("Sns") if isinstance(record, dict) else None
        if not isinstance(sns, dict):
            yield f"#{index}", None, "record without an Sns object"
            continue
        record_id = str(sns.get("MessageId") or f"#{index}")[:100]
        message = sns.get("Message")
        if not isinstance(message, str):
            yield record_id, None, "Sns.Message is not a string"
            continue
        yield record_id, message, None
