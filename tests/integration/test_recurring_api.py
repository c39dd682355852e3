"""Recurring events, occurrences, the agenda and the private calendar feed, through ApiFunction's
lambda_handler against a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, vRecur
from sqlalchemy import Engine, select

from reminders.db import session_scope
from reminders.models import CalendarFeed, Notification
from reminders.settings import api_settings
from tests.support.apigw import ApiResponse, rest_event
from tests.support.lambdas import FakeLambdaContext, load_function

ANA, BEN = "ana@example.com", "ben@example.com"
BERLIN = ZoneInfo("Europe/Berlin")
FEED_KEY = "k" * 48


@pytest.fixture
def api(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CALENDAR_FEED_KEY", FEED_KEY)
    handler = load_function("api").lambda_handler

    def call(method: str, path: str, **kwargs: Any) -> ApiResponse:
        return ApiResponse(handler(rest_event(method, path, **kwargs), FakeLambdaContext()))

    return call


def next_monday_at_nine_berlin(weeks: int = 1) -> datetime:
    today = datetime.now(BERLIN).date()
    monday = today + timedelta(days=(7 - today.weekday()) % 7 or 7) + timedelta(weeks=weeks - 1)
    return datetime(monday.year, monday.month, monday.day, 9, 0, tzinfo=BERLIN)


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def create_weekly(api: Any, as_user: str = ANA, **overrides: Any) -> dict[str, Any]:
    body = {
        "title": "Stand-up",
        "starts_at": utc_text(next_monday_at_nine_berlin()),
        "timezone": "Europe/Berlin",
        "recipients": [as_user],
        "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO"],
        **overrides,
    }
    response = api("POST", "/events", body=body, as_user=as_user)
    assert response.status == 201, response
    return response.json()


def wall_times(items: list[dict[str, Any]]) -> set[str]:
    return {datetime.fromisoformat(i["starts_at"]).astimezone(BERLIN).strftime("%a %H:%M") for i in items}


def test_a_weekly_event_keeps_its_rule_and_lists_its_occurrences_at_nine_berlin(api: Any) -> None:
    event = create_weekly(api)
    assert event["recurrence"] == ["RRULE:FREQ=WEEKLY;BYDAY=MO"]

    response = api("GET", f"/events/{event['id']}/occurrences", query={"limit": "30"})

    assert response.status == 200, response
    page = response.json()
    assert len(page["items"]) == 30 and page["next_cursor"]
    assert page["items"][0]["starts_at"] == event["starts_at"]
    # 30 weeks cross a daylight-saving change, and every one is Monday 09:00 in Berlin
    assert wall_times(page["items"]) == {"Mon 09:00"}
    assert len({datetime.fromisoformat(i["starts_at"]).utcoffset() for i in page["items"]}) == 1
    assert len({datetime.fromisoformat(i["starts_at"]).astimezone(BERLIN).utcoffset() for i in page["items"]}) == 2


def test_occurrence_pages_walk_the_series_exactly_once(api: Any) -> None:
    event = create_weekly(api, recurrence=["RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=7"])

    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = api("GET", f"/events/{event['id']}/occurrences", query=query).json()
        seen += [i["starts_at"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == 7 == len(set(seen)) and seen == sorted(seen)


def test_a_one_off_event_has_one_occurrence(api: Any) -> None:
    body = {"title": "Dentist", "starts_at": utc_text(datetime.now(UTC) + timedelta(days=3)), "recipients": [ANA]}
    event = api("POST", "/events", body=body).json()

    page = api("GET", f"/events/{event['id']}/occurrences").json()

    assert page == {"items": [{"starts_at": event["starts_at"]}], "next_cursor": None}
    assert event["recurrence"] is None


def test_occurrences_in_a_window_and_bad_parameters(api: Any) -> None:
    event = create_weekly(api)
    first = datetime.fromisoformat(event["starts_at"])

    page = api(
        "GET",
        f"/events/{event['id']}/occurrences",
        query={"after": utc_text(first + timedelta(days=1)), "before": utc_text(first + timedelta(days=22))},
    ).json()

    assert [i["starts_at"] for i in page["items"]] == [utc_text(first + timedelta(weeks=w)) for w in (1, 2, 3)]
    assert api("GET", f"/events/{event['id']}/occurrences", query={"cursor": "garbage"}).status == 422
    assert api("GET", f"/events/{event['id']}/occurrences", query={"limit": "0"}).status == 422
    assert api("GET", f"/events/{event['id']}/occurrences", query={"after": "yesterday"}).status == 422
    assert api("GET", f"/events/{uuid.uuid4()}/occurrences").status == 404
    assert api("GET", f"/events/{event['id']}/occurrences", as_user=BEN).status == 404


@pytest.mark.parametrize(
    ("recurrence", "message"),
    [
        (["RRULE:FREQ=HOURLY"], "finer than we take"),
        (["RRULE:FREQ=WEEKLY", "RRULE:FREQ=DAILY"], "a second RRULE"),
        (["RRULE:FREQ=WEEKLY;UNTIL=20200101T000000Z"], "no occurrence"),
        (["RRULE:FREQ=WEEKLY;BYDAY=TU"], "not an occurrence of the rule"),
        (["RRULE:FREQ=WEEKLY", "EXDATE;VALUE=DATE:20301216"], "EXDATE form is not accepted"),
        (["nonsense"], "not an RFC 5545 line"),
        (["RRULE:FREQ=WEEKLY\u0000"], "control characters"),
    ],
)
def test_a_bad_series_gets_a_clear_422_and_creates_nothing(
    api: Any, engine: Engine, recurrence: list[str], message: str
) -> None:
    response = create_attempt = api(
        "POST",
        "/events",
        body={
            "title": "Stand-up",
            "starts_at": utc_text(next_monday_at_nine_berlin()),
            "timezone": "Europe/Berlin",
            "recipients": [ANA],
            "recurrence": recurrence,
        },
    )

    assert response.status == 422, create_attempt
    assert message in response.text
    with session_scope(engine) as session:
        assert session.scalars(select(Notification)).all() == []


def test_patching_the_rule_is_validated_against_the_stored_start(api: Any) -> None:
    event = create_weekly(api)

    bad = api("PATCH", f"/events/{event['id']}", body={"recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=WE"]})
    good = api("PATCH", f"/events/{event['id']}", body={"recurrence": ["RRULE:FREQ=DAILY;COUNT=3"]})
    cleared = api("PATCH", f"/events/{event['id']}", body={"recurrence": None})

    assert bad.status == 422 and "not an occurrence" in bad.text
    assert good.status == 200 and good.json()["recurrence"] == ["RRULE:FREQ=DAILY;COUNT=3"]
    assert cleared.status == 200 and cleared.json()["recurrence"] is None
    assert len(api("GET", f"/events/{event['id']}/occurrences").json()["items"]) == 1


def test_the_agenda_merges_the_callers_series_and_one_offs_in_time_order(api: Any) -> None:
    weekly = create_weekly(api)
    first = datetime.fromisoformat(weekly["starts_at"])
    daily = create_weekly(
        api,
        title="Pills",
        starts_at=utc_text(first + timedelta(hours=3)),
        recurrence=["RRULE:FREQ=DAILY;COUNT=10"],
    )
    one_off = api(
        "POST",
        "/events",
        body={"title": "Dentist", "starts_at": utc_text(first + timedelta(days=2, hours=1)), "recipients": [ANA]},
    ).json()
    create_weekly(api, as_user=BEN, title="Ben's")

    window = {"after": utc_text(first), "before": utc_text(first + timedelta(days=8))}
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = api("GET", "/agenda", query={**window, "limit": "4", **({"cursor": cursor} if cursor else {})}).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    titles = [i["title"] for i in items]
    assert titles.count("Stand-up") == 2 and titles.count("Pills") == 8 and titles.count("Dentist") == 1
    assert "Ben's" not in titles
    assert [i["starts_at"] for i in items] == sorted(i["starts_at"] for i in items)
    assert {i["event_id"] for i in items} == {weekly["id"], daily["id"], one_off["id"]}


def test_the_agenda_window_is_at_most_366_days(api: Any) -> None:
    now = datetime.now(UTC)
    too_long = {"after": utc_text(now), "before": utc_text(now + timedelta(days=367))}

    assert api("GET", "/agenda", query=too_long).status == 422
    assert api("GET", "/agenda").status == 200
    assert api("GET", "/agenda", query={"cursor": "not-one"}).status == 422


# --- The private feed ---------------------------------------------------------------------------


def feed_path(url: str) -> str:
    return "/calendar/" + url.rsplit("/calendar/", 1)[1]


def test_the_feed_url_is_stable_serves_every_live_event_and_round_trips_the_rule(api: Any, engine: Engine) -> None:
    weekly = create_weekly(api, recurrence=["RRULE:FREQ=WEEKLY;BYDAY=MO", "EXDATE;TZID=Europe/Berlin:20991228T090000"])
    deleted = create_weekly(api, title="Gone")
    assert api("DELETE", f"/events/{deleted['id']}").status == 204
    create_weekly(api, as_user=BEN, title="Ben's")

    first = api("GET", "/calendar/feed")
    again = api("GET", "/calendar/feed")
    assert first.status == 200 and first.json() == again.json()
    url = first.json()["url"]
    assert url.startswith("https://abc123.execute-api.us-east-1.amazonaws.com/Prod/calendar/") or "/calendar/" in url
    assert url.endswith(".ics")

    # No bearer token: the secret is the key
    response = api("GET", feed_path(url), as_user=None)

    assert response.status == 200, response
    assert response.headers["content-type"].startswith("text/calendar")
    (vevent,) = Calendar.from_ical(response.text).walk("VEVENT")
    assert str(vevent["SUMMARY"]) == "Stand-up"
    assert vevent["RRULE"] == vRecur.from_ical("FREQ=WEEKLY;BYDAY=MO")
    assert vevent["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert utc_text(vevent.decoded("DTSTART")) == weekly["starts_at"]
    assert [a.decoded("TRIGGER") for a in vevent.walk("VALARM")] == [timedelta(minutes=-5)]
    # Only a hash of the secret is stored
    secret = url.rsplit("/", 1)[1].removesuffix(".ics")
    with session_scope(engine) as session:
        (row,) = session.scalars(select(CalendarFeed)).all()
        assert secret not in (row.secret_hash, str(row.feed_id))


def test_a_revoked_feed_is_404_and_the_next_one_is_new(api: Any) -> None:
    create_weekly(api)
    old = api("GET", "/calendar/feed").json()["url"]

    assert api("DELETE", "/calendar/feed").status == 204
    assert api("GET", feed_path(old), as_user=None).status == 404
    new = api("GET", "/calendar/feed").json()["url"]
    assert new != old and api("GET", feed_path(new), as_user=None).status == 200


@pytest.mark.parametrize(
    "path",
    ["/calendar/" + "A" * 43 + ".ics", "/calendar/nope.ics", "/calendar/" + "A" * 43, "/calendar/%00.ics"],
)
def test_an_unknown_feed_is_404(api: Any, path: str) -> None:
    response = api("GET", path, as_user=None)

    assert response.status == 404 and response.json()["statusCode"] == 404


def test_the_feed_routes_need_a_token(api: Any) -> None:
    assert api("GET", "/calendar/feed", as_user=None).status == 401
    assert api("DELETE", "/calendar/feed", as_user=None).status == 401


@pytest.mark.parametrize("key", [None, "short"])
def test_without_a_usable_key_the_feed_url_is_a_readable_503(
    api: Any, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    if key is None:
        monkeypatch.delenv("CALENDAR_FEED_KEY")
    else:
        monkeypatch.setenv("CALENDAR_FEED_KEY", key)
    api_settings.cache_clear()
    try:
        response = api("GET", "/calendar/feed")
    finally:
        api_settings.cache_clear()

    assert response.status == 503 and "calendar feeds are not configured" in response.json()["message"]


def test_a_series_made_a_one_off_at_a_new_time_keeps_one_reminder_per_recipient(api: Any, engine: Engine) -> None:
    # Given a weekly series with its reminders planned for weeks ahead
    event = create_weekly(api)
    later = datetime.fromisoformat(event["starts_at"]) + timedelta(days=3, hours=2)

    # When it becomes a one-off at another time in the same change
    response = api("PATCH", f"/events/{event['id']}", body={"recurrence": None, "starts_at": utc_text(later)})

    # Then one reminder is pending, at the new time; the series' others are cancelled
    assert response.status == 200, response
    log = api("GET", f"/events/{event['id']}/notifications").json()["items"]
    pending = [n for n in log if n["status"] == "pending"]
    assert [n["occurrence_at"] for n in pending] == [utc_text(later)]
    assert {n["status"] for n in log} == {"pending", "cancelled"}
