"""The SES account's send rate, shared by every notifier run (SQL on the ``send_rate`` row)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Float,
    Integer,
    Interval,
    bindparam,
    case,
    cast,
    extract,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from reminders.models import SendRate

# The account's send rate, shared by every run: a GCRA token bucket in one row. A run reserves
# consecutive send slots in chunks (one round trip per chunk, not per email) and spaces its sends
# over them, so overlapping runs together keep to the rate. A throttle from SES slows the rate for
# everyone, once per second however many runs saw it, and the rate doubles back toward the
# maximum every RATE_RECOVERY_SECONDS without a throttle. Times are the database's, so the runs'
# clocks do not matter.
SEND_RATE_NAME = "ses"
RATE_RECOVERY_SECONDS = 30.0
THROTTLE_EVERY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class SendSlots:
    """``count`` send slots reserved for a run: the first ``starts_in`` seconds from now, then one
    every ``1 / rate`` seconds."""

    count: int
    starts_in: float
    rate: float


def _current_rate(max_rate: float | ColumnElement[float]) -> ColumnElement[float]:
    since_throttle = cast(extract("epoch", func.statement_timestamp() - SendRate.throttled_at), Float)
    recovered = SendRate.throttled_rate * func.power(2.0, func.least(since_throttle / RATE_RECOVERY_SECONDS, 60.0))
    ceiling = max_rate if isinstance(max_rate, ColumnElement) else literal(max_rate, Float)
    return case((SendRate.throttled_at.is_(None), ceiling), else_=func.least(ceiling, recovered))


def _seconds(amount: ColumnElement[Any]) -> ColumnElement[Any]:
    return amount * literal_column("interval '1 second'", Interval)


def _reserve_statement() -> Executable:
    count = bindparam("count", type_=Integer)
    max_rate = bindparam("max_rate", type_=Float)
    rate = _current_rate(max_rate)
    now = func.statement_timestamp()
    first = insert(SendRate).values(name=SEND_RATE_NAME, next_send_at=now + _seconds(cast(count, Float) / max_rate))
    return first.on_conflict_do_update(
        index_elements=[SendRate.name],
        set_={"next_send_at": func.greatest(SendRate.next_send_at, now) + _seconds(cast(count, Float) / rate)},
    ).returning(cast(extract("epoch", SendRate.next_send_at - now), Float), rate)


# Built once: a run reserves slots many times a second, and building the statement cost more CPU
# than running it (SQLAlchemy then reuses its compiled form too).
_RESERVE = _reserve_statement()


def reserve_send_slots(session: Session, count: int, *, max_rate: float) -> SendSlots:
    """Reserve the account's next ``count`` send slots (commit at once: other runs wait on this row)."""
    # Core, not the ORM's bulk insert: nothing in the session holds the row.
    ends_in, granted = session.connection().execute(_RESERVE, {"count": count, "max_rate": float(max_rate)}).one()
    return SendSlots(count, max(0.0, ends_in - count / granted), granted)


def slow_send_rate(session: Session, *, max_rate: float, floor: float = 1.0) -> float:
    """SES throttled a send: halve the account's rate (unless another run just did); return the rate now."""
    rate = _current_rate(max_rate)
    now = func.statement_timestamp()
    slowed = session.execute(
        update(SendRate)
        .where(
            SendRate.name == SEND_RATE_NAME,
            or_(
                SendRate.throttled_at.is_(None),
                SendRate.throttled_at < now - _seconds(literal(THROTTLE_EVERY_SECONDS, Float)),
            ),
        )
        .values(throttled_rate=func.greatest(rate / 2, min(floor, max_rate)), throttled_at=now)
        .returning(SendRate.throttled_rate)
    ).scalar_one_or_none()
    if slowed is not None:
        return float(slowed)
    current = session.execute(select(rate).where(SendRate.name == SEND_RATE_NAME)).scalar_one_or_none()
    return float(current) if current is not None else max_rate
