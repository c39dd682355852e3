"""tests/support/aws.py reads every emulator's outbox alike. LocalStack 4.14.0's ``/_aws/ses`` keeps a
SendRawEmail as ``{"Id", "Region", "Source", "RawData", "Timestamp"}``: no Destination (the notifier's
``Destinations`` are not stored), so the recipients come from the MIME To header. Before, the notifier
integration tests failed against LocalStack with ``KeyError: 'Destination'`` (the CI tier localstack)."""

from __future__ import annotations

from reminders.rendering import Email
from tests.support import aws


def _localstack_raw(email: Email, **extra: object) -> dict[str, object]:
    # What LocalStack 4.14.0's SES provider saves for SendRawEmail (save_for_retrospection).
    raw = email.mime(aws.SENDER).as_bytes().decode()
    return {"Id": "m-1", "Region": "us-east-1", "Source": aws.SENDER, "RawData": raw, "Timestamp": "t", **extra}


EMAIL = Email(to="ana@example.com", subject="Reminder: Budget review", text="at 10:00", html="<p>at 10:00</p>")


def test_a_raw_message_without_destination_gets_its_recipients_from_the_to_header() -> None:
    [read] = [aws._with_parts(_localstack_raw(EMAIL))]
    assert read["Destination"] == {"ToAddresses": ["ana@example.com"]}
    assert read["Subject"] == "Reminder: Budget review"
    assert read["Body"]["text_part"].strip() == "at 10:00"
    assert read["Body"]["html_part"].strip() == "<p>at 10:00</p>"
    assert read["Source"] == aws.SENDER and read["Id"] == "m-1"


def test_a_named_recipient_is_read_as_its_address() -> None:
    named = Email(to="Ana Lima <ana@example.com>", subject="s", text="t", html="<p>t</p>")
    assert aws._with_parts(_localstack_raw(named))["Destination"] == {"ToAddresses": ["ana@example.com"]}


def test_destinations_the_emulator_lists_are_kept() -> None:
    # moto and make run's emulator list the Destinations they were given.
    listed = {"ToAddresses": ["ben@example.com"]}
    assert aws._with_parts(_localstack_raw(EMAIL, Destination=listed))["Destination"] == listed
