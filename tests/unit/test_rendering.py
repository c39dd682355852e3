"""Reminder emails as MIME, parsed back as a mail client would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


def wire(document: bytes) -> EmailMessage:
    message = message_from_bytes(document, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def well_formed(raw: bytes) -> EmailMessage:
    """A reminder's wire bytes, checked as SES and mail clients need them, then parsed: 7-bit, CRLF
    line ends only, no line over RFC 5322's 998 characters, the reminder's parts, no defect."""
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    message = wire(raw)
    assert [part.get_content_type() for part in message.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "text/calendar",
    ]
    assert [part.defects for part in message.walk()] == [[]] * 5
    return message


@pytest.mark.parametrize(
    ("title", "description", "encodings"),
    [
        # Short ASCII lines go as they are; the HTML is one long line.
        ("Stand-up", "Room 4", ("7bit", "quoted-printable")),
        ("Café ünï = 100%", "Line one\r\nline two\rline three\n.dot\nFrom here", ("quoted-printable",) * 2),
        ("会议 " * 20, "描述" * 300, ("base64",) * 2),  # mostly non-ASCII: base64 is the shorter
    ],
)
def test_the_wire_bytes_parse_back_into_the_same_parts_headers_and_attachment(
    title: str, description: str, encodings: tuple[str, str]
) -> None:
    occurrence = Occurrence(uuid.uuid4(), title, description, datetime(2027, 4, 5, 7, 0, tzinfo=UTC), "Europe/Berlin")
    url = "https://api.example.com/dev/unsubscribe/" + "t" * 900  # a long token; the line stays under 998
    email = render_reminder("Ana Ø <ana@example.com>", occurrence, now=NOW).with_headers(
        ("List-Unsubscribe", f"<{url}>"), ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    )

    raw = email.raw("Réminders <reminders@example.com>")
    message = well_formed(raw)

    # List-Unsubscribe on one line
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert f"\r\nList-Unsubscribe: <{url}>\r\n" in head
    assert str(message["From"]) == "Réminders <reminders@example.com>"
    assert str(message["To"]) == "Ana Ø <ana@example.com>"
    assert message["Subject"] == email.subject
    assert message["List-Unsubscribe"] == f"<{url}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["MIME-Version"] == "1.0"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    for part, text, encoding in ((plain, email.text, encodings[0]), (html, email.html, encodings[1])):
        assert part.get_content_charset() == "utf-8" and part["Content-Transfer-Encoding"] == encoding
        assert part.get_content().replace("\r\n", "\n") == "\n".join(text.splitlines()) + "\n"
    (ics,) = list(message.iter_attachments())
    assert ics.get_filename() == "event.ics" and ics.get_param("method") == "PUBLISH"
    assert ics["Content-Transfer-Encoding"] == "base64"
    assert ics.get_payload(decode=True) == email.attachments[0].data
    assert email.mime("Réminders <reminders@example.com>")["Subject"] == email.subject


# What the API lets into a title and a description (schemas.Title, schemas.Description).
TITLES = st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=200).filter(str.strip)
DESCRIPTIONS = (
    st.none()
    | st.text(
        st.characters(
            exclude_categories=["Cs"], exclude_characters=[chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]
        )
        | st.sampled_from(["\t", "\n", "\r"]),
        max_size=600,
    )
    | st.text(st.sampled_from("ab c"), min_size=990, max_size=2500)
)  # ASCII lines past what one may hold


def lines_of(text: str) -> str:
    """A body as the message carries it: its lines (CR, LF or CRLF ends) joined by LF, ending in one."""
    return b"\n".join(text.encode("utf-8").splitlines()).decode("utf-8") + "\n"


@settings(max_examples=200, deadline=None)
@given(
    title=TITLES, description=DESCRIPTIONS, zone=st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata", "Nope/Zone"])
)
def test_any_title_and_description_make_a_well_formed_message_that_reads_back_the_same(
    title: str, description: str | None, zone: str
) -> None:
    # The MIME is written by hand (Email.raw, for speed): whatever a user may type, it must be the
    # message a mail client parses back, 7-bit, no line over 998, no part with a defect.
    occurrence = Occurrence(uuid.uuid4(), title, description, datetime(2027, 4, 5, 7, 0, tzinfo=UTC), zone)
    email = render_reminder("ana@example.com", occurrence, now=NOW, links=[Link("Unsubscribe", "https://x.test/u/t")])
    message = well_formed(email.raw("reminders@example.com"))
    assert message["Subject"] == email.subject
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == lines_of(email.text)
    assert html.get_content().replace("\r\n", "\n") == lines_of(email.html)
    (ics,) = list(message.iter_attachments())
    assert ics.get_payload(decode=True) == email.attachments[0].data
