"""The only module that talks to SES (v1 ``SendRawEmail``, which LocalStack's free edition emulates too).

It sends a rendered reminder (reminders/rendering.py builds the MIME) from the configured
sender as a raw message, and sorts SES's
errors into throttled, transient (worth retrying), ambiguous (SES may have taken the email) and
permanent. botocore itself never retries a send: after a read timeout it would send the email
again without anyone recording that the first one may have gone out. boto3 is imported on first
use and its client created once per process; ``AWS_ENDPOINT_URL`` points it at moto or LocalStack.
"""

from __future__ import annotations

import enum
import threading
from typing import TYPE_CHECKING, Any, Protocol

from reminders.rendering import Email
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


class Mailer(Protocol):
    def send(self, email: Email) -> str:
        """Send one email; return the provider's message id or raise :class:`SendError`."""
        ...


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

    def __init__(self, sender: str, client: SESClient | Any, configuration_set: str | None = None) -> None:
        self.sender = sender
        self.client = client
        self.configuration_set = configuration_set

    def send(self, email: Email) -> str:
        # The configuration set publishes the email's bounces, complaints and deliveries (FeedbackFunction).
        extra: dict[str, Any] = {"ConfigurationSetName": self.configuration_set} if self.configuration_set else {}
        try:
            # Raw MIME (SendRawEmail, in LocalStack's free edition too): bodies, the .ics, any header.
            response = self.client.send_raw_email(
                Source=self.sender,
                Destinations=[email.to],
                RawMessage={"Data": email.raw(self.sender)},
                **extra,
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
    return SesMailer(settings.sender_email, ses_client(settings), settings.ses_configuration_set)
