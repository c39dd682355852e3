"""SES feedback events as SNS delivers them to FeedbackFunction, from the samples in tests/events
(the JSON SES event publishing sends), for any message id and recipient."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[1] / "events"


def sns_event(kind: str, message_id: str, recipient: str, **changes: Any) -> dict[str, Any]:
    """``kind``: bounce, complaint, delivery or reject; ``changes`` update the event's own object
    (``bounceType="Transient"``, say)."""
    event = json.loads((EVENTS / f"sns_ses_{kind}.json").read_text())
    record = event["Records"][0]["Sns"]
    message = json.loads(record["Message"])
    message["mail"]["messageId"] = message_id
    message["mail"]["destination"] = [recipient]
    message["mail"]["commonHeaders"]["to"] = [recipient]
    if kind == "bounce":
        message["bounce"]["bouncedRecipients"][0]["emailAddress"] = recipient
    if kind == "complaint":
        message["complaint"]["complainedRecipients"][0]["emailAddress"] = recipient
    if kind == "delivery":
        message["delivery"]["recipients"] = [recipient]
    message[kind].update(changes)
    record["Message"] = json.dumps(message)
    return event


def combined(*events: dict[str, Any]) -> dict[str, Any]:
    """One SNS event holding the records of several (Lambda may batch them)."""
    out = copy.deepcopy(events[0])
    out["Records"] = [record for event in events for record in event["Records"]]
    return out
