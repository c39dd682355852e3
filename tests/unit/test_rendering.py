"""Reminder emails as MIME, parsed back as a mail client would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from icalendar import Calendar

from reminders.calendar import Occurrence
from reminders.rendering import Link, render_reminder

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def mime_of(document: EmailMessage) -> EmailMessage:
    message = message_from_bytes(document.as_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_reminder_email_is_text_html_and_the_occurrence_as_ics() -> None:
    occurrence = Occurrence(
        uuid.uuid4(), "Stand-up <weekly>", "Room 4 & 5", datetime(2027, 4, 5, 7, 0, tzinfo=UTC), "Europe/Berlin"
    )

    # When the reminder is rendered and parsed back as a recipient's client would
    message = mime_of(render_reminder("ana@example.com", occurrence, now=NOW).mime("reminders@example.com"))

    # Then it has the addresses and subject, both bodies and a text/calendar attachment
    assert message["From"] == "reminders@example.com" and message["To"] == "ana@example.com"
    assert message["Subject"] == "Reminder: Stand-up <weekly>"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "Monday 5 April 2027, 09:00 CEST (Europe/Berlin)" in text.get_content()
    assert "Room 4 &amp; 5" in html.get_content() and "Stand-up &lt;weekly&gt;" in html.get_content()
    (ics,) = list(message.iter_attachments())
    assert ics.get_content_type() == "text/calendar" and ics.get_filename() == "event.ics"
    assert ics.get_param("method") == "PUBLISH"
    (vevent,) = Calendar.from_ical(ics.get_content()).walk("VEVENT")
    assert vevent.decoded("DTSTART").astimezone(UTC) == occurrence.starts_at


def test_headers_and_footer_links_can_be_added_without_touching_the_layout() -> None:
    occurrence = Occurrence(uuid.uuid4(), "Stand-up", None, datetime(2027, 4, 5, 7, 0, tzinfo=UTC), "UTC")
    url = "https://reminders.example.com/unsubscribe/tok?x=1&y=2"

    email = render_reminder("ana@example.com", occurrence, now=NOW, links=[Link("Unsubscribe", url)])
    message = mime_of(email.with_headers(("List-Unsubscribe", f"<{url}>")).mime("reminders@example.com"))

    assert message["List-Unsubscribe"] == f"<{url}>"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    assert f"Unsubscribe: {url}" in plain.get_content()
    assert 'href="https://reminders.example.com/unsubscribe/tok?x=1&amp;y=2"' in html.get_content()


def test_a_header_with_a_line_break_is_refused() -> None:
    occurrence = Occurrence(uuid.uuid4(), "Stand-up", None, datetime(2027, 4, 5, 7, 0, tzinfo=UTC), "UTC")
    email = render_reminder("ana@example.com", occurrence, now=NOW)

    with pytest.raises(ValueError, match="line break"):
        email.with_headers(("X-Evil", "a\r\nBcc: someone@example.com"))
