"""Reminder emails as MIME, with the standard library's ``email`` package; no SES here.

A reminder is ``multipart/mixed``: a ``multipart/alternative`` (plain text and HTML: the title,
the occurrence's start in the event's time zone, the description) and the occurrence as an
``.ics`` attachment (``text/calendar``). :class:`Email` is plain data until :meth:`Email.mime`
builds the message, so callers can add headers (:meth:`Email.with_headers`) and footer links
(``links=`` of :func:`render_reminder`) without touching the layout.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reminders.calendar import Occurrence, occurrence_ics

SUBJECT_MAX = 200
# On the wire, headers fold at RFC 5322's 998 characters, not 78: a List-Unsubscribe URL has no
# space to fold at, and at 78 the email package would turn it into encoded words no client reads.
# Bodies are encoded when set (at 78), so only headers see this.
WIRE_POLICY = SMTP.clone(max_line_length=998)
ICS_FILENAME = "event.ics"


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    # Extra Content-Type parameters, e.g. {"method": "PUBLISH"} for text/calendar.
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Link:
    """A line under the message ("Unsubscribe" and its URL, say), in both bodies."""

    label: str
    url: str


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()
    headers: tuple[tuple[str, str], ...] = field(default=())

    def with_headers(self, *headers: tuple[str, str]) -> Email:
        """A copy with more headers (List-Unsubscribe, say); header values may not hold line breaks."""
        for name, value in headers:
            if any(c in name + value for c in "\r\n"):
                raise ValueError(f"header {name!r} holds a line break")
        return replace(self, headers=self.headers + tuple(headers))

    def raw(self, sender: str) -> bytes:
        """The message as SES's SendRawEmail takes it."""
        return self.mime(sender).as_bytes(policy=WIRE_POLICY)

    def mime(self, sender: str) -> EmailMessage:
        """The whole message (From, To, Subject, any extra headers, bodies, attachments)."""
        message = EmailMessage(policy=SMTP)
        message["From"] = sender
        message["To"] = self.to
        message["Subject"] = self.subject
        for name, value in self.headers:
            message[name] = value
        message.set_content(self.text, subtype="plain", charset="utf-8")
        message.add_alternative(self.html, subtype="html", charset="utf-8")
        for attachment in self.attachments:
            maintype, subtype = attachment.content_type.split("/", 1)
            message.add_attachment(
                attachment.data,
                maintype=maintype,
                subtype=subtype,
                filename=attachment.filename,
                params=dict(attachment.params),
            )
        return message


def local_start(starts_at: datetime, timezone: str) -> str:
    """The start time as the event's attendees read it, e.g. 'Tuesday 1 December 2026, 10:00 CET'."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = starts_at.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} {local.tzname()} ({zone.key})"


def render_reminder(to: str, occurrence: Occurrence, *, now: datetime, links: Sequence[Link] = ()) -> Email:
    """The reminder of one occurrence for one recipient; ``now`` stamps the attachment (DTSTAMP)."""
    when = local_start(occurrence.starts_at, occurrence.timezone)
    # A header cannot hold line breaks.
    title_line = " ".join(occurrence.title.split())
    subject = f"Reminder: {title_line}"[:SUBJECT_MAX]
    lines = [occurrence.title, "", f"Starts: {when}"]
    if occurrence.description:
        lines += ["", occurrence.description]
    lines += ["", f"You are receiving this because you were invited to {title_line}."]
    lines += [f"{link.label}: {link.url}" for link in links]
    description = (
        f"<p>{html.escape(occurrence.description).replace(chr(10), '<br>')}</p>" if occurrence.description else ""
    )
    footer = "".join(
        f'<p style="color: #666"><a href="{html.escape(link.url, quote=True)}">{html.escape(link.label)}</a></p>'
        for link in links
    )
    body_html = (
        '<!doctype html><html><body style="font-family: sans-serif">'
        f"<h1>{html.escape(occurrence.title)}</h1>"
        f"<p><strong>Starts:</strong> {html.escape(when)}</p>"
        f"{description}"
        f'<p style="color: #666">You are receiving this because you were invited to '
        f"{html.escape(title_line)}.</p>"
        f"{footer}"
        "</body></html>"
    )
    ics = Attachment(ICS_FILENAME, "text/calendar", occurrence_ics(occurrence, now=now), (("method", "PUBLISH"),))
    return Email(
        to=to,
        subject=subject,
        text="\n".join(lines) + "\n",
        html=body_html,
        attachments=(ics,),
    )
