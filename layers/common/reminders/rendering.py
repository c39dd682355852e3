"""Reminder emails as MIME, with the standard library's ``email`` package; no SES here.

A reminder is ``multipart/mixed``: a ``multipart/alternative`` (plain text and HTML: the title,
the occurrence's start in the event's time zone, the description) and the occurrence as an
``.ics`` attachment (``text/calendar``). :class:`Email` is plain data until :meth:`Email.mime`
builds the message, so callers can add headers (:meth:`Email.with_headers`) and footer links
(``links=`` of :func:`render_reminder`) without touching the layout.

:meth:`Email.raw` writes the wire bytes itself (a fixed layout: one multipart/mixed holding a
multipart/alternative and the attachments), with the standard library's encoders (``binascii``'s
quoted-printable and base64, the ``email`` package's header registry for any header that is not
plain ASCII): building an ``EmailMessage`` and generating it cost ~1 ms of CPU a reminder, most of
a notifier run's. :meth:`Email.mime` parses those bytes back.
"""

from __future__ import annotations

import base64
import binascii
import html
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email import message_from_bytes
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
# RFC 5322's limit on a line, CRLF excluded.
MAX_LINE = 998
# Text bodies whose lines are ASCII and this short go as they are (7bit), as the email package sends them.
BODY_LINE = 78
CRLF = b"\r\n"


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
        """The message as SES's SendRawEmail takes it: CRLF line ends, 7-bit, headers unfolded
        unless they must be (an encoded word, a line over 998 characters)."""
        head = [
            _header("From", sender),
            _header("To", self.to),
            _header("Subject", self.subject),
            *(_header(name, value) for name, value in self.headers),
            b"MIME-Version: 1.0\r\n",
        ]
        text_cte, text_body = _text_body(self.text)
        html_cte, html_body = _text_body(self.html)
        alternative = _multipart(
            "alternative",
            [
                (_text_headers("plain", text_cte), text_body),
                (_text_headers("html", html_cte), html_body),
            ],
        )
        headers, body = _multipart("mixed", [alternative, *map(_attachment, self.attachments)], b"".join(head))
        return headers + CRLF + body

    def mime(self, sender: str) -> EmailMessage:
        """The whole message (From, To, Subject, any extra headers, bodies, attachments), parsed
        back from :meth:`raw`."""
        message = message_from_bytes(self.raw(sender), policy=SMTP)
        assert isinstance(message, EmailMessage)
        return message


_Part = tuple[bytes, bytes]  # (its header lines, its body)


def _header(name: str, value: str) -> bytes:
    line = f"{name}: {value}"
    # Plain ASCII on one line goes as it is: nothing to encode, nothing to fold (a List-Unsubscribe
    # URL must not be folded or encoded).
    if line.isascii() and line.isprintable() and len(line) <= MAX_LINE and value == value.strip():
        return line.encode("ascii") + CRLF
    # Anything else as the email package writes it (encoded words for non-ASCII, folding).
    return WIRE_POLICY.header_factory(name, value).fold(policy=WIRE_POLICY).encode("ascii")


def _text_body(text: str) -> tuple[str, bytes]:
    """A text body's transfer encoding and encoded bytes, chosen as the email package chooses them
    (short ASCII lines as they are; else the shorter of quoted-printable and base64), except that
    non-ASCII text is always encoded (the package may send it as 8bit; SES asks for 7-bit)."""
    lines = text.encode("utf-8").splitlines()
    if text.isascii() and all(len(line) <= BODY_LINE for line in lines):
        return "7bit", CRLF.join(lines) + CRLF
    qp = binascii.b2a_qp(b"\n".join(lines) + b"\n", istext=True).replace(b"\n", CRLF)
    # Base64 text carries its line breaks in canonical form, CRLF.
    encoded = base64.encodebytes(CRLF.join(lines) + CRLF)
    if len(qp) > len(encoded) + encoded.count(b"\n"):
        return "base64", encoded.replace(b"\n", CRLF)
    return "quoted-printable", qp


def _text_headers(subtype: str, cte: str) -> bytes:
    return f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n'.encode()


def _attachment(attachment: Attachment) -> _Part:
    params = "".join(f'; {name}="{_quoted(value)}"' for name, value in attachment.params)
    headers = (
        f"Content-Type: {attachment.content_type}{params}\r\n"
        f'Content-Disposition: attachment; filename="{_quoted(attachment.filename)}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
    )
    return _header_bytes(headers), base64.encodebytes(attachment.data).replace(b"\n", CRLF)


def _header_bytes(headers: str) -> bytes:
    if not headers.isascii():
        raise ValueError("attachment names and parameters must be ASCII")
    return headers.encode("ascii")


def _quoted(value: str) -> str:
    if any(c in value for c in '"\\\r\n'):
        raise ValueError(f"{value!r} cannot be a quoted parameter")
    return value


def _boundary(parts: Sequence[_Part]) -> str:
    # As the email package makes them; bodies here are encoded (no "=" runs in them) or short
    # ASCII lines, and any that holds the boundary anyway makes another one.
    while True:
        boundary = f"==============={random.randrange(sys.maxsize):019d}=="
        marker = b"--" + boundary.encode()
        if not any(marker in body or marker in headers for headers, body in parts):
            return boundary


def _multipart(subtype: str, parts: Sequence[_Part], head: bytes = b"") -> _Part:
    """A multipart's headers (after ``head``) and body: each part behind its delimiter, as the
    email package lays them out (every body ends with CRLF, and a delimiter starts after another)."""
    boundary = _boundary(parts)
    headers = head + f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n'.encode()
    delimiter = b"--" + boundary.encode()
    body = b"".join(delimiter + CRLF + part_headers + CRLF + part_body + CRLF for part_headers, part_body in parts)
    return headers, body + delimiter + b"--" + CRLF


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
