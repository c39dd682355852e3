"""The SES mailbox simulator, locally: what SES event publishing reports for the simulator's
addresses, in the JSON SES publishes and the SNS envelope Lambda receives, delivered to the
functions the template subscribes to the configuration set's topic.

    success@simulator.amazonses.com       Delivery
    bounce@simulator.amazonses.com        Delivery of nothing: a permanent (General) Bounce
    complaint@simulator.amazonses.com     Delivery, then a Complaint
    suppressionlist@simulator.amazonses.com  a permanent (Suppressed) Bounce

A label (``bounce+anything@``) behaves as the address without it, as on AWS. Other addresses get no
feedback locally (nothing delivers them). Events go out a moment after the send (``delay``), as
on AWS, by the Lambda Invoke API's asynchronous (``Event``) invocation, as SNS invokes Lambda.
"""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

SIMULATOR_DOMAIN = "simulator.amazonses.com"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class Destination:
    """One event destination: the configuration set's events of these types go to these functions."""

    configuration_set: str
    topic: str
    event_types: tuple[str, ...]
    functions: tuple[str, ...]

    @property
    def topic_arn(self) -> str:
        return f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{self.topic}"

    def as_json(self) -> dict[str, Any]:
        return {
            "configuration_set": self.configuration_set,
            "topic": self.topic,
            "event_types": list(self.event_types),
            "functions": list(self.functions),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Destination:
        return cls(
            str(data["configuration_set"]),
            str(data["topic"]),
            tuple(str(t).lower() for t in data["event_types"]),
            tuple(str(f) for f in data["functions"]),
        )


def simulator_mailbox(address: str) -> str | None:
    """``bounce`` for ``bounce+label@simulator.amazonses.com``; None for any other domain."""
    local, _, domain = address.strip().lower().rpartition("@")
    if domain != SIMULATOR_DOMAIN:
        return None
    return local.split("+", 1)[0]


def _mail(
    message_id: str, source: str, recipient: str, subject: str | None, sent: datetime, config_set: str
) -> dict[str, Any]:
    return {
        "timestamp": _iso(sent),
        "source": source,
        "sourceArn": f"arn:aws:ses:{REGION}:{ACCOUNT_ID}:identity/{source}",
        "sendingAccountId": ACCOUNT_ID,
        "messageId": message_id,
        "destination": [recipient],
        "headersTruncated": False,
        "headers": [{"name": "From", "value": source}, {"name": "To", "value": recipient}],
        "commonHeaders": {"from": [source], "to": [recipient], "messageId": message_id, "subject": subject or ""},
        "tags": {"ses:configuration-set": [config_set], "ses:from-domain": [source.rpartition("@")[2]]},
    }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def simulated_events(
    message_id: str, source: str, recipient: str, subject: str | None, config_set: str, sent: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """(event type, SES event) for a send to ``recipient``, in the order SES reports them."""
    mailbox = simulator_mailbox(recipient)
    if mailbox is None:
        return []
    mail = _mail(message_id, source, recipient, subject, sent, config_set)
    later = sent + timedelta(seconds=1)
    delivery = {
        "eventType": "Delivery",
        "mail": mail,
        "delivery": {
            "timestamp": _iso(later),
            "processingTimeMillis": 1000,
            "recipients": [recipient],
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
            "remoteMtaIp": "127.0.0.1",
        },
    }

    def bounce(sub_type: str, status: str, code: str) -> dict[str, Any]:
        return {
            "eventType": "Bounce",
            "mail": mail,
            "bounce": {
                "feedbackId": f"{uuid.uuid4()}-000000",
                "bounceType": "Permanent",
                "bounceSubType": sub_type,
                "bouncedRecipients": [
                    {"emailAddress": recipient, "action": "failed", "status": status, "diagnosticCode": code}
                ],
                "timestamp": _iso(later),
                "reportingMTA": "dns; b232-5.smtp-out.amazonses.com",
            },
        }

    if mailbox == "success":
        return [("delivery", delivery)]
    if mailbox == "bounce":
        return [("bounce", bounce("General", "5.1.1", "smtp; 550 5.1.1 user unknown"))]
    if mailbox == "suppressionlist":
        return [("bounce", bounce("Suppressed", "5.1.1", "Amazon SES has suppressed sending to this address"))]
    if mailbox == "complaint":
        complaint = {
            "eventType": "Complaint",
            "mail": mail,
            "complaint": {
                "feedbackId": f"{uuid.uuid4()}-000000",
                "complainedRecipients": [{"emailAddress": recipient}],
                "timestamp": _iso(later + timedelta(seconds=1)),
                "userAgent": "Amazon SES Mailbox Simulator",
                "complaintFeedbackType": "abuse",
                "arrivalDate": _iso(later),
            },
        }
        return [("delivery", delivery), ("complaint", complaint)]
    return []


def sns_event(topic_arn: str, message: dict[str, Any]) -> dict[str, Any]:
    """What Lambda receives from an SNS subscription: one record, the SES event as its Message."""
    message_id = str(uuid.uuid4())
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{topic_arn}:{uuid.uuid4()}",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": message_id,
                    "TopicArn": topic_arn,
                    "Subject": None,
                    "Message": json.dumps(message),
                    "Timestamp": _iso(datetime.now(UTC)),
                    "SignatureVersion": "1",
                    "Signature": "LOCAL",
                    "SigningCertUrl": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-local.pem",
                    "UnsubscribeUrl": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}",
                    "MessageAttributes": {},
                },
            }
        ]
    }


class FeedbackPublisher:
    """Turns sends through a configuration set into the simulator's events for its destinations."""

    def __init__(self, destinations: list[Destination], invoke_url: str, delay: float = 1.5) -> None:
        self.destinations = destinations
        self.invoke_url = invoke_url.rstrip("/")
        self.delay = delay

    def sent(self, message: dict[str, Any], configuration_set: str | None, subject: str | None) -> None:
        if not configuration_set:
            return
        wanted = [d for d in self.destinations if d.configuration_set == configuration_set]
        if not wanted:
            return
        sent = datetime.now(UTC)
        for recipient in (message.get("Destination") or {}).get("ToAddresses") or []:
            events = simulated_events(
                message["Id"], str(message.get("Source")), recipient, subject, configuration_set, sent
            )
            for order, (event_type, event) in enumerate(events):
                for destination in wanted:
                    if event_type not in destination.event_types:
                        continue
                    payload = sns_event(destination.topic_arn, event)
                    for function in destination.functions:
                        timer = threading.Timer(self.delay * (order + 1), self._invoke, args=(function, payload))
                        timer.daemon = True
                        timer.start()

    def _invoke(self, function: str, payload: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - the local Invoke API, http
            f"{self.invoke_url}/2015-03-31/functions/{function}/invocations",
            data=json.dumps(payload).encode(),
            headers={"X-Amz-Invocation-Type": "Event", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - the local Invoke API
                reply.read()
        except OSError as exc:
            from devserver import console

            console.error(f"feedback for {function} not delivered: {exc}")
