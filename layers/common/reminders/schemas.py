"""Request and response models: the API contract (CONTRACT.md, version 1.1).

The API handler declares its routes with these types, so validation and the OpenAPI document
come from the same source.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_serializer,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from reminders import recurrence

MAX_RECIPIENTS = 50
MAX_REMINDERS = 10
MAX_MINUTES_BEFORE = 43_200  # 30 days
DEFAULT_REMINDERS = (5,)
# The Idempotency-Key header (reminders.idempotency).
MAX_IDEMPOTENCY_KEY_LENGTH = 255


# RFC 3339 section 5.6 (a space for the T, as its note allows; any case): no bare numbers, no
# ISO 8601 variants (week dates, basic format, missing seconds or offset).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
# Instants that every time zone, PostgreSQL and the driver can represent: Python's years 1..9999,
# less a day at each end so the time in any zone (offsets are under 26 h) is still a datetime.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)
RFC3339_HINT = "an RFC 3339 date-time string with an offset, e.g. 2026-12-01T09:00:00Z"


def parse_timestamp(value: Any) -> datetime:
    """An aware datetime from an RFC 3339 string (or an aware datetime from Python code), within
    [EARLIEST, LATEST]; ValueError otherwise."""
    if isinstance(value, datetime):
        parsed = value
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise ValueError(f"must be {RFC3339_HINT}")
    elif isinstance(value, str) and len(value) <= 40 and _RFC3339.fullmatch(value):
        try:
            parsed = datetime.fromisoformat(value.upper())
        except ValueError:
            raise ValueError(f"is not a valid date-time: must be {RFC3339_HINT}") from None
    else:
        raise ValueError(f"must be {RFC3339_HINT}")
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or not EARLIEST <= in_utc <= LATEST:
        raise ValueError("must lie between 0001-01-02 and 9999-12-30 (UTC)")
    return parsed


# Every date-time the API accepts, in bodies, query strings and cursors.
Timestamp = Annotated[AwareDatetime, BeforeValidator(parse_timestamp)]

# Control characters (C0, DEL, C1) and lone surrogates: PostgreSQL rejects NUL, the driver cannot
# encode a surrogate, and a line break in a title would end up in an email header.
_MULTILINE_WHITESPACE = frozenset("\t\n\r")


def _no_control_characters(value: str, allowed: frozenset[str] = frozenset()) -> str:
    for char in value:
        if char not in allowed and unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(f"must not contain control characters (found U+{ord(char):04X})")
    return value


def _no_control_characters_but_line_breaks(value: str) -> str:
    return _no_control_characters(value, _MULTILINE_WHITESPACE)


def _valid_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name


def _distinct_recipients(addresses: list[str]) -> list[str]:
    seen: set[str] = set()
    for address in addresses:
        key = address.lower()
        if key in seen:
            raise ValueError(f"recipient {address!r} is listed twice")
        seen.add(key)
    return addresses


# The patterns only tell the OpenAPI document's readers (and fuzzers) the rule; the validators enforce it.
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_control_characters),
    Field(json_schema_extra={"pattern": r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"}),
]
Description = Annotated[
    str,
    StringConstraints(max_length=5000),
    AfterValidator(_no_control_characters_but_line_breaks),
    Field(json_schema_extra={"pattern": r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"}),
]
TimeZoneName = Annotated[
    str, StringConstraints(max_length=64), AfterValidator(_no_control_characters), AfterValidator(_valid_timezone)
]
RecurrenceLine = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=recurrence.MAX_LINE_LENGTH),
    AfterValidator(_no_control_characters),
]
# Checked against starts_at and timezone by the use case (reminders.recurrence), which knows both.
Recurrence = Annotated[
    list[RecurrenceLine],
    Field(
        max_length=recurrence.MAX_LINES,
        description="RFC 5545 lines as Google Calendar takes them: one RRULE, any EXDATE/RDATE; null: one-off",
        examples=[["RRULE:FREQ=WEEKLY;BYDAY=MO", "EXDATE;TZID=Europe/Berlin:20261214T090000"]],
    ),
]
Recipients = Annotated[
    list[EmailStr],
    Field(min_length=1, max_length=MAX_RECIPIENTS),
    AfterValidator(_distinct_recipients),
]


class Reminder(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    minutes_before: int = Field(ge=0, le=MAX_MINUTES_BEFORE, strict=True, description="Minutes before starts_at")


def _distinct_reminders(reminders: list[Reminder]) -> list[Reminder]:
    minutes = [r.minutes_before for r in reminders]
    if len(set(minutes)) != len(minutes):
        raise ValueError("reminders must be distinct")
    return reminders


Reminders = Annotated[list[Reminder], Field(max_length=MAX_REMINDERS), AfterValidator(_distinct_reminders)]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class EventCreate(BaseModel):
    """Body of ``POST /events``."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description | None = None
    starts_at: Timestamp = Field(description="RFC 3339 with an offset; must be in the future")
    timezone: TimeZoneName = "UTC"
    recipients: Recipients | None = Field(default=None, description="Defaults to the caller's email")
    reminders: Reminders = Field(default_factory=lambda: [Reminder(minutes_before=m) for m in DEFAULT_REMINDERS])
    recurrence: Recurrence | None = None


