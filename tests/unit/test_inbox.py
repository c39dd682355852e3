"""The local inbox's reading of `/_aws/ses` messages (both of LocalStack's shapes) as a person sees them."""

from __future__ import annotations

from email.message import EmailMessage

from devserver.inbox import parse


def raw_reminder() -> str:
    message = EmailMessage()
    message["From"] = "reminders@example.com"
    message["To"] = "ana@example.com"
    message["Subject"] = "Reminder: Team sync"
    message["List-Unsubscribe"] = "<http://127.0.0.1:3000/unsubscribe/tok123>"
    message.set_content("Team sync\nStarts soon.\nhttp://127.0.0.1:3000/unsubscribe/tok123\n")
    message.add_alternative(
        '<p>Team sync</p><a href="http://127.0.0.1:3000/unsubscribe/tok123">Unsubscribe</a>', "html"
    )
    message.add_attachment(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "text", "calendar", filename="event.ics")
    return message.as_string()


def test_a_raw_message_shows_its_headers_bodies_attachment_and_links() -> None:
    found = parse(
        {
            "Id": "m-1",
            "Source": "reminders@example.com",
            "Destination": {"ToAddresses": ["ana@example.com"]},
            "RawData": raw_reminder(),
            "Timestamp": "2026-11-30T09:00:00+00:00",
        }
    )
    assert found.subject == "Reminder: Team sync"
    assert ("To", "ana@example.com") in found.headers
    assert found.text is not None and "Starts soon." in found.text
    assert found.html is not None and "<p>Team sync</p>" in found.html
    assert [(a.filename, a.content_type) for a in found.attachments] == [("event.ics", "text/calendar")]
    assert found.attachments[0].data.startswith(b"BEGIN:VCALENDAR")
    # The unsubscribe link once, though the header, the text and the HTML all carry it
    assert found.links() == ["http://127.0.0.1:3000/unsubscribe/tok123"]


def test_a_simple_message_shows_its_subject_and_both_parts() -> None:
    found = parse(
        {
            "Id": "m-2",
            "Source": "reminders@example.com",
            "Destination": {"ToAddresses": ["bo@example.com"]},
            "Subject": "Hello",
            "Body": {"text_part": "Plain words", "html_part": "<b>Bold words</b>"},
            "Timestamp": "2026-11-30T09:01:00+00:00",
        }
    )
    assert (found.subject, found.text, found.html, found.attachments) == (
        "Hello",
        "Plain words",
        "<b>Bold words</b>",
        [],
    )
    assert ("Subject", "Hello") in found.headers
