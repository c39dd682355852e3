"""Recurring series: wall-clock expansion across DST, the RFC 5545 corners, and validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reminders.recurrence import RecurrenceError, parse_series

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


def expand(lines: list[str], starts_at: datetime, zone: str, after: datetime, before: datetime) -> list[datetime]:
    return list(parse_series(lines, starts_at, zone).occurrences(after, before))


# --- Daylight saving time, both directions, two zones ---------------------------------------------


def test_weekly_at_nine_in_berlin_stays_at_nine_across_both_changes() -> None:
    # Given a weekly 09:00 Berlin series starting in winter (08:00Z)
    starts = local(BERLIN, 2026, 3, 15, 9, 0)

    # When it is expanded across the spring change (29 March) and the autumn change (25 October)
    spring = expand(["RRULE:FREQ=WEEKLY"], starts, BERLIN, utc(2026, 3, 15), utc(2026, 4, 6))
    autumn = expand(["RRULE:FREQ=WEEKLY"], starts, BERLIN, utc(2026, 10, 18), utc(2026, 11, 2))

    # Then it is 09:00 Berlin each week: 08:00Z in winter, 07:00Z in summer
    assert spring == [utc(2026, 3, 15, 8), utc(2026, 3, 22, 8), utc(2026, 3, 29, 7), utc(2026, 4, 5, 7)]
    assert autumn == [utc(2026, 10, 18, 7), utc(2026, 10, 25, 8), utc(2026, 11, 1, 8)]


def test_weekly_at_nine_in_new_york_stays_at_nine_across_both_changes() -> None:
    starts = local(NEW_YORK, 2026, 3, 1, 9, 0)

    spring = expand(["RRULE:FREQ=WEEKLY"], starts, NEW_YORK, utc(2026, 3, 1), utc(2026, 3, 16))
    autumn = expand(["RRULE:FREQ=WEEKLY"], starts, NEW_YORK, utc(2026, 10, 25), utc(2026, 11, 9))

    assert spring == [utc(2026, 3, 1, 14), utc(2026, 3, 8, 13), utc(2026, 3, 15, 13)]
    assert autumn == [utc(2026, 10, 25, 13), utc(2026, 11, 1, 14), utc(2026, 11, 8, 14)]


def test_the_skipped_half_past_two_in_berlin_is_shifted_forward_by_the_gap() -> None:
    # 02:30 does not exist on 29 March 2026 in Berlin (clocks jump from 02:00 to 03:00)
    starts = local(BERLIN, 2026, 3, 22, 2, 30)

    got = expand(["RRULE:FREQ=WEEKLY"], starts, BERLIN, utc(2026, 3, 1), utc(2026, 4, 6))

    assert got == [utc(2026, 3, 22, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 4, 5, 0, 30)]
    assert got[1].astimezone(ZoneInfo(BERLIN)).strftime("%H:%M %Z") == "03:30 CEST"


def test_the_repeated_half_past_two_in_berlin_takes_the_first() -> None:
    # 02:30 happens twice on 25 October 2026 in Berlin: 00:30Z (CEST) and 01:30Z (CET)
    starts = local(BERLIN, 2026, 10, 18, 2, 30)

    got = expand(["RRULE:FREQ=WEEKLY"], starts, BERLIN, utc(2026, 10, 1), utc(2026, 11, 2))

    assert got == [utc(2026, 10, 18, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 11, 1, 1, 30)]


def test_the_skipped_half_past_two_in_new_york_is_shifted_forward_by_the_gap() -> None:
    starts = local(NEW_YORK, 2026, 3, 1, 2, 30)

    got = expand(["RRULE:FREQ=WEEKLY"], starts, NEW_YORK, utc(2026, 3, 1), utc(2026, 3, 16))

    # 8 March: 02:30 EST does not exist; 03:30 EDT is 07:30Z
    assert got == [utc(2026, 3, 1, 7, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 15, 6, 30)]


def test_the_repeated_hour_in_new_york_takes_the_first() -> None:
    # New York repeats 01:00-02:00 on 1 November 2026; 02:30 is not ambiguous there
    half_one = expand(["RRULE:FREQ=WEEKLY"], local(NEW_YORK, 2026, 10, 25, 1, 30), NEW_YORK, utc(2026, 10, 1), FAR)
    half_two = expand(["RRULE:FREQ=WEEKLY"], local(NEW_YORK, 2026, 10, 25, 2, 30), NEW_YORK, utc(2026, 10, 1), FAR)

    assert half_one[:3] == [utc(2026, 10, 25, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 8, 6, 30)]
    assert half_two[:3] == [utc(2026, 10, 25, 6, 30), utc(2026, 11, 1, 7, 30), utc(2026, 11, 8, 7, 30)]


def test_a_start_in_the_second_pass_of_a_repeated_hour_keeps_its_instant() -> None:
    # 01:30Z on 25 October is 02:30 CET, the second 02:30 of that night in Berlin
    starts = utc(2026, 10, 25, 1, 30)

    got = expand(["RRULE:FREQ=DAILY;COUNT=2"], starts, BERLIN, utc(2026, 10, 1), FAR)

    assert got == [starts, utc(2026, 10, 26, 1, 30)]


def test_a_start_inside_a_midnight_gap_keeps_the_wall_time_it_lands_on() -> None:
    # Santiago skips 00:00-01:00 on 6 September 2026; 04:00Z is 01:00 there, and so is every day after
    starts_at = utc(2026, 9, 6, 4, 0)

    got = expand(["RRULE:FREQ=DAILY;COUNT=3"], starts_at, "America/Santiago", utc(2026, 9, 1), FAR)

    assert got == [starts_at, utc(2026, 9, 7, 4, 0), utc(2026, 9, 8, 4, 0)]


# --- Calendar corners ---------------------------------------------------------------------------


def test_monthly_on_the_31st_skips_the_months_without_one() -> None:
    got = expand(["RRULE:FREQ=MONTHLY;COUNT=6"], local(BERLIN, 2027, 1, 31, 9), BERLIN, utc(2027, 1, 1), FAR)

    assert [d.astimezone(ZoneInfo(BERLIN)).date().isoformat() for d in got] == [
        "2027-01-31",
        "2027-03-31",
        "2027-05-31",
        "2027-07-31",
        "2027-08-31",
        "2027-10-31",
    ]


def test_yearly_on_29_february_happens_in_leap_years_only() -> None:
    got = expand(["RRULE:FREQ=YEARLY"], local(BERLIN, 2028, 2, 29, 9), BERLIN, utc(2028, 1, 1), utc(2041, 1, 1))

    assert [d.year for d in got] == [2028, 2032, 2036, 2040]
    assert all((d.month, d.day, d.hour) == (2, 29, 8) for d in got)


def test_count_counts_the_first_occurrence() -> None:
    got = expand(["RRULE:FREQ=DAILY;COUNT=3"], utc(2026, 12, 1, 9), "UTC", utc(2026, 1, 1), FAR)

    assert got == [utc(2026, 12, 1, 9), utc(2026, 12, 2, 9), utc(2026, 12, 3, 9)]


@pytest.mark.parametrize(
    "until",
    [
        "UNTIL=20261203T090000Z",  # UTC, inclusive
        "UNTIL=20261203",  # a date: through the end of that day in the event's zone
        "UNTIL=20261203T100000",  # a floating time: local in the event's zone
    ],
)
def test_until_is_inclusive_in_each_form(until: str) -> None:
    got = expand([f"RRULE:FREQ=DAILY;{until}"], local(BERLIN, 2026, 12, 1, 10), BERLIN, utc(2026, 1, 1), FAR)

    assert got == [utc(2026, 12, 1, 9), utc(2026, 12, 2, 9), utc(2026, 12, 3, 9)]


@pytest.mark.parametrize(
    "exdate",
    [
        "EXDATE;TZID=Europe/Berlin:20261215T100000",
        "EXDATE:20261215T090000Z",
        "EXDATE:20261215T100000",  # bare: local time in the event's zone
        "EXDATE;TZID=America/New_York:20261215T040000",  # the same instant, named in another zone
        "EXDATE;VALUE=DATE-TIME:20261215T090000Z,20300101T000000Z",  # a list; an unmatched value is ignored
    ],
)
def test_exdate_in_each_accepted_form_removes_that_occurrence(exdate: str) -> None:
    got = expand(["RRULE:FREQ=WEEKLY;COUNT=3", exdate], local(BERLIN, 2026, 12, 8, 10), BERLIN, utc(2026, 1, 1), FAR)

    assert got == [utc(2026, 12, 8, 9), utc(2026, 12, 22, 9)]


@pytest.mark.parametrize(
    "rdate",
    ["RDATE;TZID=Europe/Berlin:20261210T150000", "RDATE:20261210T140000Z", "RDATE:20261210T150000"],
)
def test_rdate_in_each_accepted_form_adds_an_occurrence_in_order(rdate: str) -> None:
    got = expand(["RRULE:FREQ=WEEKLY;COUNT=2", rdate], local(BERLIN, 2026, 12, 8, 10), BERLIN, utc(2026, 1, 1), FAR)

    assert got == [utc(2026, 12, 8, 9), utc(2026, 12, 10, 14), utc(2026, 12, 15, 9)]


def test_an_rdate_on_an_occurrence_is_one_occurrence_and_exdate_wins_over_rdate() -> None:
    lines = ["RRULE:FREQ=DAILY;COUNT=3", "RDATE:20261202T090000Z", "RDATE:20261205T090000Z", "EXDATE:20261205T090000Z"]

    got = expand(lines, utc(2026, 12, 1, 9), "UTC", utc(2026, 1, 1), FAR)

    assert got == [utc(2026, 12, 1, 9), utc(2026, 12, 2, 9), utc(2026, 12, 3, 9)]


def test_an_unbounded_series_expands_in_any_window_half_open() -> None:
    series = parse_series(["RRULE:FREQ=WEEKLY;BYDAY=MO,WE"], local(BERLIN, 2026, 12, 7, 9), BERLIN)

    # Given windows years apart, each gets just its own occurrences; `before` is exclusive
    far = list(series.occurrences(utc(2036, 6, 2, 7), utc(2036, 6, 9, 7)))
    assert far == [utc(2036, 6, 2, 7), utc(2036, 6, 4, 7)]
    assert list(series.occurrences(utc(2026, 12, 9, 8), utc(2026, 12, 9, 8))) == []
    assert list(series.occurrences(utc(2026, 1, 1), utc(2026, 12, 7, 8))) == []
    assert not series.bounded


def test_every_second_month_on_the_last_friday() -> None:
    got = expand(
        ["RRULE:FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR;COUNT=3"],
        local(BERLIN, 2026, 12, 25, 9),
        BERLIN,
        utc(2026, 1, 1),
        FAR,
    )

    assert [d.date().isoformat() for d in got] == ["2026-12-25", "2027-02-26", "2027-04-30"]


def test_last_weekday_of_the_month_with_bysetpos() -> None:
    got = expand(
        ["RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=3"],
        local(BERLIN, 2026, 12, 31, 9),
        BERLIN,
        utc(2026, 1, 1),
        FAR,
    )

    assert [d.date().isoformat() for d in got] == ["2026-12-31", "2027-01-29", "2027-02-26"]


def test_a_one_off_event_has_one_occurrence() -> None:
    series = parse_series(None, utc(2026, 12, 1, 9), BERLIN)

    assert list(series.occurrences(utc(2026, 1, 1), FAR)) == [utc(2026, 12, 1, 9)]
    assert series.bounded and not series.recurring


# --- Validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["RRULE:FREQ=WEEKLY", "RRULE:FREQ=DAILY"], "a second RRULE"),
        (["RRULE:FREQ=HOURLY"], "finer than we take"),
        (["RRULE:FREQ=MINUTELY;COUNT=3"], "finer than we take"),
        (["RRULE:FREQ=SOMETIMES"], "is not an RRULE value"),
        (["RRULE:BYDAY=MO"], "FREQ must be"),
        (["not a line"], "is not an RFC 5545 line"),
        (["RRULE:FREQ=WEEKLY;BYHOUR=9"], "BYHOUR is not accepted"),
        (["RRULE:FREQ=WEEKLY;COUNT=0"], "COUNT must be between"),
        (["RRULE:FREQ=WEEKLY;COUNT=two"], "is not an RRULE value"),
        (["RRULE:FREQ=WEEKLY;COUNT=2;UNTIL=20271231T000000Z"], "COUNT and UNTIL together"),
        (["RRULE:FREQ=WEEKLY;UNTIL=20261130T000000Z"], "before starts_at, so the series has no occurrence"),
        (["RRULE:FREQ=DAILY;COUNT=1", "EXDATE:20261201T090000Z"], "every occurrence of the series is excluded"),
        (["RRULE:FREQ=WEEKLY;BYDAY=WE"], "not an occurrence of the rule"),
        (["RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"], "not an occurrence of the rule"),
        (["RRULE:FREQ=WEEKLY;BYDAY=1TU"], "only MONTHLY and YEARLY take"),
        (["RRULE:FREQ=MONTHLY;BYDAY=1TU,WE"], "mixes days"),
        (["RRULE:FREQ=WEEKLY;BYSETPOS=1"], "BYSETPOS is taken"),
        (["RRULE:FREQ=WEEKLY;BYDAY=XX"], "is not an RRULE value"),
        (["RRULE;X-FOO=1:FREQ=WEEKLY"], "RRULE takes no parameters"),
        (["EXDATE:20261208T090000Z"], "exactly one RRULE"),
        (["RRULE:FREQ=WEEKLY", "EXDATE;VALUE=DATE:20261208"], "this EXDATE form is not accepted"),
        (["RRULE:FREQ=WEEKLY", "EXDATE:2026-12-08"], "is not a date-time we take"),
        (["RRULE:FREQ=WEEKLY", "EXDATE;TZID=Mars/Olympus:20261208T090000"], "not an IANA time zone"),
        (["RRULE:FREQ=WEEKLY", "RDATE;VALUE=PERIOD:20261208T090000Z/PT1H"], "this RDATE form is not accepted"),
        (["RRULE:FREQ=WEEKLY", "RDATE:20261101T090000Z"], "before starts_at"),
        (["RRULE:FREQ=WEEKLY", "EXRULE:FREQ=MONTHLY"], "EXRULE lines are not accepted"),
        (["RRULE:FREQ=WEEKLY", "DTSTART:20261201T090000Z"], "DTSTART lines are not accepted"),
        (["RRULE:FREQ=WEEKLY\nEXDATE:20261208T090000Z"], "control characters"),
        ([""], "an empty line"),
        (["RRULE:FREQ=WEEKLY;INTERVAL=100000"], "INTERVAL must be between"),
    ],
)
def test_a_bad_series_is_refused_with_a_message_that_says_why(lines: list[str], message: str) -> None:
    with pytest.raises(RecurrenceError, match=message):
        parse_series(lines, utc(2026, 12, 1, 9), "UTC")


def test_a_bad_zone_and_a_naive_start_are_refused() -> None:
    with pytest.raises(RecurrenceError, match="unknown IANA time zone"):
        parse_series(["RRULE:FREQ=DAILY"], utc(2026, 12, 1, 9), "Mars/Olympus")
    with pytest.raises(RecurrenceError, match="UTC offset"):
        parse_series(["RRULE:FREQ=DAILY"], datetime(2026, 12, 1, 9), "UTC")


def test_a_rule_that_never_matches_is_refused_at_once() -> None:
    # dateutil alone would scan to year 9999 (seconds) before finding nothing; the check does not.
    with pytest.raises(RecurrenceError, match="not an occurrence"):
        parse_series(["RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=31"], utc(2026, 12, 1, 9), "UTC")


# --- Properties over any accepted rule --------------------------------------------------------------

ZONES = ["UTC", BERLIN, NEW_YORK, "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata"]
WEEKDAY = st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"])


@st.composite
def rules(draw: st.DrawFn) -> str:
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = [f"FREQ={freq}"]
    if draw(st.booleans()):
        parts.append(f"INTERVAL={draw(st.integers(1, 4))}")
    if draw(st.booleans()):
        ordinal = freq in ("MONTHLY", "YEARLY") and draw(st.booleans())
        days = draw(st.lists(WEEKDAY, min_size=1, max_size=3, unique=True))
        prefix = draw(st.sampled_from(["1", "2", "-1"])) if ordinal else ""
        parts.append("BYDAY=" + ",".join(prefix + d for d in days))
    if draw(st.booleans()):
        parts.append("BYMONTHDAY=" + ",".join(map(str, draw(st.lists(st.integers(1, 28), min_size=1, max_size=3)))))
    if draw(st.booleans()):
        parts.append("BYMONTH=" + ",".join(map(str, draw(st.lists(st.integers(1, 12), min_size=1, max_size=4)))))
    end = draw(st.sampled_from(["", "COUNT", "UNTIL"]))
    if end == "COUNT":
        parts.append(f"COUNT={draw(st.integers(1, 30))}")
    elif end == "UNTIL":
        parts.append(f"UNTIL={draw(st.dates(datetime(2026, 1, 1).date(), datetime(2031, 1, 1).date())):%Y%m%d}")
    return ";".join(parts)


starts = st.datetimes(datetime(2026, 1, 1), datetime(2029, 12, 31)).map(lambda d: d.replace(second=0, microsecond=0))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rule=rules(),
    zone=st.sampled_from(ZONES),
    start_local=starts,
    window_start=st.integers(0, 4 * 365),
    window_days=st.integers(1, 400),
    exclude=st.lists(st.integers(0, 20), max_size=4),
)
def test_any_accepted_rule_gives_sorted_occurrences_in_the_window_at_a_stable_wall_time(
    rule: str, zone: str, start_local: datetime, window_start: int, window_days: int, exclude: list[int]
) -> None:
    tz = ZoneInfo(zone)
    starts_at = start_local.replace(tzinfo=tz).astimezone(UTC)
    try:
        first = parse_series([f"RRULE:{rule}"], starts_at, zone)
    except RecurrenceError:
        assume(False)
        return
    # Exclude a few of its real occurrences, in the accepted forms in turn.
    some = list(first.occurrences(starts_at, starts_at + timedelta(days=800)))[:21]
    excluded = [some[i] for i in exclude if i < len(some)]
    forms = [
        lambda d: f"EXDATE:{d:%Y%m%dT%H%M%SZ}",
        lambda d: f"EXDATE;TZID={zone}:{d.astimezone(tz):%Y%m%dT%H%M%S}",
        lambda d: f"EXDATE:{d.astimezone(tz):%Y%m%dT%H%M%S}",
    ]
    lines = [f"RRULE:{rule}"] + [forms[i % 3](d) for i, d in enumerate(excluded)]
    try:
        series = parse_series(lines, starts_at, zone)
    except RecurrenceError as exc:
        assert "every occurrence" in str(exc)
        return

    after = starts_at - timedelta(days=30) + timedelta(days=window_start)
    before = after + timedelta(days=window_days)
    got = list(series.occurrences(after, before))

    assert got == sorted(set(got))
    assert all(after <= d < before for d in got)
    assert not set(got) & set(excluded)
    # The series' wall time is its start's (a start drawn inside a gap has already moved past it).
    wall = starts_at.astimezone(tz).time()
    for d in got:
        # The same wall time every time, except where that time does not exist that day (shifted
        # forward by the gap) or exists twice (the first is taken); fold=0 says exactly that.
        expected = datetime.combine(d.astimezone(tz).date(), wall, tzinfo=tz).astimezone(UTC)
        assert d in (expected, starts_at)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=rules(), zone=st.sampled_from(ZONES), start_local=starts)
def test_the_start_check_agrees_with_dateutil(rule: str, zone: str, start_local: datetime) -> None:
    # Our guard says whether starts_at is an occurrence of the rule without a long scan; dateutil's
    # own answer (its first occurrence from starts_at) must agree.
    dtstart = start_local.replace(tzinfo=ZoneInfo(zone))
    try:
        parse_series([f"RRULE:{rule}"], dtstart.astimezone(UTC), zone)
        accepted = True
    except RecurrenceError as exc:
        accepted = False
        assume("not an occurrence" in str(exc))
    unbounded = ";".join(p for p in rule.split(";") if not p.startswith(("UNTIL", "COUNT")))
    first = rrulestr(unbounded, dtstart=dtstart.astimezone(UTC).astimezone(ZoneInfo(zone)).replace(fold=0))
    assert (next(iter(first), None) == dtstart.replace(fold=0)) == accepted


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYDAY=2MO,-2SU",
        "FREQ=MONTHLY;BYMONTHDAY=-1,15",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1,1",
        "FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13",
        "FREQ=YEARLY;BYDAY=-1MO",
        "FREQ=YEARLY;BYMONTH=2,11;BYDAY=-1TH",
        "FREQ=YEARLY;BYDAY=20WE",
        "FREQ=YEARLY;BYMONTH=3;BYDAY=SA,SU;BYSETPOS=2",
        "FREQ=WEEKLY;BYDAY=MO,TH;BYMONTH=1,6",
        "FREQ=DAILY;BYMONTHDAY=-2",
    ],
)
def test_the_start_check_accepts_exactly_the_days_dateutil_generates(rule: str) -> None:
    # Every day of two years as starts_at: accepted exactly when dateutil's expansion has that day.
    days = [datetime(2027, 1, 1, 9) + timedelta(days=i) for i in range(731)]
    generated = set(rrulestr(rule, dtstart=days[0]).between(days[0], days[-1], inc=True))
    accepted = set()
    for day in days:
        try:
            parse_series([f"RRULE:{rule}"], day.replace(tzinfo=UTC), "UTC")
        except RecurrenceError:
            continue
        accepted.add(day)
    assert accepted == generated
