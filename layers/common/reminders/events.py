"""Event use cases: create, read, list, change, delete, and read an event's delivery log.

Each takes a session, the owner (the caller's identity, from the authorizer) and ``now``; it
raises :class:`NotFound` or :class:`InvalidInput`, never an HTTP status.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice

from sqlalchemy import bindparam, or_, select, tuple_
from sqlalchemy.orm import Session

from reminders import outbox
from reminders.calendar import series_of
from reminders.errors import InvalidInput, NotFound
from reminders.models import Event, Notification
from reminders.recurrence import RecurrenceError, Series, parse_series
from reminders.schemas import EventCreate, EventUpdate, parse_timestamp

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# The agenda's window: at most this long (a year, leap years included), a month unless asked.
MAX_AGENDA_WINDOW = timedelta(days=366)
DEFAULT_AGENDA_WINDOW = timedelta(days=30)
# Changes that move, add or remove occurrences or deliveries, so re-plan the event's reminders.
PLANNED_FIELDS = frozenset({"starts_at", "timezone", "recurrence", "recipients", "reminders"})


def _require_future(starts_at: datetime, now: datetime) -> None:
    if starts_at <= now:
        raise InvalidInput("starts_at must be in the future", field="starts_at")


def _series(lines: Sequence[str] | None, starts_at: datetime, timezone: str) -> Series:
    try:
        return parse_series(lines, starts_at, timezone)
    except RecurrenceError as exc:
        raise InvalidInput(str(exc), field="recurrence") from None


def create_event(
    session: Session, owner: str, data: EventCreate, now: datetime, *, default_recipient: str | None = None
) -> Event:
    _require_future(data.starts_at, now)
    series = _series(data.recurrence, data.starts_at, data.timezone)
    if data.recipients:
        recipients = [str(r) for r in data.recipients]
    elif default_recipient:
        recipients = [default_recipient]
    else:
        raise InvalidInput("recipients are required (the caller has no email to default to)", field="recipients")
    event = Event(
        id=uuid.uuid4(),
        owner=owner,
        title=data.title,
        description=data.description,
        starts_at=data.starts_at,
        timezone=data.timezone,
        recipients=recipients,
        reminders=[r.minutes_before for r in data.reminders],
        recurrence=list(series.lines) or None,
        created_at=now,
        updated_at=now,
    )
    session.add(event)
    session.flush()
    outbox.plan_notifications(session, event, now)
    return event


def _parse_id(event_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(event_id)
    except (ValueError, TypeError, AttributeError):
        raise NotFound("event not found") from None


# Built once: building and hashing a new ORM select costs more CPU per request than running it.
_EVENT_BY_ID = select(Event).where(
    Event.id == bindparam("event_id"), Event.owner == bindparam("owner"), Event.deleted_at.is_(None)
)
_EVENT_BY_ID_FOR_UPDATE = _EVENT_BY_ID.with_for_update()
# A deleted event too: its delivery log stays readable by its owner.
_EVENT_EVER_BY_ID = select(Event).where(Event.id == bindparam("event_id"), Event.owner == bindparam("owner"))


def get_event(session: Session, owner: str, event_id: str, *, for_update: bool = False) -> Event:
    query = _EVENT_BY_ID_FOR_UPDATE if for_update else _EVENT_BY_ID
    event = session.scalars(query, {"event_id": _parse_id(event_id), "owner": owner}).one_or_none()
    if event is None:
        raise NotFound("event not found")
    return event


def update_event(session: Session, owner: str, event_id: str, patch: EventUpdate, now: datetime) -> Event:
    # Row lock: two concurrent PATCHes re-plan one after the other, never interleaved.
    event = get_event(session, owner, event_id, for_update=True)
    changes = patch.model_dump(exclude_unset=True)
    if "starts_at" in changes:
        _require_future(changes["starts_at"], now)
    if "recipients" in changes:
        changes["recipients"] = [str(r) for r in changes["recipients"]]
    if "reminders" in changes:
        changes["reminders"] = [r["minutes_before"] for r in changes["reminders"]]
    if {"starts_at", "timezone", "recurrence"} & changes.keys():
        lines = changes.get("recurrence", event.recurrence)
        series = _series(lines, changes.get("starts_at", event.starts_at), changes.get("timezone", event.timezone))
        changes["recurrence"] = list(series.lines) or None
    for field, value in changes.items():
        setattr(event, field, value)
    event.updated_at = now
    session.flush()
    if PLANNED_FIELDS & changes.keys():
        outbox.plan_notifications(session, event, now)
    return event


def delete_event(session: Session, owner: str, event_id: str, now: datetime) -> None:
    event = get_event(session, owner, event_id, for_update=True)
    event.deleted_at = now
    event.updated_at = now
    outbox.cancel_notifications(session, event.id, now)


def list_event_notifications(session: Session, owner: str, event_id: str) -> list[Notification]:
    """The event's delivery log, deleted or not (a deleted event's rows read ``cancelled`` unless
    they went out); another owner's event is NotFound."""
    event = session.scalars(_EVENT_EVER_BY_ID, {"event_id": _parse_id(event_id), "owner": owner}).one_or_none()
    if event is None:
        raise NotFound("event not found")
    return outbox.list_for_event(session, event.id)


