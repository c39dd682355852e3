"""The reminder flow inside a deployed stack: an event created through the API is emailed when its
reminder is due, by NotifierFunction fired by the stack's own EventBridge rule (rate(1 minute)).

Needs the runtime's SES outbox: CONTRACT_SES_OUTBOX_URL (LocalStack's /_aws/ses). `sam local`
has no scheduler, so make test-sam leaves it unset and this test is skipped there.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.sam.conftest import ContractApi
from tests.support import aws

# The rule fires once a minute: a reminder due in a minute is sent within about two.
WAIT_SECONDS = 240


def sent_to(outbox: str, recipient: str) -> list[dict[str, Any]]:
    messages = requests.get(outbox, timeout=30).json()["messages"]
    return [m for m in messages if recipient in _recipients(m)]


def _recipients(message: dict[str, Any]) -> list[str]:
    listed = (message.get("Destination") or {}).get("ToAddresses") or []
    # A raw (MIME) message: its To header, whether or not the outbox lists Destinations.
    return list(listed) + ([str(aws.mime(message)["To"])] if "RawData" in message else [])


def test_a_due_reminder_is_emailed_by_the_scheduled_notifier(contract_api: ContractApi) -> None:
    outbox = os.environ.get("CONTRACT_SES_OUTBOX_URL")
    if not outbox:
        pytest.skip("CONTRACT_SES_OUTBOX_URL is not set (the runtime has no scheduler or no SES outbox)")
    recipient = f"flow-{uuid.uuid4().hex[:8]}@example.com"
    starts = (datetime.now(UTC) + timedelta(minutes=2)).replace(microsecond=0)
    body = {
        "title": "Reminder flow",
        "starts_at": starts.isoformat(),
        "recipients": [recipient],
        "reminders": [{"minutes_before": 1}],
    }
    created = contract_api.call("POST", "/events", json=body)
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]

    deadline = time.monotonic() + WAIT_SECONDS
    while not (messages := sent_to(outbox, recipient)) and time.monotonic() < deadline:
        time.sleep(5)
    assert len(messages) == 1, f"no reminder reached {recipient} within {WAIT_SECONDS}s"
    message = messages[0]
    subject = str(aws.mime(message)["Subject"]) if "RawData" in message else message["Subject"]
    assert "Reminder flow" in subject
    notifications = contract_api.call("GET", f"/events/{event_id}/notifications").json()["items"]
    assert [(n["recipient"], n["status"]) for n in notifications] == [(recipient, "sent")], notifications
