"""The dashboard's files, the local issuer's sign-in (code flow with PKCE) and the local inbox,
over HTTP against `make run`'s runtime (the browser tests in tests/browser drive the same pages)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.e2e.runtime import LocalRuntime

pytestmark = pytest.mark.e2e
SCHEDULED_EVENT = Path(__file__).resolve().parents[1] / "events" / "eventbridge_scheduled.json"


class Labels(HTMLParser):
    """The text of every <label> and <button>, and which control each label is for."""

    def __init__(self) -> None:
        super().__init__()
        self.labels: dict[str, str] = {}
        self.buttons: list[str] = []
        self.ids: set[str] = set()
        self._open: tuple[str, str] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        if tag in ("label", "button"):
            self._open, self._text = (tag, str(found.get("for") or "")), ""

    def handle_data(self, data: str) -> None:
        self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[0] == tag:
            if tag == "label":
                self.labels[self._text.strip()] = self._open[1]
            else:
                self.buttons.append(self._text.strip())
            self._open = None


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorize_params(product: LocalRuntime, verifier: str, **overrides: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": "event-reminders",
        "redirect_uri": f"{product.api}/",
        "state": "s-123",
        "code_challenge": challenge_of(verifier),
        "code_challenge_method": "S256",
        **overrides,
    }


def sign_in(product: LocalRuntime, email: str, verifier: str) -> str:
    """The code the issuer sends the browser back with."""
    reply = requests.post(
        f"{product.api}/_local/issuer/authorize",
        data={**authorize_params(product, verifier), "email": email},
        allow_redirects=False,
        timeout=30,
    )
    assert reply.status_code == 302, reply.text
    location = urlsplit(reply.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{product.api}/"
    query = parse_qs(location.query)
    assert query["state"] == ["s-123"]
    return query["code"][0]


def exchange(product: LocalRuntime, code: str, verifier: str) -> requests.Response:
    return requests.post(
        f"{product.api}/_local/issuer/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": f"{product.api}/",
            "client_id": "event-reminders",
            "code_verifier": verifier,
        },
        timeout=30,
    )


def test_the_dashboard_page_has_every_control_contract_md_names_each_with_a_label(product: LocalRuntime) -> None:
    reply = requests.get(f"{product.api}/", timeout=30)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
    page = Labels()
    page.feed(reply.text)
    for label in ("Title", "Starts at", "Time zone", "Recipients", "Reminders", "Repeats"):
        assert label in page.labels, label
        assert page.labels[label] in page.ids, f"label {label!r} is for no control"
    assert "Create event" in page.buttons and "Sign in" in page.buttons
    # Its scripts and styles come from the same function, under the API's base path
    for asset in re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css))"', reply.text):
        assert requests.get(f"{product.api}{asset}", timeout=30).status_code == 200, asset
    assert requests.get(f"{product.api}/dashboard/nothing.js", timeout=30).status_code == 404


def test_the_dashboard_config_names_the_local_issuers_endpoints(product: LocalRuntime) -> None:
    config = requests.get(f"{product.api}/dashboard/config.json", timeout=30).json()
    assert config == {
        "authorize_url": f"{product.api}/_local/issuer/authorize",
        "token_url": f"{product.api}/_local/issuer/token",
        "logout_url": "",
        "client_id": "event-reminders",
        "scope": "openid email",
    }
    discovery = requests.get(f"{product.api}/_local/issuer/.well-known/openid-configuration", timeout=30).json()
    assert discovery["authorization_endpoint"] == config["authorize_url"]
    assert discovery["token_endpoint"] == config["token_url"]
    assert discovery["code_challenge_methods_supported"] == ["S256"]


def test_signing_in_with_pkce_gives_a_token_the_api_accepts(product: LocalRuntime) -> None:
    # Given the sign-in page, which asks for an email and nothing else
    verifier = secrets.token_urlsafe(48)
    page = requests.get(
        f"{product.api}/_local/issuer/authorize", params=authorize_params(product, verifier), timeout=30
    )
    assert page.status_code == 200
    form = Labels()
    form.feed(page.text)
    assert list(form.labels) == ["Email"] and form.labels["Email"] == "email"
    # When an email is given and the code traded with its verifier
    code = sign_in(product, "pkce@example.com", verifier)
    reply = exchange(product, code, verifier)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    # Then the API knows the caller by that email
    auth = {"Authorization": f"Bearer {body['id_token']}"}
    created = requests.post(
        f"{product.api}/events",
        json={"title": "Signed in", "starts_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
        headers=auth,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    assert created.json()["recipients"] == ["pkce@example.com"]
    # and the code cannot be used twice
    assert exchange(product, code, verifier).json()["error"] == "invalid_grant"


def test_a_wrong_verifier_or_a_foreign_redirect_gets_no_token(product: LocalRuntime) -> None:
    verifier = secrets.token_urlsafe(48)
    code = sign_in(product, "ana@example.com", verifier)
    wrong = exchange(product, code, secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # The code was spent by the failed attempt too
    assert exchange(product, code, verifier).status_code == 400
    for overrides in (
        {"redirect_uri": "https://evil.example.com/"},
        {"code_challenge_method": "plain"},
        {"client_id": "someone-else"},
    ):
        refused = requests.get(
            f"{product.api}/_local/issuer/authorize",
            params=authorize_params(product, verifier, **overrides),
            timeout=30,
        )
        assert refused.status_code == 400, overrides
    not_an_email = requests.post(
        f"{product.api}/_local/issuer/authorize",
        data={**authorize_params(product, verifier), "email": "nobody"},
        allow_redirects=False,
        timeout=30,
    )
    assert not_an_email.status_code == 400 and "Enter an email address" in not_an_email.text


def test_the_inbox_lists_sent_emails_newest_first_and_opens_each(product: LocalRuntime) -> None:
    # Given two reminders sent one after the other
    auth = {"Authorization": f"Bearer {product.mint_token('inbox@example.com')}"}
    for title in ("Inbox first", "Inbox second"):
        starts_at = (datetime.now(UTC) + timedelta(minutes=3)).isoformat()
        event = {"title": title, "starts_at": starts_at, "recipients": ["inbox-reader@example.com"]}
        assert requests.post(f"{product.api}/events", json=event, headers=auth, timeout=30).status_code == 201
        scheduled = json.loads(SCHEDULED_EVENT.read_text())
        scheduled["version"] = "0"
        scheduled["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        product.lambda_client().invoke(FunctionName="NotifierFunction", Payload=json.dumps(scheduled).encode())
        # (this run sent it, or the runtime's own schedule did, which may still be sending)
        for _ in range(60):
            if f"Reminder: {title}" in requests.get(f"{product.api}/_local/inbox", timeout=30).text:
                break
            time.sleep(0.5)
    # When the inbox page is opened, the newer one comes first
    listing = requests.get(f"{product.api}/_local/inbox", timeout=30)
    assert listing.status_code == 200 and listing.headers["Content-Type"].startswith("text/html")
    assert listing.text.index("Inbox second") < listing.text.index("Inbox first")
    # and one opened shows headers, both bodies and a downloadable .ics
    message_id = re.search(r'href="/_local/inbox/([^"]+)">Reminder: Inbox second', listing.text)
    assert message_id, listing.text[:2000]
    opened = requests.get(f"{product.api}/_local/inbox/{message_id.group(1)}", timeout=30)
    assert opened.status_code == 200
    for section in ("Headers", "HTML body", "Text body", "Attachments"):
        assert f"<h2>{section}</h2>" in opened.text, section
    ics = requests.get(f"{product.api}/_local/inbox/{message_id.group(1)}/parts/0", timeout=30)
    assert ics.headers["Content-Disposition"] == 'attachment; filename="event.ics"'
    assert ics.content.startswith(b"BEGIN:VCALENDAR")
    html_body = requests.get(f"{product.api}/_local/inbox/{message_id.group(1)}/html", timeout=30)
    assert "sandbox" in html_body.headers["Content-Security-Policy"] and "Inbox second" in html_body.text
    raw = requests.get(f"{product.api}/_local/inbox/{message_id.group(1)}/raw", timeout=30)
    assert raw.headers["Content-Type"] == "message/rfc822" and b"Subject: Reminder: Inbox second" in raw.content
    assert requests.get(f"{product.api}/_local/inbox/no-such-id", timeout=30).status_code == 404
    # /_aws/ses, for programs, is as it was: LocalStack's JSON shape
    assert "messages" in requests.get(f"{product.aws}/_aws/ses", timeout=30).json()