def encode_cursor(event: Event) -> str:
    raw = json.dumps([event.starts_at.isoformat(), str(event.id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (starts_at, id) a cursor from :func:`encode_cursor` holds; a forged or damaged one,
    whatever JSON it carries, is InvalidInput (its time goes through the same checks as any)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
        if not (isinstance(decoded, list) and len(decoded) == 2 and all(isinstance(part, str) for part in decoded)):
            raise ValueError("not [starts_at, id]")
        return parse_timestamp(decoded[0]), uuid.UUID(decoded[1])
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise InvalidInput("cursor is not one this API issued", field="cursor", location="query") from None


def list_events(
    session: Session,
    owner: str,
    *,
    starts_after: datetime | None = None,
    starts_before: datetime | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> tuple[list[Event], str | None]:
    """One page ordered by (starts_at, id), keyset-paginated: every event appears exactly once."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}", field="limit", location="query")
    query = select(Event).where(Event.owner == owner, Event.deleted_at.is_(None))
    if starts_after is not None:
        query = query.where(Event.starts_at > starts_after)
    if starts_before is not None:
        query = query.where(Event.starts_at < starts_before)
    if cursor:
        after_starts_at, after_id = decode_cursor(cursor)
        query = query.where(tuple_(Event.starts_at, Event.id) > tuple_(after_starts_at, after_id))
    rows = list(session.scalars(query.order_by(Event.starts_at, Event.id).limit(limit + 1)))
    page, more = rows[:limit], len(rows) > limit
    return page, (encode_cursor(page[-1]) if more else None)


def _encode(parts: list[str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str, size: int) -> list[str]:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(decoded, list) and len(decoded) == size and all(isinstance(p, str) for p in decoded)):
            raise ValueError("not a cursor")
        return decoded
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise InvalidInput("cursor is not one this API issued", field="cursor", location="query") from None


def _page_size(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}", field="limit", location="query")


def list_occurrences(
    session: Session,
    owner: str,
    event_id: str,
    *,
    after: datetime | None = None,
    before: datetime | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> tuple[list[datetime], str | None]:
    """One page of the event's occurrences in [after, before), from its first unless ``after``."""
    _page_size(limit)
    event = get_event(session, owner, event_id)
    start = after or event.starts_at
    if cursor:
        (last,) = _decode(cursor, 1)
        start = max(start, _cursor_time(last) + timedelta(microseconds=1))
    end = before or datetime.max.replace(tzinfo=UTC)
    found = list(islice(series_of(event).occurrences(start, end), limit + 1))
    page = found[:limit]
    return page, (_encode([page[-1].isoformat()]) if len(found) > limit else None)


def agenda(
    session: Session,
    owner: str,
    now: datetime,
    *,
    after: datetime | None = None,
    before: datetime | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> tuple[list[tuple[Event, datetime]], str | None]:
    """The caller's occurrences in [after, before) across events, ordered by (time, event id)."""
    _page_size(limit)
    after = after or now
    before = before or after + DEFAULT_AGENDA_WINDOW
    if before - after > MAX_AGENDA_WINDOW:
        raise InvalidInput("the window (after to before) may span at most 366 days", field="before", location="query")
    start, last = after, None
    if cursor:
        moment, last_id = _decode(cursor, 2)
        last = (_cursor_time(moment), _cursor_id(last_id))
        start = max(start, last[0])
    if start >= before:
        return [], None
    # One-off events that start in the window, and every series that has begun by its end.
    candidates = session.scalars(
        select(Event).where(
            Event.owner == owner,
            Event.deleted_at.is_(None),
            Event.starts_at < before,
            or_(Event.recurrence.is_not(None), Event.starts_at >= start),
        )
    ).all()
    streams = [_tagged(series_of(e).occurrences(start, before), e.id, i) for i, e in enumerate(candidates)]
    page: list[tuple[Event, datetime]] = []
    for instant, event_id, index in heapq.merge(*streams):
        if last is not None and (instant, event_id) <= last:
            continue
        if len(page) == limit:
            tail_event, tail_instant = page[-1]
            return page, _encode([tail_instant.isoformat(), str(tail_event.id)])
        page.append((candidates[index], instant))
    return page, None


def _tagged(
    occurrences: Iterator[datetime], event_id: uuid.UUID, index: int
) -> Iterator[tuple[datetime, uuid.UUID, int]]:
    for instant in occurrences:
        yield instant, event_id, index


def _cursor_time(text: str) -> datetime:
    try:
        return parse_timestamp(text)
    except ValueError:
        raise InvalidInput("cursor is not one this API issued", field="cursor", location="query") from None


def _cursor_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidInput("cursor is not one this API issued", field="cursor", location="query") from None
