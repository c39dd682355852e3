"""A real AWS API endpoint for tests: ``AWS_ENDPOINT_URL`` when set (LocalStack, say), otherwise
moto in server mode on a free local port; and reading back the emails it captured.
"""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

SENDER = "reminders@example.com"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """ ""moto in server mode, in a child process: its own CPU core (the GIL would otherwise be
    shared with the code under test) and its own backends (untouched by in-process mock_aws)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get_json(f"{endpoint}/moto-api/data.json")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def ses_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "ses",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def verify_sender(endpoint: str, sender: str = SENDER) -> None:
    ses_client(endpoint).verify_email_identity(EmailAddress=sender)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (a local emulator)
        return json.loads(response.read())


def sent_count(endpoint: str) -> int:
    """How many emails the emulator holds (nothing parsed)."""
    return len(_sent_messages(endpoint))


def sent_emails(endpoint: str, start: int = 0) -> list[dict[str, Any]]:
    """Every email the emulator accepted, oldest first, in LocalStack's ``/_aws/ses`` shape:
    ``{"Id", "Source", "Destination": {"ToAddresses"}, "Subject", "Body": {"text_part", "html_part"}}``.

    LocalStack (and the local runtime) serve ``GET /_aws/ses``; plain moto serves its models at
    ``GET /moto-api/data.json`` (it keeps one body of each email: the HTML one when there is one).
    """
    # Only the messages asked for are parsed: the session's emulator keeps thousands.
    return [_with_parts(m) for m in _sent_messages(endpoint)[start:]]


def _sent_messages(endpoint: str) -> list[dict[str, Any]]:
    try:
        return list(_get_json(f"{endpoint}/_aws/ses")["messages"])
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
    data = _get_json(f"{endpoint}/moto-api/data.json")
    messages = data.get("ses", {}).get("Message", [])
    raw = [
        (
            {
                "Id": m["id"],
                "Source": m["source"],
                # moto lists the Destinations and the To header's addresses: the same address twice.
                "Destination": {"ToAddresses": list(dict.fromkeys(m.get("destinations") or []))},
                "RawData": m["raw_data"],
            }
        )
        for m in data.get("ses", {}).get("RawMessage", [])
    ]
    return raw + [
        {
            "Id": m["id"],
            "Source": m["source"],
            "Destination": {"ToAddresses": list(m.get("destinations", {}).get("ToAddresses", []))},
            "Subject": m["subject"],
            "Body": {
                "text_part": None if str(m["body"]).lstrip().startswith("<") else m["body"],
                "html_part": m["body"] if str(m["body"]).lstrip().startswith("<") else None,
            },
        }
        for m in messages
    ]


def mime(message: dict[str, Any]) -> EmailMessage:
    """A raw (``RawData``) message parsed as a mail client would."""
    raw = message["RawData"]
    if ":" not in raw.split("\n", 1)[0]:
        # Not header lines: the base64 of the message, as the SES wire carries it.
        raw = base64.b64decode(raw).decode("utf-8", "replace")
    parsed = email.message_from_string(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _with_parts(message: dict[str, Any]) -> dict[str, Any]:
    """A raw message also gets Subject and Body read from its MIME, so tests read every email alike;
    and its recipients from the To header when the emulator lists none: LocalStack's ``/_aws/ses`` keeps
    a SendRawEmail as ``{"Id", "Region", "Source", "RawData", "Timestamp"}``, without the Destinations."""
    if "RawData" not in message or "Subject" in message:
        return message
    parsed = mime(message)
    text, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    destination = message.get("Destination") or {
        "ToAddresses": [address for _, address in email.utils.getaddresses(parsed.get_all("To") or [])]
    }
    return {
        **message,
        "Destination": destination,
        "Subject": parsed["Subject"],
        "Body": {
            "text_part": text.get_content() if text is not None else None,
            "html_part": html.get_content() if html is not None else None,
        },
    }
