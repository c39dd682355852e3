"""The local runtime's mailbox simulator speaks SES's event JSON in SNS's envelope (what
FeedbackFunction reads on AWS), and finds where to deliver it in template.yaml itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from devserver import template
from devserver.ses_feedback import simulated_events, simulator_mailbox, sns_event
from reminders.feedback import read_report, sns_messages
from reminders.models import Feedback, SuppressionReason
from tests.support.lambdas import ROOT

EVENTS = Path(__file__).resolve().parents[1] / "events"


def reports(recipient: str) -> list[tuple[str, Feedback | None, SuppressionReason | None]]:
    found = []
    for _, event in simulated_events("msg-1", "reminders@example.com", recipient, "Hi", "Set", datetime.now(UTC)):
        [(_, message, problem)] = list(sns_messages(sns_event("arn:aws:sns:us-east-1:123456789012:T", event)))
        assert problem is None and message is not None
        report = read_report(message)
        assert report.message_id == "msg-1" and report.recipients == (recipient.lower(),)
        found.append((report.kind, report.feedback, report.suppress))
    return found


def test_the_simulator_addresses_report_as_on_aws() -> None:
    assert reports("success@simulator.amazonses.com") == [("Delivery", Feedback.DELIVERED, None)]
    assert reports("bounce@simulator.amazonses.com") == [("Bounce", Feedback.BOUNCED, SuppressionReason.BOUNCE)]
    assert reports("Bounce+label@Simulator.AmazonSES.com") == [("Bounce", Feedback.BOUNCED, SuppressionReason.BOUNCE)]
    assert reports("complaint@simulator.amazonses.com") == [
        ("Delivery", Feedback.DELIVERED, None),
        ("Complaint", Feedback.COMPLAINED, SuppressionReason.COMPLAINT),
    ]
    assert reports("ana@example.com") == []
    assert simulator_mailbox("success@example.com") is None


def test_the_local_envelope_has_the_keys_of_a_real_sns_record() -> None:
    real = json.loads((EVENTS / "sns_ses_delivery.json").read_text())["Records"][0]
    [(_, event)] = simulated_events(
        "m", "a@example.com", "success@simulator.amazonses.com", None, "S", datetime.now(UTC)
    )
    local = sns_event("arn:aws:sns:us-east-1:123456789012:T", event)["Records"][0]
    assert set(local) == set(real) and set(local["Sns"]) == set(real["Sns"])
    assert set(json.loads(local["Sns"]["Message"])) == set(json.loads(real["Sns"]["Message"]))


def test_the_runtime_finds_the_feedback_wiring_in_the_template() -> None:
    app = template.load(ROOT / "template.yaml")
    [destination] = app.feedback
    assert destination.configuration_set == app.functions["NotifierFunction"].environment["SES_CONFIGURATION_SET"]
    assert destination.functions == ("FeedbackFunction",)
    assert set(destination.event_types) == {"bounce", "complaint", "delivery", "reject"}
