"""After a deploy, prove the stack works end to end, then clean up what the proof created.

    make smoke URL=https://abc123.execute-api.eu-west-1.amazonaws.com/prod

It finds the stack that owns the API (CloudFormation knows which stack a resource belongs to),
creates a user in the stack's Cognito pool and signs in, creates an event whose reminder is due
within a minute, addressed to success@simulator.amazonses.com (SES's mailbox simulator: accepted
and delivered, in the sandbox too, to nobody), waits until its notification is `sent`, then
deletes the event and the user. It uses your AWS credentials, as `sam deploy` does.

With JwtIssuer set (no user pool), pass a token of yours instead: --token (or TOKEN=... make smoke).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

RECIPIENT = "success@simulator.amazonses.com"
API_URL = re.compile(
    r"^https://(?P<api_id>[a-z0-9]+)\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<stage>[^/]+)/?$"
)


class SmokeFailed(Exception):
    """The stack did not do what it should; the message says where."""


def say(step: str, detail: str = "") -> None:
    print(f"smoke: {step}{': ' + detail if detail else ''}", flush=True)


def stack_outputs(api_url: str) -> tuple[str, dict[str, str]]:
    """The region and the outputs of the stack that owns the API behind ``api_url``."""
    import boto3

    match = API_URL.match(api_url)
    if not match:
        raise SmokeFailed(
            f"{api_url} is not an API Gateway URL (https://<id>.execute-api.<region>.amazonaws.com/<stage>)"
        )
    region = match["region"]
    cloudformation = boto3.client("cloudformation", region_name=region)
    owners = cloudformation.describe_stack_resources(PhysicalResourceId=match["api_id"])["StackResources"]
    if not owners:
        raise SmokeFailed(f"no CloudFormation stack in {region} owns API {match['api_id']}")
    (stack,) = cloudformation.describe_stacks(StackName=owners[0]["StackName"])["Stacks"]
    return region, {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@contextlib.contextmanager
def pool_user(region: str, outputs: dict[str, str]) -> Iterator[str]:
    """A new user in the stack's pool, signed in: yields its ID token; deletes the user afterwards."""
    import boto3

    if "UserPoolId" not in outputs:
        raise SmokeFailed("the stack has no user pool (JwtIssuer is set): pass --token from your issuer")
    cognito = boto3.client("cognito-idp", region_name=region)
    pool, client = outputs["UserPoolId"], outputs["UserPoolClientId"]
    email = f"smoke-{uuid.uuid4().hex[:12]}@example.com"
    # Meets the pool's policy: 12+ characters with lower, upper case and digits.
    password = f"Smoke-{secrets.token_urlsafe(18)}-a1B"
    cognito.admin_create_user(
        UserPoolId=pool,
        Username=email,
        UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
        MessageAction="SUPPRESS",
    )
    try:
        cognito.admin_set_user_password(UserPoolId=pool, Username=email, Password=password, Permanent=True)
        tokens = cognito.initiate_auth(
            ClientId=client,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": password},
        )["AuthenticationResult"]
        say("signed in", f"{email} (user pool {pool})")
        yield str(tokens["IdToken"])
    finally:
        cognito.admin_delete_user(UserPoolId=pool, Username=email)
        say("deleted the user", email)


def remind_and_wait(
    api: str, token: str, *, timeout: float, lead_seconds: int = 60, poll: Callable[[], None] = lambda: None
) -> dict[str, Any]:
    """Create an event whose reminder is due in ``lead_seconds``, wait for it to be sent, delete the event.

    ``poll`` runs between checks (tests use it to run the notifier instead of waiting for its schedule).
    """
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead_seconds + 60)
    reply = session.post(
        f"{api}/events",
        json={
            "title": f"Smoke test {starts:%H:%M}",
            "starts_at": starts.isoformat().replace("+00:00", "Z"),
            "recipients": [RECIPIENT],
            "reminders": [{"minutes_before": 1}],
        },
        timeout=30,
    )
    if reply.status_code != 201:
        raise SmokeFailed(f"POST /events answered {reply.status_code}: {reply.text[:300]}")
    event_id = reply.json()["id"]
    say("created an event", f"{event_id}, reminder due {starts - timedelta(minutes=1):%H:%M:%S}Z to {RECIPIENT}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            poll()
            reply = session.get(f"{api}/events/{event_id}/notifications", timeout=30)
            if reply.status_code != 200:
                answer = f"{reply.status_code}: {reply.text[:300]}"
                raise SmokeFailed(f"GET /events/{event_id}/notifications answered {answer}")
            (notification,) = reply.json()["items"]
            if notification["status"] == "sent":
                say("reminder sent", f"SES message id {notification['message_id']}")
                return dict(notification)
            if notification["status"] not in ("pending", "sending"):
                raise SmokeFailed(f"the reminder ended {notification['status']}: {notification.get('last_error')}")
            if time.monotonic() > deadline:
                raise SmokeFailed(
                    f"the reminder was still {notification['status']} after {timeout:.0f} s "
                    f"(attempts {notification['attempts']}, last error {notification.get('last_error')}); "
                    "is the notifier running? see NotifierFunction's log"
                )
            time.sleep(5)
    finally:
        reply = session.delete(f"{api}/events/{event_id}", timeout=30)
        say("deleted the event", f"{event_id} ({reply.status_code})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("URL"), help="the stack's ApiUrl output")
    parser.add_argument("--token", default=os.environ.get("TOKEN"), help="a bearer token (skips the user pool)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the reminder (default 300)")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("give the stack's ApiUrl: make smoke URL=https://...")
    api = args.url.rstrip("/")
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            token = args.token
            if not token:
                region, outputs = stack_outputs(api)
                token = stack.enter_context(pool_user(region, outputs))
            remind_and_wait(api, token, timeout=args.timeout)
    except SmokeFailed as exc:
        say("FAILED", str(exc))
        return 1
    except Exception as exc:  # AWS or network errors: one line, not a traceback
        say("FAILED", f"{type(exc).__name__}: {exc}")
        return 1
    say("passed", f"in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
