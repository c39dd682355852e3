"""The only module that talks to SES (v1 ``SendEmail``, which LocalStack's free edition emulates too).

It renders a reminder (title in the subject; title, start time in the event's time zone and
description in the text and HTML bodies), sends it from the configured sender, and sorts SES's
errors into throttled, transient (worth retrying), ambiguous (SES may have taken the email) and
permanent. botocore itself never retries a send: after a read timeout it would send the email
again without anyone recording that the first one may have gone out. boto3 is imported on first
use and its client created once per process; ``AWS_ENDPOINT_URL`` points it at moto or LocalStack.
"""

from __future__ import annotations

import enum
import html
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reminders.notifications import ClaimedNotification
from reminders.settings import NotifierSettings

if TYPE_CHECKING:
    from mypy_boto3_ses import SESClient

SUBJECT_MAX = 200
# SES's throttling codes: the sending rate or the daily quota is used up.
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "LimitExceededException"}
)
TRANSIENT_CODES = frozenset(
    {"ServiceUnavailable", "InternalFailure", "InternalError", "RequestTimeout", "RequestTimeoutException"}
)
# The account or configuration set is paused: nothing is wrong with the message, try later.
PAUSED_CODES = frozenset({"AccountSendingPausedException", "ConfigurationSetSendingPausedException"})


class ErrorKind(enum.StrEnum):
    THROTTLED = "throttled"
    # SES did not take the email (it answered with an error, or the request never reached it).
    TRANSIENT = "transient"
    # The request went out and no answer came back (read timeout, connection closed): SES may have it.
    AMBIGUOUS = "ambiguous"
    PERMANENT = "permanent"


class SendError(Exception):
    """SES did not accept the message; ``kind`` says whether trying again may help."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    @property
    def retryable(self) -> bool:
        return self.kind is not ErrorKind.PERMANENT


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    text: str
    html: str


class Mailer(Protocol):
    def send(self, email: Email) -> str:
        """Send one email; return the provider's message id or raise :class:`SendError`."""
        ...


def local_start(starts_at: datetime, timezone: str) -> str:
    """The start time as the event's attendees read it, e.g. 'Tuesday 1 December 2026, 10:00 CET'."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = starts_at.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B %Y, %H:%M} {local.tzname()} ({zone.key})"


def render_reminder(claimed: ClaimedNotification) -> Email:
    when = local_start(claimed.starts_at, claimed.timezone)
    # A header cannot hold line breaks.
    title_line = " ".join(claimed.title.split())
    subject = f"Reminder: {title_line}"[:SUBJECT_MAX]
    lines = [claimed.title, "", f"Starts: {when}"]
    if claimed.description:
        lines += ["", claimed.description]
    lines += ["", f"You are receiving this because you were invited to {title_line}."]
    description = f"<p>{html.escape(claimed.description).replace(chr(10), '<br>')}</p>" if claimed.description else ""
    body_html = (
        '<!doctype html><html><body style="font-family: sans-serif">'
        f"<h1>{html.escape(claimed.title)}</h1>"
        f"<p><strong>Starts:</strong> {html.escape(when)}</p>"
        f"{description}"
        f'<p style="color: #666">You are receiving this because you were invited to '
        f"{html.escape(title_line)}.</p>"
        "</body></html>"
    )
    return Email(to=claimed.recipient, subject=subject, text="\n".join(lines) + "\n", html=body_html)


def classify(exc: Exception) -> SendError:
    """Sort an exception from botocore into throttled, transient, ambiguous or permanent."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as NotConnected

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = f"{code}: {error.get('Message', '')}".strip()
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in THROTTLING_CODES or status == 429:
            return SendError(ErrorKind.THROTTLED, message)
        if code in TRANSIENT_CODES or code in PAUSED_CODES or status >= 500:
            return SendError(ErrorKind.TRANSIENT, message)
        return SendError(ErrorKind.PERMANENT, message)
    # Connecting failed (refused, timed out, TLS): the request never left.
    if isinstance(exc, NotConnected):
        return SendError(ErrorKind.TRANSIENT, f"{type(exc).__name__}: {exc}")
    # Read timeout, connection closed: after the request went out.
    if isinstance(exc, HTTPClientError):
        return SendError(
            ErrorKind.AMBIGUOUS, f"{type(exc).__name__}: {exc} (SES may have accepted it; a retry may send it twice)"
        )
    # Unknown failures are retried (and fail for good after the last attempt), never dropped.
    return SendError(ErrorKind.TRANSIENT, f"{type(exc).__name__}: {exc}")


class SesMailer:
    """Sends through an SES v1 client; thread-safe (boto3 clients are)."""

    def __init__(self, sender: str, client: SESClient | Any) -> None:
        self.sender = sender
        self.client = client

    def send(self, email: Email) -> str:
        try:
            response = self.client.send_email(
                Source=self.sender,
                Destination={"ToAddresses": [email.to]},
                Message={
                    "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": email.text, "Charset": "UTF-8"},
                        "Html": {"Data": email.html, "Charset": "UTF-8"},
                    },
                },
            )
        except Exception as exc:
            raise classify(exc) from exc
        return str(response["MessageId"])


_client_lock = threading.Lock()
_clients: dict[tuple[str, str | None, float, int], Any] = {}


def ses_client(settings: NotifierSettings) -> SESClient:
    """The process's SES client for these settings, created on first use."""
    key = (
        settings.aws_region,
        settings.aws_endpoint_url,
        settings.ses_timeout_seconds,
        settings.send_concurrency,
    )
    with _client_lock:
        if key not in _clients:
            _clients[key] = _new_client(settings)
        return _clients[key]


def _new_client(settings: NotifierSettings) -> SESClient:
    # Imported here: boto3 costs ~220 ms of cold start and only sending needs it.
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=settings.ses_timeout_seconds,
        read_timeout=settings.ses_timeout_seconds,
        # No retries: a re-send after a read timeout may duplicate the email without any trace, and
        # throttling and errors get our own backoff, recorded on the row first.
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max(10, settings.send_concurrency),
    )
    session = boto3.session.Session()
    key_id = secret = None
    if settings.aws_endpoint_url and session.get_credentials() is None:
        # Emulators (moto, LocalStack) accept any key; a local worker may have none configured.
        key_id = secret = "test"  # noqa: S105
    return session.client(
        "ses",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        config=config,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


def ses_mailer(settings: NotifierSettings) -> SesMailer:
    return SesMailer(settings.sender_email, ses_client(settings))
