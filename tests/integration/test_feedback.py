"""Delivery feedback and suppression against a real PostgreSQL and SES endpoint: FeedbackFunction's
handler with SNS-wrapped SES events, and the notifier's claim honouring the suppression list."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from reminders import db, suppressions
from reminders.models import Suppression
from tests.support.lambdas import FakeLambdaContext, load_function
from tests.support.notifier import OWNER, Outbox, create_event, reset_send_rate, rows, run
from tests.support.ses_feedback import combined, sns_event

BOUNCE = "bounce@simulator.amazonses.com"


@pytest.fixture
def outbox(aws_env: str, engine: Engine) -> Outbox:
    reset_send_rate(engine)
    return Outbox(aws_env)


def feedback(event: dict[str, Any]) -> dict[str, Any]:
    return load_function("feedback").lambda_handler(event, FakeLambdaContext())


def send_one(engine: Engine, outbox: Outbox, now: datetime, recipient: str, **fields: Any) -> tuple[uuid.UUID, str]:
    """An event whose reminder is due now, sent by a notifier run: (event id, SES message id)."""
    event_id = create_event(
        engine, now, recipients=[recipient], starts_at=(now + timedelta(minutes=3)).isoformat(), **fields
    )
    run(engine, outbox.endpoint, now)
    [row] = rows(engine, event_id)
    assert row.status == "sent" and row.message_id
    return event_id, row.message_id


def suppression_rows(engine: Engine) -> list[tuple[str, str | None, str]]:
    with db.session_scope(engine) as session:
        found = session.execute(
            select(Suppression.email, Suppression.owner, Suppression.reason).order_by(Suppression.id)
        )
        return [tuple(r) for r in found]  # type: ignore[misc]


def test_permanent_bounce_records_feedback_and_suppresses_the_next_reminder(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    # Given a reminder SES accepted for an address that bounces
    event_id, message_id = send_one(engine, outbox, now, BOUNCE)

    # When SES reports a permanent bounce for it
    result = feedback(sns_event("bounce", message_id, BOUNCE))

    # Then the notification says bounced and the address is suppressed for everyone
    assert result["bounced_permanent"] == 1 and result["suppressions_added"] == 1
    [row] = rows(engine, event_id)
    assert (row.status, row.feedback) == ("sent", "bounced")
    assert suppression_rows(engine) == [(BOUNCE, None, "bounce")]

    # And the next reminder to that address (any owner, any case) ends suppressed, not emailed
    sent_before = len(outbox.emails())
    later = create_event(
        engine,
        now,
        recipients=["Bounce@simulator.amazonses.com", "ana@example.com"],
        starts_at=(now + timedelta(minutes=3)).isoformat(),
    )
    summary = run(engine, outbox.endpoint, now)
    assert (summary.sent, summary.suppressed) == (1, 1)
    assert {r.recipient: r.status for r in rows(engine, later)} == {
        "Bounce@simulator.amazonses.com": "suppressed",
        "ana@example.com": "sent",
    }
    assert [e["Destination"]["ToAddresses"] for e in outbox.emails()[sent_before:]] == [["ana@example.com"]]


def test_transient_bounce_is_recorded_and_suppresses_nothing(engine: Engine, outbox: Outbox, now: datetime) -> None:
    event_id, message_id = send_one(engine, outbox, now, "full@example.com")

    result = feedback(
        sns_event("bounce", message_id, "full@example.com", bounceType="Transient", bounceSubType="MailboxFull")
    )

    assert (result["bounced_transient"], result["suppressions_added"]) == (1, 0)
    assert rows(engine, event_id)[0].feedback == "bounced"
    assert suppression_rows(engine) == []


def test_complaint_after_delivery_in_either_order_and_twice_ends_complained(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    _, first = send_one(engine, outbox, now, "grumpy@example.com")
    second_event, second = send_one(engine, outbox, now, "grumpy2@example.com")

    # In order, each twice
    for event in [
        sns_event("delivery", first, "grumpy@example.com"),
        sns_event("complaint", first, "grumpy@example.com"),
    ] * 2:
        feedback(event)
    # Out of order: the complaint before the delivery, in one SNS batch
    feedback(
        combined(
            sns_event("complaint", second, "grumpy2@example.com"), sns_event("delivery", second, "grumpy2@example.com")
        )
    )

    assert {r.recipient: r.feedback for r in rows(engine)} == {
        "grumpy@example.com": "complained",
        "grumpy2@example.com": "complained",
    }
    assert suppression_rows(engine) == [
        ("grumpy@example.com", None, "complaint"),
        ("grumpy2@example.com", None, "complaint"),
    ]
    assert rows(engine, second_event)[0].status == "sent"


def test_delivery_is_recorded_and_a_bounce_then_a_late_delivery_stays_bounced(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    event_id, message_id = send_one(engine, outbox, now, "ok@example.com")
    assert feedback(sns_event("delivery", message_id, "ok@example.com"))["delivered"] == 1
    assert rows(engine, event_id)[0].feedback == "delivered"

    feedback(sns_event("bounce", message_id, "ok@example.com"))
    feedback(sns_event("delivery", message_id, "ok@example.com"))
    assert rows(engine, event_id)[0].feedback == "bounced"


def test_unknown_message_id_is_harmless_and_still_suppresses_a_bounced_address(engine: Engine, aws_env: str) -> None:
    result = feedback(sns_event("bounce", "not-one-of-ours", "gone@example.com"))
    assert (result["unknown_message"], result["suppressions_added"]) == (1, 1)
    assert feedback(sns_event("delivery", "not-one-of-ours", "x@example.com"))["unknown_message"] == 1
    assert feedback(sns_event("reject", "not-one-of-ours", "x@example.com"))["rejected"] == 1
    assert suppression_rows(engine) == [("gone@example.com", None, "bounce")]


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"Records": "nope"},
        {"Records": [None, 3, {"Sns": None}, {"Sns": {"Message": 7}}]},
        {"Records": [{"Sns": {"MessageId": "m", "Message": "not json"}}]},
        {"Records": [{"Sns": {"Message": "[1, 2]"}}]},
        {"Records": [{"Sns": {"Message": '{"eventType": "Bounce", "mail": {}}'}}]},
        {"Records": [{"Sns": {"Message": '{"eventType": "Bounce", "mail": {"messageId": "x"}}'}}]},
        {
            "Records": [
                {"Sns": {"Message": '{"eventType": "Bounce", "mail": {"messageId": "x"}, "bounce": {"bounceType": 5}}'}}
            ]
        },
        {"Records": [{"Sns": {"Message": "[" * 100_000}}]},
        {"Records": [{"Sns": {"Message": '{"eventType": "Open", "mail": {"messageId": "x"}, "open": {}}'}}]},
    ],
)
def test_garbage_is_skipped_not_raised(engine: Engine, event: dict[str, Any]) -> None:
    result = feedback(event)
    assert result["unreadable"] + result["other"] >= 1
    assert suppression_rows(engine) == []


def test_an_unsubscribe_suppresses_for_its_owner_only(engine: Engine, outbox: Outbox, now: datetime) -> None:
    # Given the recipient unsubscribed from OWNER's reminders
    with db.session_scope(engine) as session:
        assert suppressions.unsubscribe(session, OWNER, "Ana@Example.com", now)
        assert not suppressions.unsubscribe(session, OWNER, "ana@example.com", now)
    mine = create_event(engine, now, recipients=["ana@example.com"], starts_at=(now + timedelta(minutes=3)).isoformat())
    with db.session_scope(engine) as session:
        from reminders import events
        from reminders.schemas import EventCreate

        theirs = events.create_event(
            session,
            "someone-else@example.com",
            EventCreate.model_validate(
                {
                    "title": "Other",
                    "recipients": ["ana@example.com"],
                    "starts_at": (now + timedelta(minutes=3)).isoformat(),
                }
            ),
            now,
        ).id

    # When the notifier runs
    run(engine, outbox.endpoint, now)

    # Then OWNER's reminder is suppressed and the other owner's still goes out
    assert rows(engine, mine)[0].status == "suppressed"
    assert rows(engine, theirs)[0].status == "sent"
