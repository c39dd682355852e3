"""The local inbox: every email the runtime's SES sent, as a person reads it (what Mailtrap was).

    GET /_local/inbox                      every email, newest first
    GET /_local/inbox/<id>                 one email: headers, text and HTML bodies, attachments, links
    GET /_local/inbox/<id>/html            its HTML body alone (shown in a sandboxed frame)
    GET /_local/inbox/<id>/parts/<n>       its n-th attachment, as a download (the .ics)
    GET /_local/inbox/<id>/raw             the whole MIME message (.eml)

It reads the AWS endpoint's `/_aws/ses` (moto's here or LocalStack's: the same JSON), so it shows
what programs see there; `/_aws/ses` itself stays as it is.
"""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

Reply = tuple[int, list[tuple[str, str]], bytes]
PREFIX = "/_local/inbox"
# The list page shows this many of the newest (a long session's emulator keeps thousands).
LIST_LIMIT = 500
_LINK = re.compile(r"""href\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s<>\"')]+")


@dataclass
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Email:
    id: str
    timestamp: str
    source: str
    to: list[str]
    subject: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    raw: str | None = None

    def links(self) -> list[str]:
        found = _LINK.findall(self.html or "") + _URL.findall(self.text or "")
        unsubscribe = dict((k.lower(), v) for k, v in self.headers).get("list-unsubscribe", "")
        found += re.findall(r"<(https?://[^>]+)>", unsubscribe)
        return [html.unescape(link) for link in dict.fromkeys(found) if link.startswith(("http://", "https://"))]


def parse(message: dict[str, Any]) -> Email:
    """One `/_aws/ses` message (simple or raw MIME) as a person would read it."""
    to = list((message.get("Destination") or {}).get("ToAddresses") or [])
    common: dict[str, Any] = {
        "id": str(message.get("Id", "")),
        "timestamp": str(message.get("Timestamp", "")),
        "source": str(message.get("Source") or ""),
        "to": to,
    }
    if "RawData" not in message:
        body = message.get("Body") or {}
        return Email(
            **common,
            subject=str(message.get("Subject") or ""),
            headers=[("From", common["source"]), ("To", ", ".join(to)), ("Subject", str(message.get("Subject") or ""))],
            text=body.get("text_part"),
            html=body.get("html_part"),
        )
    mime = email.message_from_string(message["RawData"], policy=email.policy.default)
    assert isinstance(mime, EmailMessage)
    found = Email(
        **common,
        subject=str(mime.get("Subject", "")),
        headers=[(k, str(v)) for k, v in mime.items()],
        raw=message["RawData"],
    )
    for part in mime.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        disposition = part.get_content_disposition()
        if disposition is None and content_type == "text/plain" and found.text is None:
            found.text = part.get_content()
        elif disposition is None and content_type == "text/html" and found.html is None:
            found.html = part.get_content()
        else:
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            name = part.get_filename() or f"part-{len(found.attachments) + 1}{_extension(content_type)}"
            found.attachments.append(Attachment(name, content_type, data))
    return found


def _extension(content_type: str) -> str:
    return {"text/calendar": ".ics", "text/plain": ".txt", "text/html": ".html"}.get(content_type, ".bin")


class Inbox:
    def __init__(self, aws_endpoint: str) -> None:
        self.source = aws_endpoint.rstrip("/") + "/_aws/ses"

    def _messages(self, message_id: str | None = None) -> list[dict[str, Any]]:
        url = self.source + (f"?id={quote(message_id)}" if message_id else "")
        with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - the runtime's own AWS endpoint
            return list(json.load(reply).get("messages") or [])

    def handle(self, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes) -> Reply | None:
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            return None
        if method not in ("GET", "HEAD"):
            return _page(405, "Not allowed", "<p>The inbox is read-only.</p>")
        parts = path[len(PREFIX) :].strip("/").split("/") if path != PREFIX else []
        try:
            if not parts or parts == [""]:
                return self._list()
            messages = [m for m in self._messages(parts[0]) if str(m.get("Id")) == parts[0]]
        except (OSError, ValueError) as exc:
            return _page(
                502, "Inbox unavailable", f"<p>Cannot read {html.escape(self.source)}: {html.escape(str(exc))}</p>"
            )
        if not messages:
            return _page(
                404, "No such email", f'<p>No email with that id. <a href="{PREFIX}">Back to the inbox</a></p>'
            )
        found = parse(messages[0])
        if len(parts) == 1:
            return _page(200, found.subject or "(no subject)", _email_body(found))
        if parts[1:] == ["html"] and found.html is not None:
            # Shown in a sandboxed frame: no scripts, no same-origin access; links may open new tabs.
            csp = (
                "sandbox allow-popups allow-popups-to-escape-sandbox; "
                "default-src 'none'; style-src 'unsafe-inline'; img-src * data:"
            )
            return (
                200,
                [("Content-Type", "text/html; charset=utf-8"), ("Content-Security-Policy", csp)],
                found.html.encode(),
            )
        if parts[1:] == ["raw"]:
            raw = found.raw or json.dumps(messages[0], indent=2)
            kind = "message/rfc822" if found.raw else "application/json"
            return (
                200,
                [("Content-Type", kind), ("Content-Disposition", f'attachment; filename="{found.id}.eml"')],
                raw.encode(),
            )
        if len(parts) == 3 and parts[1] == "parts" and parts[2].isdigit() and int(parts[2]) < len(found.attachments):
            attachment = found.attachments[int(parts[2])]
            filename = re.sub(r"[^\w.\- ]", "_", attachment.filename)
            return (
                200,
                [
                    ("Content-Type", attachment.content_type),
                    ("Content-Disposition", f'attachment; filename="{filename}"'),
                ],
                attachment.data,
            )
        return _page(
            404, "Not found", f'<p>Nothing here. <a href="{PREFIX}/{quote(found.id)}">Back to the email</a></p>'
        )

    def _list(self) -> Reply:
        messages = self._messages()
        # Newest first: by timestamp, and by arrival among equal ones.
        ordered = sorted(enumerate(messages), key=lambda im: (str(im[1].get("Timestamp", "")), im[0]), reverse=True)
        rows = []
        for _, message in ordered[:LIST_LIMIT]:
            found = _summary(message)
            rows.append(
                "<tr>"
                f'<td><time datetime="{html.escape(found.timestamp)}">'
                f"{html.escape(_readable(found.timestamp))}</time></td>"
                f"<td>{html.escape(found.source)}</td><td>{html.escape(', '.join(found.to))}</td>"
                f'<td><a href="{PREFIX}/{quote(found.id)}">{html.escape(found.subject or "(no subject)")}</a></td>'
                "</tr>"
            )
        shown = f"the newest {LIST_LIMIT} of {len(messages)}" if len(messages) > LIST_LIMIT else f"{len(messages)}"
        table = (
            "<table><caption>Sent emails, newest first ("
            + shown
            + ")</caption><thead><tr><th scope=col>Sent</th><th scope=col>From</th><th scope=col>To</th>"
            "<th scope=col>Subject</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            if rows
            else "<p>No email sent yet. Reminders appear here when the notifier sends them.</p>"
        )
        source = html.escape(self.source)
        intro = (
            f'<p>Every email this runtime sent (from <a href="{source}">{source}</a>). <a href="/">Dashboard</a></p>'
        )
        return _page(200, "Local inbox", intro + table)


def _readable(timestamp: str) -> str:
    try:
        return datetime.fromisoformat(timestamp).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return timestamp


def _summary(message: dict[str, Any]) -> Email:
    """Only what the list shows (parsing every body of thousands of emails would be slow)."""
    to = list((message.get("Destination") or {}).get("ToAddresses") or [])
    subject = message.get("Subject")
    if "RawData" in message:
        head = message["RawData"].split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
        subject = email.message_from_string(head + "\n\n", policy=email.policy.default).get("Subject")
    return Email(
        id=str(message.get("Id", "")),
        timestamp=str(message.get("Timestamp", "")),
        source=str(message.get("Source") or ""),
        to=to,
        subject=str(subject or ""),
    )


def _email_body(found: Email) -> str:
    base = f"{PREFIX}/{quote(found.id)}"
    header_rows = "".join(
        f"<tr><th scope=row>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in found.headers
    )
    sections = [
        f'<p><a href="{PREFIX}">Back to the inbox</a> · <a href="{base}/raw">Download the message (.eml)</a></p>',
        f"<section><h2>Headers</h2><table class=headers>{header_rows}</table></section>",
    ]
    if found.html is not None:
        sections.append(
            '<section><h2>HTML body</h2><iframe title="HTML body" class=html-body '
            f'sandbox="allow-popups allow-popups-to-escape-sandbox" src="{base}/html"></iframe></section>'
        )
    if found.text is not None:
        sections.append(f'<section><h2>Text body</h2><pre class="text-body">{html.escape(found.text)}</pre></section>')
    if found.attachments:
        items = "".join(
            f'<li><a href="{base}/parts/{i}" download="{html.escape(a.filename)}">{html.escape(a.filename)}</a> '
            f"({html.escape(a.content_type)}, {len(a.data)} bytes)</li>"
            for i, a in enumerate(found.attachments)
        )
        sections.append(f"<section><h2>Attachments</h2><ul>{items}</ul></section>")
    links = found.links()
    if links:
        items = "".join(
            f'<li><a href="{html.escape(u)}" target="_blank" rel="noopener">{html.escape(u)}</a></li>' for u in links
        )
        sections.append(f"<section><h2>Links</h2><ul class=links>{items}</ul></section>")
    return "".join(sections)


_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; padding: 0 1rem; color: #1d2330; }
table { border-collapse: collapse; width: 100%; } caption { text-align: left; font-weight: 600; margin-bottom: .5rem; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #d5d9e0; vertical-align: top; }
table.headers th { width: 14rem; white-space: nowrap; } table.headers td { word-break: break-all; }
iframe.html-body { width: 100%; height: 28rem; border: 1px solid #d5d9e0; }
pre.text-body { white-space: pre-wrap; background: #f5f6f8; padding: 1rem; }
a:focus-visible { outline: 3px solid #f2a900; }
"""


def _page(status: int, title: str, body: str) -> Reply:
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · local inbox</title>"
        f'<link rel="icon" href="data:,"><style>{_STYLE}</style></head>'
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    return status, [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")], page.encode()
