"""Bounces, complaints, deliveries and one-click unsubscribe through `make run`'s runtime: the
local SES answers the mailbox simulator's addresses with the events SES publishes, delivered to
FeedbackFunction in SNS's envelope as the template wires it (configuration set -> topic -> function)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.runtime import LocalRuntime
from tests.support import aws

pytestmark = pytest.mark.e2e
SCHEDULED_EVENT = Path(__file__).resolve().parents[1] / "events" / "eventbridge_scheduled.json"
SUCCESS = "success@simulator.amazonses.com"
BOUNCE = "bounce@simulator.amazonses.com"
COMPLAINT = "complaint@simulator.amazonses.com"


def run_notifier(product: LocalRuntime) -> dict[str, Any]:
    scheduled = json.loads(SCHEDULED_EVENT.read_text())
    scheduled["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reply = product.lambda_client().invoke(FunctionName="NotifierFunction", Payload=json.dumps(scheduled).encode())
    summary: dict[str, Any] = json.loads(reply["Payload"].read())
    assert "FunctionError" not in reply, summary
    return summary


def create_event(product: LocalRuntime, auth: dict[str, str], title: str, recipients: list[str]) -> str:
    starts_at = (datetime.now(UTC) + timedelta(minutes=3)).replace(microsecond=0)
    created = requests.post(
        f"{product.api}/events",
        json={"title": title, "starts_at": starts_at.isoformat(), "recipients": recipients},
        headers=auth,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def log_of(product: LocalRuntime, auth: dict[str, str], event_id: str) -> dict[str, dict[str, Any]]:
    reply = requests.get(f"{product.api}/events/{event_id}/notifications", headers=auth, timeout=30)
    assert reply.status_code == 200, reply.text
    return {n["recipient"]: n for n in reply.json()["items"]}


def wait_for(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def emails_titled(product: LocalRuntime, title: str) -> list[dict[str, Any]]:
    messages = requests.get(f"{product.aws}/_aws/ses", timeout=10).json()["messages"]
    return [m for m in messages if title in (aws.mime(m)["Subject"] or "")]


def test_simulator_bounce_complaint_and_delivery_end_to_end(product: LocalRuntime) -> None:
    auth = {"Authorization": f"Bearer {product.mint_token('feedback-owner@example.com')}"}
    title = f"Feedback {uuid.uuid4().hex[:8]}"

    # Given reminders to the simulator's three addresses, sent
    first = create_event(product, auth, title, [SUCCESS, BOUNCE, COMPLAINT])
    run_notifier(product)
    assert wait_for(lambda: all(n["status"] == "sent" for n in log_of(product, auth, first).values()))

    # When SES (the local simulator) reports on them, then each notification says what happened
    expected = {SUCCESS: "delivered", BOUNCE: "bounced", COMPLAINT: "complained"}
    feedback = wait_for(
        lambda: (found := {r: n["feedback"] for r, n in log_of(product, auth, first).items()}) == expected and found
    )
    assert feedback == expected, log_of(product, auth, first)

    # And the bounced and complaining addresses are suppressed for this owner's reminders
    listed = requests.get(f"{product.api}/suppressions", headers=auth, timeout=30).json()["items"]
    assert sorted((s["email"], s["reason"]) for s in listed) == [(BOUNCE, "bounce"), (COMPLAINT, "complaint")]

    # When the next reminders to the same addresses come due
    second_title = f"{title} again"
    second = create_event(product, auth, second_title, [SUCCESS, BOUNCE, COMPLAINT])
    run_notifier(product)

    # Then only the deliverable address is emailed; the others end suppressed
    statuses = wait_for(
        lambda: (s := {r: n["status"] for r, n in log_of(product, auth, second).items()})[SUCCESS] == "sent" and s
    )
    assert statuses == {SUCCESS: "sent", BOUNCE: "suppressed", COMPLAINT: "suppressed"}
    assert [m["Destination"]["ToAddresses"] for m in emails_titled(product, second_title)] == [[SUCCESS]]


def test_one_click_unsubscribe_from_a_local_reminder(product: LocalRuntime) -> None:
    owner = {"Authorization": f"Bearer {product.mint_token('newsletter@example.com')}"}
    title = f"Unsubscribe {uuid.uuid4().hex[:8]}"
    recipient = "reader+e2e@example.com"
    create_event(product, owner, title, [recipient])
    run_notifier(product)
    [message] = wait_for(lambda: emails_titled(product, title))
    parsed = aws.mime(message)
    url = parsed["List-Unsubscribe"].strip("<>")
    assert url.startswith(f"{product.api}/unsubscribe/")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # A GET (a mail scanner) changes nothing; the page's button POSTs
    page = requests.get(url, timeout=30)
    assert page.status_code == 200 and 'method="post"' in page.text
    assert requests.get(f"{product.api}/suppressions", headers=owner, timeout=30).json() == {"items": []}

    # The mail client's one-click POST, with no bearer token
    done = requests.post(
        url,
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert done.status_code == 200, done.text
    listed = requests.get(f"{product.api}/suppressions", headers=owner, timeout=30).json()["items"]
    assert [(s["email"], s["reason"]) for s in listed] == [(recipient, "unsubscribe")]

    # A forged token is 404, over HTTP too
    forged = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
    assert requests.post(forged, data="List-Unsubscribe=One-Click", timeout=30).status_code == 404
