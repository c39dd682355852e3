"""One-click unsubscribe and the suppression routes, end to end in one process: the notifier
signs the link into a real email (moto's SES), ApiFunction's handler serves it without a bearer
token, and the next reminder from that owner is suppressed while other owners' still go out."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from reminders import db, suppressions
from reminders.models import SuppressionReason
from reminders.unsubscribe import make_token
from tests.support import aws
from tests.support.apigw import ApiResponse, rest_event
from tests.support.lambdas import FakeLambdaContext, load_function
from tests.support.notifier import OWNER, Outbox, create_event, reset_send_rate, rows, run

KEY = "u" * 40
OLD_KEY = "p" * 40
BASE = "https://abc123.execute-api.us-east-1.amazonaws.com/dev"
ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def outbox(aws_env: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Outbox:
    monkeypatch.setenv("UNSUBSCRIBE_KEYS", f"{KEY},{OLD_KEY}")
    reset_send_rate(engine)
    return Outbox(aws_env)


def api(method: str, path: str, **kwargs: Any) -> ApiResponse:
    handler = load_function("api").lambda_handler
    return ApiResponse(handler(rest_event(method, path, **kwargs), FakeLambdaContext()))


def send(engine: Engine, outbox: Outbox, now: datetime, recipient: str) -> dict[str, Any]:
    """Create an event of OWNER due now, run the notifier, return the email it sent."""
    create_event(engine, now, recipients=[recipient], starts_at=(now + timedelta(minutes=3)).isoformat())
    before = len(outbox.emails())
    run(engine, outbox.endpoint, now, public_api_url=BASE, unsubscribe_keys=f"{KEY},{OLD_KEY}")
    [message] = outbox.emails()[before:]
    return message


def test_one_click_unsubscribe_from_a_real_reminder(engine: Engine, outbox: Outbox, now: datetime) -> None:
    # Given a reminder as the recipient got it
    message = send(engine, outbox, now, "ana@example.com")
    parsed = aws.mime(message)
    url = parsed["List-Unsubscribe"].strip("<>")
    assert url.startswith(f"{BASE}/unsubscribe/")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert url in message["Body"]["text_part"] and url in message["Body"]["html_part"]
    path = url.removeprefix(BASE)

    # When a mail scanner follows the link, nothing changes; the page has a button that POSTs
    page = api("GET", path, as_user=None, headers={"Accept": "text/html"})
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in page.text and "ana@example.com" in page.text
    with db.session_scope(engine) as session:
        assert suppressions.list_for_owner(session, OWNER) == []

    # When the mail client POSTs exactly what RFC 8058 says, with no bearer token
    done = api("POST", path, as_user=None, raw_body="List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert done.status == 200, done
    assert done.json()["unsubscribed"] is True
    # And again (a second click, a retried POST) is the same answer
    assert api("POST", path, as_user=None, raw_body="List-Unsubscribe=One-Click", headers=ONE_CLICK).status == 200

    # Then the owner sees the address suppressed, and the next reminder to it is not sent
    listed = api("GET", "/suppressions", as_user=OWNER).json()["items"]
    assert [(s["email"], s["reason"]) for s in listed] == [("ana@example.com", "unsubscribe")]
    later = create_event(
        engine, now, recipients=["ana@example.com"], starts_at=(now + timedelta(minutes=3)).isoformat()
    )
    before = len(outbox.emails())
    run(engine, outbox.endpoint, now, public_api_url=BASE, unsubscribe_keys=KEY)
    assert rows(engine, later)[0].status == "suppressed"
    assert outbox.emails()[before:] == []

    # And another owner's reminders still reach the address
    other = api(
        "POST",
        "/events",
        as_user="ben@example.com",
        body={
            "title": "Ben's",
            "recipients": ["ana@example.com"],
            "starts_at": (now + timedelta(minutes=3)).isoformat(),
        },
    ).json()
    run(engine, outbox.endpoint, now, public_api_url=BASE, unsubscribe_keys=KEY)
    assert [r.status for r in rows(engine) if str(r.event_id) == other["id"]] == ["sent"]

    # And the owner can lift it: 204, then 404
    assert api("DELETE", "/suppressions/ana%40example.com", as_user=OWNER).status == 204
    assert api("DELETE", "/suppressions/ana@example.com", as_user=OWNER).status == 404
    assert api("GET", "/suppressions", as_user=OWNER).json() == {"items": []}


def test_a_browser_post_gets_a_page(engine: Engine, outbox: Outbox) -> None:
    token = make_token(KEY.encode(), OWNER, "ana@example.com")
    done = api(
        "POST",
        f"/unsubscribe/{token}",
        as_user=None,
        raw_body="List-Unsubscribe=One-Click",
        headers={**ONE_CLICK, "Accept": "text/html,application/xhtml+xml"},
    )
    assert done.status == 200 and "Unsubscribed" in done.text


def test_a_link_signed_with_the_previous_key_still_works(engine: Engine, outbox: Outbox) -> None:
    token = make_token(OLD_KEY.encode(), OWNER, "ana@example.com")
    assert api("POST", f"/unsubscribe/{token}", as_user=None, raw_body="List-Unsubscribe=One-Click").status == 200


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_forged_truncated_or_re_signed_tokens_are_404(engine: Engine, outbox: Outbox, method: str) -> None:
    genuine = make_token(KEY.encode(), OWNER, "ana@example.com")
    payload, mac = genuine.split(".")
    someone_else = make_token(KEY.encode(), "mallory", "ana@example.com").split(".")[0]
    for token in [
        genuine[:-1],
        genuine[:20],
        f"{payload}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        f"{someone_else}.{mac}",
        make_token(b"z" * 32, OWNER, "ana@example.com"),
        "nonsense",
        "%00",
        "a.b.c",
    ]:
        response = api(method, f"/unsubscribe/{token}", as_user=None, raw_body="List-Unsubscribe=One-Click")
        assert response.status == 404, (token, response)
        assert response.json()["message"] == "unknown unsubscribe link"
    assert api(method, "/unsubscribe/" + "A" * 5000, as_user=None).status == 422
    with db.session_scope(engine) as session:
        assert suppressions.list_for_owner(session, OWNER) == []


def test_suppressions_list_bounces_of_the_callers_recipients_only(
    engine: Engine, outbox: Outbox, now: datetime
) -> None:
    create_event(engine, now, recipients=["Gone@example.com"], starts_at=(now + timedelta(hours=3)).isoformat())
    with db.session_scope(engine) as session:
        suppressions.suppress_everywhere(session, "gone@example.com", SuppressionReason.BOUNCE, now)
        suppressions.suppress_everywhere(session, "stranger@example.com", SuppressionReason.COMPLAINT, now)

    listed = api("GET", "/suppressions", as_user=OWNER).json()["items"]

    assert [(s["email"], s["reason"]) for s in listed] == [("gone@example.com", "bounce")]
    # A bounce is not the caller's to lift
    assert api("DELETE", "/suppressions/gone@example.com", as_user=OWNER).status == 404
    assert api("GET", "/suppressions", as_user="ben@example.com").json() == {"items": []}


@pytest.mark.parametrize("email", ["not-an-email", "a b@example.com", "x@y", "ana%00%40example.com"])
def test_a_malformed_address_is_422(engine: Engine, outbox: Outbox, email: str) -> None:
    response = api("DELETE", f"/suppressions/{email}", as_user=OWNER)
    assert response.status == 422, response


def test_suppression_routes_need_a_bearer_token(engine: Engine, outbox: Outbox) -> None:
    assert api("GET", "/suppressions", as_user=None).status == 401
    assert api("DELETE", "/suppressions/ana@example.com", as_user=None).status == 401


def test_keys_from_secrets_manager_survive_a_rotation(
    engine: Engine, outbox: Outbox, monkeypatch: pytest.MonkeyPatch, now: datetime
) -> None:
    # Given the key in Secrets Manager (as the template creates it), not in the environment
    import boto3

    from reminders import unsubscribe
    from reminders.settings import api_settings

    secrets = boto3.client("secretsmanager", endpoint_url=outbox.endpoint, region_name="us-east-1")
    name = f"unsubscribe-key-{now.timestamp():.0f}-{id(secrets)}"
    arn = secrets.create_secret(Name=name, SecretString="first-key-" + "a" * 40)["ARN"]
    monkeypatch.delenv("UNSUBSCRIBE_KEYS")
    monkeypatch.setenv("UNSUBSCRIBE_KEY_SECRET_ARN", arn)
    api_settings.cache_clear()
    unsubscribe.forget_cached_keys()

    # And a reminder the notifier signed with its current version
    create_event(engine, now, recipients=["ana@example.com"], starts_at=(now + timedelta(minutes=3)).isoformat())
    before = len(outbox.emails())
    run(engine, outbox.endpoint, now, public_api_url=BASE, unsubscribe_key_secret_arn=arn)
    [message] = outbox.emails()[before:]
    path = aws.mime(message)["List-Unsubscribe"].strip("<>").removeprefix(BASE)

    # When the key is rotated (put-secret-value: the old value becomes AWSPREVIOUS)
    secrets.put_secret_value(SecretId=arn, SecretString="second-key-" + "b" * 40)
    unsubscribe.forget_cached_keys()
    assert unsubscribe.load_keys(keys=None, secret_arn=arn, endpoint_url=outbox.endpoint) == [
        ("second-key-" + "b" * 40).encode(),
        ("first-key-" + "a" * 40).encode(),
    ]

    # Then the link already sent still unsubscribes, and new links are signed with the new key
    assert api("POST", path, as_user=None, raw_body="List-Unsubscribe=One-Click").status == 200
    new_token = unsubscribe.make_token(b"second-key-" + b"b" * 40, OWNER, "ben@example.com")
    assert api("GET", f"/unsubscribe/{new_token}", as_user=None).status == 200
    # And after a second rotation the first key's links are refused
    secrets.put_secret_value(SecretId=arn, SecretString="third-key-" + "c" * 40)
    unsubscribe.forget_cached_keys()
    assert api("GET", path, as_user=None).status == 404
    api_settings.cache_clear()
    unsubscribe.forget_cached_keys()
