"""The suppression list: addresses reminders must not reach.

A permanent bounce or a complaint suppresses an address for everyone (``owner`` NULL); an
unsubscribe suppresses it for one owner's reminders. Addresses are kept in lower case and matched
on ``lower(recipient)`` (the notifier's claim, :func:`reminders.outbox.is_suppressed`), so an
event's recipients stay as its owner wrote them. Adding is idempotent: the first reason and time
stay, a repeated bounce or a second click changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote

from sqlalchemy import and_, delete, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from reminders.errors import InvalidInput, NotFound
from reminders.models import Event, Suppression, SuppressionReason

# Room for an address of 320 characters (RFC 5321's 64 + 1 + 255).
MAX_EMAIL_LENGTH = 320


@dataclass(frozen=True, slots=True)
class SuppressedAddress:
    email: str
    reason: str
    since: datetime


def normalize(email: str) -> str:
    return email.strip().lower()


def parse_address(text: str) -> str:
    """An address from a URL path (percent-encoded or not), lower case; InvalidInput if it is not one."""
    address = unquote(text) if "@" not in text else text
    local, at, domain = address.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain.strip(".")
        or len(address) > MAX_EMAIL_LENGTH
        or any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in address)
    ):
        raise InvalidInput("not an email address", field="email", location="path")
    return normalize(address)


def suppress_everywhere(
    session: Session, email: str, reason: SuppressionReason, now: datetime, *, detail: str | None = None
) -> bool:
    """Suppress ``email`` for every owner (a permanent bounce, a complaint); True if it was new."""
    stmt = (
        insert(Suppression)
        .values(
            email=normalize(email)[:MAX_EMAIL_LENGTH], owner=None, reason=reason.value, detail=detail, created_at=now
        )
        .on_conflict_do_nothing(index_elements=[Suppression.email], index_where=Suppression.owner.is_(None))
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def unsubscribe(session: Session, owner: str, email: str, now: datetime) -> bool:
    """Stop every reminder from ``owner`` to ``email``; True if it was new."""
    stmt = (
        insert(Suppression)
        .values(email=normalize(email), owner=owner, reason=SuppressionReason.UNSUBSCRIBE.value, created_at=now)
        .on_conflict_do_nothing(
            index_elements=[Suppression.email, Suppression.owner], index_where=Suppression.owner.is_not(None)
        )
    )
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def lift_unsubscribe(session: Session, owner: str, email: str) -> None:
    """Remove the owner's own unsubscribe of ``email`` (bounces and complaints stay); NotFound if none."""
    deleted = session.execute(
        delete(Suppression).where(
            Suppression.owner == owner,
            Suppression.email == normalize(email),
            Suppression.reason == SuppressionReason.UNSUBSCRIBE.value,
        )
    )
    if not deleted.rowcount:  # type: ignore[attr-defined]
        raise NotFound("no unsubscribe of that address for your reminders")


def list_for_owner(session: Session, owner: str) -> list[SuppressedAddress]:
    """Addresses the owner's reminders will not reach: the owner's unsubscribes, and the global
    suppressions of the owner's own recipients (never other people's addresses). An address both
    bounced and unsubscribed is listed twice, once per reason."""
    recipients = (
        select(func.lower(func.unnest(Event.recipients)).label("email"))
        .where(Event.owner == owner, Event.deleted_at.is_(None))
        .subquery("recipients")
    )
    own_recipient = select(literal(1)).where(recipients.c.email == Suppression.email).exists()
    rows = session.execute(
        select(Suppression.email, Suppression.reason, Suppression.created_at, Suppression.owner)
        .where(or_(Suppression.owner == owner, and_(Suppression.owner.is_(None), own_recipient)))
        .order_by(Suppression.email, Suppression.owner.nulls_first())
    ).all()
    return [SuppressedAddress(email=email, reason=reason, since=since) for email, reason, since, _ in rows]
