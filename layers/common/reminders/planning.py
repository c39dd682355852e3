"""Planning reminders (pure): which deliveries an event wants, one per (occurrence, recipient,
minutes_before), and how far ahead they are planned.

A one-off event is planned in full. A series is planned over a rolling horizon: occurrences that
start before ``now + HORIZON`` get rows; the notifier extends the horizon as time passes (see
:func:`needs_extension`), so an unbounded series never fills the table. The horizon is longer
than the longest reminder (30 days), so every reminder has its row before it is due.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from reminders.recurrence import Series

HORIZON = timedelta(days=35)
# The notifier extends an event's horizon once it is this much shorter than HORIZON: about one
# extension per series a day, each planning a day's worth of occurrences.
EXTEND_AFTER = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Delivery:
    occurrence_at: datetime
    recipient: str
    minutes_before: int

    @property
    def due_at(self) -> datetime:
        return self.occurrence_at - timedelta(minutes=self.minutes_before)


@dataclass(frozen=True, slots=True)
class Plan:
    """The deliveries of the occurrences in [``start``, ``end``); ``planned_until`` is where the
    next extension starts, or None when no occurrence is left after ``end`` (nothing to extend)."""

    deliveries: list[Delivery]
    start: datetime | None
    end: datetime | None
    planned_until: datetime | None

    def covers(self, occurrence_at: datetime) -> bool:
        """Whether an occurrence at this time falls in the planned window (so its rows are decided here)."""
        if self.start is None or self.end is None:
            return True
        return self.start <= occurrence_at < self.end


def plan(
    series: Series, recipients: Sequence[str], reminders: Sequence[int], *, start: datetime, end: datetime
) -> Plan:
    """The deliveries of every occurrence in [start, end); a one-off event's whatever the window."""
    if not series.recurring:
        return Plan(_deliveries([series.starts_at], recipients, reminders), None, None, None)
    occurrences = list(series.occurrences(start, end)) if start < end else []
    # A bounded series (COUNT or UNTIL) ends: look for an occurrence after the window.
    more = (
        not series.bounded or next(series.occurrences(end, datetime.max.replace(tzinfo=end.tzinfo)), None) is not None
    )
    return Plan(_deliveries(occurrences, recipients, reminders), start, end, end if more else None)


def initial_window(now: datetime) -> tuple[datetime, datetime]:
    """The window planned when an event is created or changed: from now to the horizon."""
    return now, now + HORIZON


def needs_extension(planned_until: datetime, now: datetime) -> bool:
    return planned_until < now + HORIZON - EXTEND_AFTER


def extension_window(planned_until: datetime, now: datetime) -> tuple[datetime, datetime]:
    return planned_until, max(planned_until, now + HORIZON)


def _deliveries(occurrences: Sequence[datetime], recipients: Sequence[str], reminders: Sequence[int]) -> list[Delivery]:
    return [
        Delivery(occurrence_at, recipient, minutes)
        for occurrence_at in occurrences
        for recipient in recipients
        for minutes in reminders
    ]
