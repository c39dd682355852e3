"""Rendering reminders and sorting SES's errors (botocore's Stubber stands in for SES here;
the integration tests send through moto)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.stub import ANY, Stubber

from reminders.delivery import reminder_email
from reminders.mailer import ErrorKind, SendError, SesMailer, classify
from reminders.outbox import ClaimedNotification
from reminders.rendering import local_start

STARTS = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def claimed(**fields: object) -> ClaimedNotification:
    values: dict[str, object] = {
        "id": 1,
        "attempts": 1,
        "recipient": "ana@example.com",
        "minutes_before": 5,
        "due_at": STARTS,
        "event_id": uuid.uuid4(),
        "title": "Team sync",
        "description": "Room 4",
        "occurrence_at": STARTS,
        "timezone": "Europe/Berlin",
    } | fields
    return ClaimedNotification(**values)  # type: ignore[arg-type]


def test_start_time_is_shown_in_the_events_time_zone() -> None:
    assert local_start(STARTS, "Europe/Berlin") == "Tuesday 1 December 2026, 10:00 CET (Europe/Berlin)"
    assert local_start(STARTS, "America/New_York") == "Tuesday 1 December 2026, 04:00 EST (America/New_York)"
    assert local_start(STARTS, "Not/AZone").endswith("09:00 UTC (UTC)")


def test_email_has_title_in_subject_and_time_and_description_in_both_bodies() -> None:
    email = reminder_email(claimed(), STARTS)

    assert email.to == "ana@example.com"
    assert "Team sync" in email.subject
    for body in (email.text, email.html):
        assert "Team sync" in body
        assert "Tuesday 1 December 2026, 10:00 CET" in body
        assert "Room 4" in body


def test_html_is_escaped_and_the_subject_has_no_line_breaks() -> None:
    email = reminder_email(claimed(title="<b>Sync</b>\nnow", description="a & b"), STARTS)

    assert "\n" not in email.subject and "\r" not in email.subject
    assert "<b>Sync</b>" not in email.html and "&lt;b&gt;Sync&lt;/b&gt;" in email.html
    assert "a &amp; b" in email.html


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "op")


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (client_error("Throttling", 400), ErrorKind.THROTTLED),
        (client_error("TooManyRequestsException", 429), ErrorKind.THROTTLED),
        (client_error("ServiceUnavailable", 503), ErrorKind.TRANSIENT),
        (client_error("SomethingNew", 500), ErrorKind.TRANSIENT),
        (client_error("AccountSendingPausedException", 400), ErrorKind.TRANSIENT),
        (client_error("MessageRejected", 400), ErrorKind.PERMANENT),
        (client_error("MailFromDomainNotVerifiedException", 400), ErrorKind.PERMANENT),
        (client_error("InvalidParameterValue", 400), ErrorKind.PERMANENT),
        # The request never left: safe to send again.
        (EndpointConnectionError(endpoint_url="http://x"), ErrorKind.TRANSIENT),
        (ConnectTimeoutError(endpoint_url="http://x"), ErrorKind.TRANSIENT),
        # It left and no answer came: SES may have the email.
        (ReadTimeoutError(endpoint_url="http://x"), ErrorKind.AMBIGUOUS),
        (ConnectionClosedError(endpoint_url="http://x"), ErrorKind.AMBIGUOUS),
        (RuntimeError("surprise"), ErrorKind.TRANSIENT),
    ],
)
def test_ses_errors_are_sorted_into_throttled_transient_ambiguous_and_permanent(
    error: Exception, kind: ErrorKind
) -> None:
    sorted_error = classify(error)
    assert sorted_error.kind is kind
    assert sorted_error.retryable is (kind is not ErrorKind.PERMANENT)


def test_mailer_sends_the_raw_mime_from_the_sender_and_raises_classified_errors() -> None:
    client = boto3.client("ses", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    email = reminder_email(claimed(), STARTS)
    expected = {
        "Source": "reminders@example.com",
        "Destinations": ["ana@example.com"],
        # MIME boundaries differ per message; the integration tests parse what SES received.
        "RawMessage": {"Data": ANY},
    }
    with Stubber(client) as stub:
        stub.add_client_error(
            "send_raw_email", "Throttling", "Maximum sending rate exceeded.", 400, expected_params=expected
        )
        stub.add_response("send_raw_email", {"MessageId": "abc-123"}, expected)
        mailer = SesMailer("reminders@example.com", client)

        with pytest.raises(SendError) as raised:
            mailer.send(email)
        assert raised.value.kind is ErrorKind.THROTTLED and raised.value.retryable
        assert mailer.send(email) == "abc-123"
