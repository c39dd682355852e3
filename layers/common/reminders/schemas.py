"""Request and response models: the API contract (CONTRACT.md, version 1).

The API handler declares its routes with these types, so validation and the OpenAPI document
come from the same source.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_serializer,
    field_validator,
)

MAX_RECIPIENTS = 50
MAX_REMINDERS = 10
MAX_MINUTES_BEFORE = 43_200  # 30 days
DEFAULT_REMINDERS = (5,)


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


Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5000)]
TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_valid_timezone)]
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


class EventCreate(BaseModel):
    """Body of ``POST /events``."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description | None = None
    starts_at: AwareDatetime = Field(description="RFC 3339 with an offset; must be in the future")
    timezone: TimeZoneName = "UTC"
    recipients: Recipients | None = Field(default=None, description="Defaults to the caller's email")
    reminders: Reminders = Field(default_factory=lambda: [Reminder(minutes_before=m) for m in DEFAULT_REMINDERS])


class EventUpdate(BaseModel):
    """Body of ``PATCH /events/{id}``: any subset of the writable fields."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Description | None = None
    starts_at: AwareDatetime | None = None
    timezone: TimeZoneName | None = None
    recipients: Recipients | None = None
    reminders: Reminders | None = None

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
    due_at: datetime
    status: str
    attempts: int
    sent_at: datetime | None
    message_id: str | None
    last_error: str | None

    @field_serializer("due_at", "sent_at")
    def _utc(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        return value.astimezone(ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")


class NotificationList(BaseModel):
    items: list[NotificationOut]


class ErrorOut(BaseModel):
    """Every error response."""

    statusCode: int
    message: str
    detail: list[dict[str, Any]] | None = None