class EventUpdate(BaseModel):
    """Body of ``PATCH /events/{id}``: any subset of the writable fields."""

    model_config = ConfigDict(extra="forbid")

    # Absent means "unchanged", but null is refused (see _not_null), and the OpenAPI document says
    # so (no null, no default); only description may be null (it clears it).
    title: Title | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    description: Description | None = None
    starts_at: Timestamp | SkipJsonSchema[None] = Field(
        default=None, description="RFC 3339 with an offset", json_schema_extra=_no_default
    )
    timezone: TimeZoneName | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    recipients: Recipients | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    reminders: Reminders | SkipJsonSchema[None] = Field(default=None, json_schema_extra=_no_default)
    # null makes the event a one-off again.
    recurrence: Recurrence | None = None

    @field_validator("title", "starts_at", "timezone", "recipients", "reminders", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Only description may be cleared; null elsewhere is a mistake, not "leave unchanged".
        if value is None:
            raise ValueError("may not be null")
        return value


class EventOut(BaseModel):
    """An event as the API returns it (times in UTC)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str | None
    starts_at: datetime
    timezone: str
    recipients: list[str]
    reminders: list[Reminder]
    recurrence: list[str] | None = None
    created_at: datetime
    updated_at: datetime

    @field_validator("reminders", mode="before")
    @classmethod
    def _from_minutes(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(m, int) for m in value):
            return [{"minutes_before": m} for m in value]
        return value

    @field_serializer("starts_at", "created_at", "updated_at")
    def _utc(self, value: datetime) -> str:
        return value.astimezone(ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")


class EventPage(BaseModel):
    """Body of ``GET /events``: one page, and the cursor of the next (null on the last)."""

    items: list[EventOut]
    next_cursor: str | None


class NotificationOut(BaseModel):
    """One planned or made delivery of a reminder."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    recipient: str
    minutes_before: int
    occurrence_at: datetime
    due_at: datetime
    status: str
    attempts: int
    sent_at: datetime | None
    message_id: str | None
    last_error: str | None
    # What SES reported after sending: null, "delivered", "bounced" or "complained".
    feedback: Literal["delivered", "bounced", "complained"] | None = None

    @field_serializer("occurrence_at", "due_at", "sent_at")
    def _utc(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        return value.astimezone(ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")


class NotificationList(BaseModel):
    items: list[NotificationOut]


class SuppressionOut(BaseModel):
    """An address the caller's reminders will not reach, and why."""

    email: str
    reason: Literal["bounce", "complaint", "unsubscribe"]
    since: datetime

    @field_serializer("since")
    def _utc(self, value: datetime) -> str:
        return _utc_text(value)


class SuppressionList(BaseModel):
    items: list[SuppressionOut]


class UnsubscribeOut(BaseModel):
    """The answer to a one-click unsubscribe."""

    unsubscribed: bool
    message: str


def _utc_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class OccurrenceOut(BaseModel):
    starts_at: datetime

    @field_serializer("starts_at")
    def _utc(self, value: datetime) -> str:
        return _utc_text(value)


class OccurrencePage(BaseModel):
    """Body of ``GET /events/{id}/occurrences``: one page in time order."""

    items: list[OccurrenceOut]
    next_cursor: str | None


class AgendaItem(BaseModel):
    event_id: uuid.UUID
    title: str
    starts_at: datetime

    @field_serializer("starts_at")
    def _utc(self, value: datetime) -> str:
        return _utc_text(value)


class AgendaPage(BaseModel):
    """Body of ``GET /agenda``: the caller's occurrences in the window, in time order."""

    items: list[AgendaItem]
    next_cursor: str | None


class CalendarFeedOut(BaseModel):
    """Body of ``GET /calendar/feed``: the private feed's URL (the secret in it is the only key)."""

    url: str


class ErrorOut(BaseModel):
    """Every error response."""

    statusCode: int
    message: str
    detail: list[dict[str, Any]] | None = None
