"""EventBridge schedules from the template, fired on time with a Scheduled Event payload.

Hand-written: rate() and AWS's six-field cron() are small, and no maintained library fires
EventBridge rules locally (moto stores rules but never fires them).
"""

from __future__ import annotations

import calendar
import re
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from devserver import console
from devserver.template import ACCOUNT_ID, REGION, Schedule

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


class ScheduleError(ValueError):
    pass


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int] | None:
    """Values an AWS cron field allows; None means any (* or ?)."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high):
            raise ScheduleError(f"cron field {text!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, names: dict[str, int] | None) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ScheduleError(f"unsupported cron value {text!r}")
    return int(text)


class Trigger:
    """When a schedule expression next fires, strictly after a given minute."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        rate = _RATE.match(expression)
        cron = _CRON.match(expression)
        if rate:
            amount, unit = int(rate.group(1)), rate.group(2).rstrip("s")
            self.every = timedelta(**{f"{unit}s": amount})
            self.cron: list[set[int] | None] | None = None
        elif cron:
            fields = cron.group(1).split()
            if len(fields) != 6:
                raise ScheduleError(f"{expression}: cron() takes six fields")
            minute, hour, dom, month, dow, year = fields
            self.cron = [
                _field(minute, 0, 59),
                _field(hour, 0, 23),
                _field(dom, 1, 31),
                _field(month, 1, 12, _MONTHS),
                _field(dow, 1, 7, _DAYS),
                _field(year, 1970, 2199),
            ]
        else:
            raise ScheduleError(f"unsupported schedule expression {expression!r}")

    def next_after(self, moment: datetime) -> datetime:
        candidate = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        if self.cron is None:
            # A rate rule fires at the next minute boundary, then every period after the first fire.
            return candidate
        minute, hour, dom, month, dow, year = self.cron
        limit = candidate + timedelta(days=366 * 5)
        while candidate < limit:
            weekday = (candidate.weekday() + 1) % 7 + 1  # AWS: 1 = Sunday
            day_matches = (
                (year is None or candidate.year in year)
                and (month is None or candidate.month in month)
                and (dom is None or candidate.day in dom)
                and (dow is None or weekday in dow)
            )
            if not day_matches:
                candidate = candidate.replace(hour=0, minute=0) + timedelta(days=1)
            elif hour is not None and candidate.hour not in hour:
                candidate = candidate.replace(minute=0) + timedelta(hours=1)
            elif minute is not None and candidate.minute not in minute:
                candidate += timedelta(minutes=1)
            else:
                return candidate
        raise ScheduleError(f"{self.expression} never fires")


def scheduled_event(schedule: Schedule, when: datetime) -> dict[str, Any]:
    if schedule.payload is not None:
        return schedule.payload
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [schedule.arn],
        "detail": {},
    }


class Scheduler:
    def __init__(self, schedules: list[Schedule], fire: Callable[[str, dict[str, Any]], None]) -> None:
        self._entries: list[tuple[Schedule, Trigger]] = []
        for schedule in schedules:
            try:
                self._entries.append((schedule, Trigger(schedule.expression)))
            except ScheduleError as exc:
                console.line("schedule", f"{schedule.rule_id} is not emulated: {exc}")
        self._fire = fire
        self._stop = threading.Event()

    def run(self) -> None:
        now = datetime.now(UTC)
        due = {s.rule_id: t.next_after(now) for s, t in self._entries}
        while not self._stop.is_set():
            now = datetime.now(UTC)
            for schedule, trigger in self._entries:
                when = due[schedule.rule_id]
                if now >= when:
                    event = scheduled_event(schedule, when)
                    console.line("schedule", f"{schedule.rule_id} ({schedule.expression}) -> {schedule.function}")
                    threading.Thread(target=self._fire, args=(schedule.function, event), daemon=True).start()
                    if trigger.cron is None:
                        due[schedule.rule_id] = when + trigger.every
                    else:
                        due[schedule.rule_id] = trigger.next_after(when)
            upcoming = min(due.values(), default=now + timedelta(seconds=1))
            self._stop.wait(max(0.05, min(1.0, (upcoming - datetime.now(UTC)).total_seconds())))

    def stop(self) -> None:
        self._stop.set()
