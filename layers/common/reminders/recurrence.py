"""Recurring series: validating RFC 5545 lines and expanding them into occurrences (pure code).

Input is what Google Calendar's API takes: one ``RRULE:`` line plus any ``EXDATE``/``RDATE``
lines, beside the event's ``starts_at`` (DTSTART, the first occurrence) and IANA ``timezone``.
The series repeats by wall-clock time in that zone: 09:00 Berlin stays 09:00 Berlin across DST.
A local time that does not exist on some day (the hour skipped in spring) is shifted forward by
the gap, and one that exists twice (the hour repeated in autumn) takes the first, as RFC 5545
says; ``zoneinfo``'s ``fold=0`` means exactly that.

Expansion uses python-dateutil's ``rrule`` (the reference RFC 5545 engine that icalendar and
recurring-ical-events also build on, fast and lazy, so an unbounded series is fine); content
lines are parsed with ``icalendar``. Hand-written here: the check that ``starts_at`` is an
occurrence of the rule, because dateutil scans to year 9999 (seconds of CPU) before it admits a
rule has no occurrence at all, and a request must never be able to cost that.
"""

from __future__ import annotations

import calendar as _calendar
import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr
from icalendar import vRecur
from icalendar.parser import Contentline

MAX_LINES = 100
MAX_LINE_LENGTH = 4000
MAX_DATES = 1000
MAX_INTERVAL = 1000
FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
TOO_FINE = ("HOURLY", "MINUTELY", "SECONDLY")
RULE_PARTS = frozenset({"FREQ", "COUNT", "UNTIL", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"})
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
DATE_FORMS = (
    "EXDATE;TZID=Europe/Berlin:20261214T090000, EXDATE:20261214T080000Z, "
    "or EXDATE:20261214T090000 (a local time in the event's time zone)"
)


class RecurrenceError(ValueError):
    """The lines do not describe a series we take; the message says which line and why."""


@dataclass(frozen=True, slots=True)
class Rule:
    """An RRULE as validated: its parts in icalendar's form (UNTIL in UTC), ready to expand."""

    parts: vRecur
    expander: rrule

    @property
    def bounded(self) -> bool:
        return "COUNT" in self.parts or "UNTIL" in self.parts


@dataclass(frozen=True, slots=True)
class Series:
    """An event's occurrences: ``starts_at`` and, for a recurring event, its rule and dates.

    Every instant here is timezone-aware; occurrences come out in UTC.
    """

    starts_at: datetime
    zone: ZoneInfo
    rule: Rule | None = None
    exdates: frozenset[datetime] = frozenset()
    rdates: tuple[datetime, ...] = ()
    lines: tuple[str, ...] = field(default=())

    @property
    def recurring(self) -> bool:
        return self.rule is not None

    @property
    def bounded(self) -> bool:
        """Whether the series ends (a one-off event, or a rule with COUNT or UNTIL)."""
        return self.rule is None or self.rule.bounded

    def local(self, instant: datetime) -> datetime:
        """``instant`` as wall-clock time in the series' zone (aware)."""
        return instant.astimezone(self.zone)

    def occurrences(self, after: datetime, before: datetime) -> Iterator[datetime]:
        """Occurrences ``t`` with ``after <= t < before``, in UTC, ascending, none excluded."""
        after, before = _aware(after, "after"), _aware(before, "before")
        if after >= before:
            return
        last: datetime | None = None
        for instant in heapq.merge(self._from_rule(after), (d for d in self.rdates if d >= after)):
            if instant >= before:
                return
            if instant == last or instant in self.exdates:
                continue
            last = instant
            yield instant

    def first_occurrence(self) -> datetime | None:
        """The earliest occurrence, or None when every one is excluded."""
        return next(self.occurrences(self.starts_at, datetime.max.replace(tzinfo=UTC)), None)

    def _from_rule(self, after: datetime) -> Iterator[datetime]:
        if self.rule is None:
            if self.starts_at >= after:
                yield self.starts_at
            return
        dtstart_wall = self.local(self.starts_at).replace(tzinfo=None)
        # ``after`` stays in UTC so dateutil compares instants, not wall times.
        for local in self.rule.expander.xafter(after, inc=True):
            # The rule rebuilds wall times with fold=0; DTSTART itself keeps its exact instant
            # (it may sit in the second pass of a repeated hour).
            instant = self.starts_at if local.replace(tzinfo=None) == dtstart_wall else local.astimezone(UTC)
            if instant >= after:
                yield instant


def expand_all(series: Iterable[Series], after: datetime, before: datetime) -> Iterator[tuple[int, datetime]]:
    """(index of the series, occurrence) across several series, in time order."""
    streams = [((instant, i) for instant in s.occurrences(after, before)) for i, s in enumerate(series)]
    for instant, i in heapq.merge(*streams):
        yield i, instant


def one_off(starts_at: datetime, timezone: str) -> Series:
    return Series(starts_at=_aware(starts_at, "starts_at").astimezone(UTC), zone=zone_named(timezone))


def parse_series(lines: Sequence[str] | None, starts_at: datetime, timezone: str) -> Series:
    """Validate ``lines`` against the event's start and zone; raise :class:`RecurrenceError`.

    ``None`` or an empty list is a one-off event.
    """
    zone = zone_named(timezone)
    starts_at = _aware(starts_at, "starts_at").astimezone(UTC)
    if not lines:
        return Series(starts_at=starts_at, zone=zone)
    if len(lines) > MAX_LINES:
        raise RecurrenceError(f"at most {MAX_LINES} recurrence lines are accepted")
    dtstart = starts_at.astimezone(zone)
    rule: Rule | None = None
    exdates: set[datetime] = set()
    rdates: set[datetime] = set()
    cleaned: list[str] = []
    for index, raw in enumerate(lines):
        where = f"recurrence[{index}]"
        name, params, value = _split(raw, where)
        cleaned.append(raw.strip())
        if name == "RRULE":
            if rule is not None:
                raise RecurrenceError(f"{where}: a second RRULE; a series takes exactly one")
            if params:
                raise RecurrenceError(f"{where}: RRULE takes no parameters")
            rule = _parse_rule(value, dtstart, where)
        elif name in ("EXDATE", "RDATE"):
            target = exdates if name == "EXDATE" else rdates
            target.update(_parse_dates(name, params, value, zone, where))
            if len(exdates) + len(rdates) > MAX_DATES:
                raise RecurrenceError(f"{where}: at most {MAX_DATES} EXDATE and RDATE values are accepted")
        else:
            raise RecurrenceError(f"{where}: {name} lines are not accepted; use one RRULE and any EXDATE or RDATE")
    if rule is None:
        raise RecurrenceError("recurrence needs exactly one RRULE line (EXDATE and RDATE alone are not a series)")
    early = sorted(d for d in rdates if d < starts_at)
    if early:
        raise RecurrenceError(
            f"RDATE {early[0]:%Y-%m-%dT%H:%M:%SZ} is before starts_at; starts_at is the first occurrence"
        )
    series = Series(
        starts_at=starts_at,
        zone=zone,
        rule=rule,
        exdates=frozenset(exdates),
        rdates=tuple(sorted(rdates)),
        lines=tuple(cleaned),
    )
    if series.bounded and series.first_occurrence() is None:
        raise RecurrenceError("every occurrence of the series is excluded by EXDATE; it has no occurrence")
    return series


def zone_named(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise RecurrenceError(f"unknown IANA time zone {timezone!r}") from None


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise RecurrenceError(f"{name} must carry a UTC offset")
    return value


def _split(raw: Any, where: str) -> tuple[str, dict[str, str], str]:
    if not isinstance(raw, str):
        raise RecurrenceError(f"{where}: each recurrence line is a string")
    line = raw.strip()
    if not line:
        raise RecurrenceError(f"{where}: an empty line")
    if len(line) > MAX_LINE_LENGTH:
        raise RecurrenceError(f"{where}: longer than {MAX_LINE_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in line):
        raise RecurrenceError(f"{where}: control characters (line breaks included) are not accepted")
    try:
        name, params, value = Contentline(line).parts()
    except (ValueError, TypeError, KeyError, IndexError):
        raise RecurrenceError(
            f"{where}: {line[:60]!r} is not an RFC 5545 line such as 'RRULE:FREQ=WEEKLY;BYDAY=MO'"
        ) from None
    return str(name).upper(), {str(k).upper(): str(v) for k, v in params.items()}, str(value)


def _parse_rule(value: str, dtstart: datetime, where: str) -> Rule:
    try:
        parts = vRecur.from_ical(value)
    except (ValueError, TypeError, KeyError, IndexError):
        raise RecurrenceError(f"{where}: {value[:60]!r} is not an RRULE value such as 'FREQ=WEEKLY;BYDAY=MO'") from None
    unknown = sorted(set(parts) - RULE_PARTS)
    if unknown:
        raise RecurrenceError(
            f"{where}: {', '.join(unknown)} is not accepted; an RRULE takes FREQ, COUNT, UNTIL, INTERVAL, "
            "BYDAY, BYMONTHDAY, BYMONTH, BYSETPOS and WKST"
        )
    for part, values in parts.items():
        if part not in ("BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS") and len(values) != 1:
            raise RecurrenceError(f"{where}: {part} takes one value")
    freq = str(parts.get("FREQ", [""])[0]).upper()
    if freq in TOO_FINE:
        raise RecurrenceError(f"{where}: FREQ={freq} is finer than we take; use DAILY, WEEKLY, MONTHLY or YEARLY")
    if freq not in FREQUENCIES:
        raise RecurrenceError(f"{where}: FREQ must be DAILY, WEEKLY, MONTHLY or YEARLY")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RecurrenceError(f"{where}: COUNT and UNTIL together are not allowed (RFC 5545); use one")
    count = _int_part(parts, "COUNT", 1, 100_000, where)
    interval = _int_part(parts, "INTERVAL", 1, MAX_INTERVAL, where) or 1
    by_month = [_int_in(v, 1, 12, "BYMONTH", where) for v in parts.get("BYMONTH", [])]
    by_monthday = [_int_in(v, -31, 31, "BYMONTHDAY", where, nonzero=True) for v in parts.get("BYMONTHDAY", [])]
    by_setpos = [_int_in(v, -366, 366, "BYSETPOS", where, nonzero=True) for v in parts.get("BYSETPOS", [])]
    by_day = [_weekday(v, freq, where) for v in parts.get("BYDAY", [])]
    wkst = str(parts.get("WKST", ["MO"])[0]).upper()
    if wkst not in WEEKDAYS:
        raise RecurrenceError(f"{where}: WKST must be one of {', '.join(WEEKDAYS)}")
    if by_day and {n is None for _, n in by_day} == {True, False}:
        raise RecurrenceError(f"{where}: BYDAY mixes days with and without an ordinal (say BYDAY=1MO,1TU or MO,TU)")
    if by_setpos and freq not in ("MONTHLY", "YEARLY"):
        raise RecurrenceError(f"{where}: BYSETPOS is taken with FREQ=MONTHLY or YEARLY only")

    until_utc: datetime | None = None
    if "UNTIL" in parts:
        until_utc = _until(parts["UNTIL"][0], dtstart.tzinfo, where)
        if until_utc < dtstart:
            raise RecurrenceError(
                f"{where}: UNTIL {until_utc:%Y-%m-%dT%H:%M:%SZ} is before starts_at, so the series has no occurrence"
            )
    normalized = vRecur({"FREQ": freq})
    if interval != 1:
        normalized["INTERVAL"] = interval
    if count is not None:
        normalized["COUNT"] = count
    if until_utc is not None:
        normalized["UNTIL"] = until_utc
    for part, values in (
        ("BYMONTH", by_month),
        ("BYMONTHDAY", by_monthday),
        ("BYDAY", [f"{n or ''}{WEEKDAYS[d]}" for d, n in by_day]),
        ("BYSETPOS", by_setpos),
    ):
        if values:
            normalized[part] = values
    if "WKST" in parts:
        normalized["WKST"] = wkst

    # dateutil's defaults: a rule with neither BYMONTHDAY nor BYDAY repeats DTSTART's day.
    if not by_monthday and not by_day:
        if freq == "YEARLY":
            by_month, by_monthday = by_month or [dtstart.month], [dtstart.day]
        elif freq == "MONTHLY":
            by_monthday = [dtstart.day]
        elif freq == "WEEKLY":
            by_day = [(dtstart.weekday(), None)]
    filters = _Filters(freq, by_month, by_monthday, by_day, by_setpos)
    if not filters.contains(dtstart.date()):
        raise RecurrenceError(
            f"{where}: starts_at ({dtstart:%A %Y-%m-%d %H:%M} {dtstart.tzinfo}) is not an occurrence of the rule; "
            "starts_at is the series' first occurrence, so move it to a day the rule picks"
        )
    try:
        expander = rrulestr(normalized.to_ical().decode(), dtstart=dtstart)
    except (ValueError, TypeError) as exc:
        raise RecurrenceError(f"{where}: {exc}") from None
    assert isinstance(expander, rrule)
    return Rule(parts=normalized, expander=expander)


def _int_part(parts: vRecur, name: str, low: int, high: int, where: str) -> int | None:
    if name not in parts:
        return None
    return _int_in(parts[name][0], low, high, name, where)


def _int_in(value: Any, low: int, high: int, name: str, where: str, *, nonzero: bool = False) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise RecurrenceError(f"{where}: {name} must be a whole number") from None
    if not low <= number <= high or (nonzero and number == 0):
        raise RecurrenceError(f"{where}: {name} must be between {low} and {high}{' and not 0' if nonzero else ''}")
    return number


def _weekday(value: Any, freq: str, where: str) -> tuple[int, int | None]:
    text = str(value).strip().upper()
    day, ordinal = text[-2:], text[:-2]
    if day not in WEEKDAYS:
        raise RecurrenceError(f"{where}: BYDAY value {text!r} is not a weekday such as MO or 2TU or -1FR")
    if not ordinal:
        return WEEKDAYS.index(day), None
    if freq not in ("MONTHLY", "YEARLY"):
        raise RecurrenceError(f"{where}: BYDAY={text} has an ordinal, which only MONTHLY and YEARLY take")
    limit = 5 if freq == "MONTHLY" else 53
    n = _int_in(ordinal, -limit, limit, "a BYDAY ordinal", where, nonzero=True)
    return WEEKDAYS.index(day), n


def _until(value: Any, zone: Any, where: str) -> datetime:
    """UNTIL in UTC: a UTC time as is; a date means the end of that day, a floating time is
    local, both in the event's zone."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC)
        return value.replace(tzinfo=zone).astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(23, 59, 59), tzinfo=zone).astimezone(UTC)
    raise RecurrenceError(f"{where}: UNTIL must be a date or a date-time such as 20261231T235959Z")


def _parse_dates(name: str, params: dict[str, str], value: str, zone: ZoneInfo, where: str) -> list[datetime]:
    extra = sorted(set(params) - {"TZID", "VALUE"})
    value_type = params.get("VALUE", "DATE-TIME").upper()
    if extra or value_type != "DATE-TIME":
        raise RecurrenceError(f"{where}: this {name} form is not accepted; use {DATE_FORMS.replace('EXDATE', name)}")
    line_zone = zone
    if "TZID" in params:
        try:
            line_zone = ZoneInfo(params["TZID"])
        except (ZoneInfoNotFoundError, ValueError):
            raise RecurrenceError(f"{where}: TZID={params['TZID']!r} is not an IANA time zone") from None
    instants = []
    for item in value.split(","):
        text = item.strip()
        try:
            if len(text) == 16 and text.endswith("Z") and "TZID" not in params:
                instant = datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            elif len(text) == 15:
                instant = datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=line_zone).astimezone(UTC)
            else:
                raise ValueError(text)
        except ValueError:
            raise RecurrenceError(
                f"{where}: {text[:40]!r} is not a date-time we take; use {DATE_FORMS.replace('EXDATE', name)}"
            ) from None
        instants.append(instant)
    return instants


@dataclass(frozen=True, slots=True)
class _Filters:
    """The rule's BYxxx parts as a test on one date, the way dateutil applies them (defaults from
    DTSTART are satisfied by DTSTART itself, so only given parts are checked)."""

    freq: str
    by_month: list[int]
    by_monthday: list[int]
    by_day: list[tuple[int, int | None]]
    by_setpos: list[int]

    def contains(self, day: date) -> bool:
        if not self._passes(day):
            return False
        if not self.by_setpos:
            return True
        # BYSETPOS picks among the days of the period (month or year) that pass the other parts.
        if self.freq == "MONTHLY":
            first, length = day.replace(day=1), _calendar.monthrange(day.year, day.month)[1]
        else:
            first, length = date(day.year, 1, 1), 366 if _calendar.isleap(day.year) else 365
        candidates = [d for d in (first + timedelta(days=i) for i in range(length)) if self._passes(d)]
        chosen = {
            candidates[p - 1] if p > 0 else candidates[p]
            for p in self.by_setpos
            if -len(candidates) <= p <= len(candidates)
        }
        return day in chosen

    def _passes(self, day: date) -> bool:
        month_length = _calendar.monthrange(day.year, day.month)[1]
        if self.by_month and day.month not in self.by_month:
            return False
        if self.by_monthday and not (day.day in self.by_monthday or day.day - month_length - 1 in self.by_monthday):
            return False
        if not self.by_day:
            return True
        if all(n is None for _, n in self.by_day):
            return day.weekday() in {d for d, _ in self.by_day}
        if self.freq == "MONTHLY" or self.by_month:
            index, length = day.day - 1, month_length
        else:
            index, length = day.timetuple().tm_yday - 1, 366 if _calendar.isleap(day.year) else 365
        from_start, from_end = index // 7 + 1, -((length - 1 - index) // 7 + 1)
        return any(d == day.weekday() and n in (from_start, from_end) for d, n in self.by_day)
