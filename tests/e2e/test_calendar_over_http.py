"""A recurring event, its agenda and its private feed through the local runtime's HTTP port: the
feed route runs without the authorizer (Auth: Authorizer: NONE in template.yaml), as a calendar
client calls it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from icalendar import Calendar, vRecur

from tests.e2e.runtime import LocalRuntime

pytestmark = pytest.mark.e2e
BERLIN = ZoneInfo("Europe/Berlin")


def test_a_weekly_event_its_agenda_and_its_feed_over_http(product: LocalRuntime) -> None:
    token = product.mint_token("cal@example.com")
    auth = {"Authorization": f"Bearer {token}"}
    today = datetime.now(BERLIN).date()
    monday = today + timedelta(days=7 - today.weekday())
    starts = datetime(monday.year, monday.month, monday.day, 9, 0, tzinfo=BERLIN).astimezone(UTC)

    # Given a weekly stand-up at 09:00 Berlin
    created = requests.post(
        f"{product.api}/events",
        headers=auth,
        json={
            "title": "Stand-up",
            "starts_at": starts.isoformat(),
            "timezone": "Europe/Berlin",
            "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO"],
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text

    # Its agenda for four weeks holds four Mondays at 09:00 Berlin
    agenda = requests.get(
        f"{product.api}/agenda",
        headers=auth,
        params={"after": starts.isoformat(), "before": (starts + timedelta(weeks=4)).isoformat()},
        timeout=30,
    )
    assert agenda.status_code == 200, agenda.text
    items = agenda.json()["items"]
    assert [i["title"] for i in items] == ["Stand-up"] * 4
    assert {datetime.fromisoformat(i["starts_at"]).astimezone(BERLIN).strftime("%a %H:%M") for i in items} == {
        "Mon 09:00"
    }

    # And its feed URL, fetched without a token, is an iCalendar document with the rule
    url = requests.get(f"{product.api}/calendar/feed", headers=auth, timeout=30).json()["url"]
    assert url.startswith(product.api) and url.endswith(".ics")
    feed = requests.get(url, timeout=30)
    assert feed.status_code == 200, feed.text
    assert feed.headers["content-type"].startswith("text/calendar")
    (vevent,) = Calendar.from_ical(feed.content).walk("VEVENT")
    assert vevent["RRULE"] == vRecur.from_ical("FREQ=WEEKLY;BYDAY=MO")
    assert vevent.decoded("DTSTART").astimezone(UTC) == starts

    # Revoked, the old URL is gone
    assert requests.delete(f"{product.api}/calendar/feed", headers=auth, timeout=30).status_code == 204
    assert requests.get(url, timeout=30).status_code == 404
