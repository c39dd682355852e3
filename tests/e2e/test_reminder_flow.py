"""The product end to end through ports 3000 (API), 3001 (Lambda Invoke API) and 4566 (AWS)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import requests

from tests.e2e.runtime import LocalRuntime
from tests.support import aws

pytestmark = pytest.mark.e2e
SCHEDULED_EVENT = Path(__file__).resolve().parents[1] / "events" / "eventbridge_scheduled.json"


def test_a_reminder_goes_from_the_api_to_the_mailbox(product: LocalRuntime) -> None:
    # Given an event starting in 3 minutes with a 5-minute reminder, created through the API
    auth = {"Authorization": f"Bearer {product.mint_token('ana@example.com')}"}
    starts_at = (datetime.now(UTC) + timedelta(minutes=3)).replace(microsecond=0)
    created = requests.post(
        f"{product.api}/events",
        json={
            "title": "E2E sync",
            "starts_at": starts_at.isoformat().replace("+00:00", "Z"),
            "recipients": ["bo@example.com"],
            "reminders": [{"minutes_before": 5}],
        },
        headers=auth,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]

    # When the notifier is invoked through the Lambda Invoke API with a Scheduled Event
    scheduled = json.loads(SCHEDULED_EVENT.read_text())
    scheduled["version"] = "0"
    scheduled["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reply = product.lambda_client().invoke(FunctionName="NotifierFunction", Payload=json.dumps(scheduled).encode())
    summary = json.loads(reply["Payload"].read())

    # Then it ran cleanly, the email is in the emulator's mailbox, and the log says sent
    assert reply["StatusCode"] == 200
    assert "FunctionError" not in reply, summary
    assert "sent" in summary
    mailbox = requests.get(f"{product.aws}/_aws/ses", timeout=10).json()["messages"]
    ours = [m for m in mailbox if "bo@example.com" in m["Destination"]["ToAddresses"]]
    assert len(ours) == 1
    # A raw (MIME) message, in LocalStack's shape: RawData instead of Subject and Body
    assert "Subject" not in ours[0]
    message = aws.mime(ours[0])
    assert "E2E sync" in message["Subject"]
    text = message.get_body(("plain",))
    assert text is not None and "E2E sync" in text.get_content()
    assert [part.get_content_type() for part in message.iter_attachments()] == ["text/calendar"]
    log = requests.get(f"{product.api}/events/{event_id}/notifications", headers=auth, timeout=30)
    assert log.status_code == 200
    assert [n["status"] for n in log.json()["items"]] == ["sent"]
    assert log.json()["items"][0]["message_id"] == ours[0]["Id"]


def test_the_api_is_served_at_the_root_and_under_its_stage(product: LocalRuntime) -> None:
    stage = product.wait_for(r"ready: api ", 1).split("(stage /")[1].split(")")[0]
    for prefix in ("", f"/{stage}"):
        reply = requests.get(f"{product.api}{prefix}/openapi.json", timeout=30)
        assert reply.status_code == 200
        assert reply.json()["info"]["title"]


def test_a_request_without_a_token_is_refused_by_the_gateway(product: LocalRuntime) -> None:
    reply = requests.get(f"{product.api}/events", timeout=30)
    assert reply.status_code == 401


def test_the_invoke_api_speaks_lambdas_protocol(product: LocalRuntime) -> None:
    client = product.lambda_client()
    queued = client.invoke(FunctionName="MigrateFunction", InvocationType="Event", Payload=b"{}")
    assert queued["StatusCode"] == 202
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="NoSuchFunction", Payload=b"{}")


def test_the_aws_endpoint_answers_like_localstack(product: LocalRuntime) -> None:
    health = requests.get(f"{product.aws}/_localstack/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["services"]["ses"] == "running"
    ses = boto3.client(
        "ses", endpoint_url=product.aws, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    assert "reminders@example.com" in ses.list_identities()["Identities"]
