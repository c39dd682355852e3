"""The local issuer's sign-in: OAuth 2 authorization code with PKCE (RFC 6749, RFC 7636), as
Cognito's managed login speaks it, so the dashboard signs in the same way locally and on AWS.

    GET  /_local/issuer/authorize   a page that asks only for an email
    POST /_local/issuer/authorize   redirects back to the client with ?code=...&state=...
    POST /_local/issuer/token       the code and its verifier for an ID token (JSON)

There are no passwords: whoever can reach the local runtime may be anyone, as with `make token`.
Codes live in memory for a minute and work once; the redirect must go back to the runtime's own
API origin (any host name the browser used for it).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from devserver.issuer import LocalIssuer

Reply = tuple[int, list[tuple[str, str]], bytes]
CODE_TTL_SECONDS = 60
TOKEN_TTL_SECONDS = 3600
MAX_PENDING_CODES = 1000
# What the dashboard asks for; Cognito's managed login uses the same names.
SCOPE = "openid email"


def sign_in_env(issuer_url: str, client_id: str) -> dict[str, str]:
    """What the dashboard's config endpoint tells the page about this issuer."""
    issuer_url = issuer_url.rstrip("/")
    return {
        "SIGN_IN_AUTHORIZE_URL": f"{issuer_url}/authorize",
        "SIGN_IN_TOKEN_URL": f"{issuer_url}/token",
        "SIGN_IN_LOGOUT_URL": "",
        "SIGN_IN_CLIENT_ID": client_id,
        "SIGN_IN_CLIENT_ID_PARAMETER": "",  # the template's SSM parameter is Cognito's client, on AWS
        "SIGN_IN_SCOPE": SCOPE,
    }


@dataclass(frozen=True)
class PendingCode:
    email: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    expires: float


class SignIn:
    """The /authorize and /token endpoints under the issuer's path on the API port."""

    def __init__(self, issuer: LocalIssuer, api_port: int) -> None:
        self.issuer = issuer
        self.prefix = urlsplit(issuer.issuer_url).path.rstrip("/")
        self.api_port = api_port
        self._codes: dict[str, PendingCode] = {}
        self._lock = threading.Lock()

    def handle(self, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes) -> Reply | None:
        if path == f"{self.prefix}/authorize":
            if method == "GET":
                return self._authorize_page(dict(parse_qsl(query)))
            if method == "POST":
                return self._authorize(_form(body))
            return _error_page(405, "Use GET or POST.")
        if path == f"{self.prefix}/token":
            if method == "OPTIONS":  # a page on another host name of this runtime (localhost vs 127.0.0.1)
                return 204, [*_CORS, ("Access-Control-Allow-Headers", "Content-Type")], b""
            if method == "POST":
                return self._token(_form(body))
            return _token_error(405, "invalid_request", "POST the code here")
        return None

    def _check_client(self, params: dict[str, str]) -> str | None:
        """Why the request cannot go back to its client, or None."""
        if params.get("response_type") != "code":
            return "response_type must be 'code'"
        if params.get("client_id") != self.issuer.audience:
            return f"unknown client_id (this issuer knows {self.issuer.audience!r})"
        redirect = urlsplit(params.get("redirect_uri", ""))
        if redirect.scheme not in ("http", "https") or redirect.port != self.api_port:
            return "redirect_uri must be a page of this runtime's API"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "PKCE is required: code_challenge with code_challenge_method=S256"
        return None

    def _authorize_page(self, params: dict[str, str], problem: str | None = None, email: str = "") -> Reply:
        refused = self._check_client(params)
        if refused:
            return _error_page(400, refused)
        hidden = "\n".join(
            f'<input type="hidden" name="{name}" value="{html.escape(params.get(name, ""))}">'
            for name in (
                "response_type",
                "client_id",
                "redirect_uri",
                "state",
                "code_challenge",
                "code_challenge_method",
            )
        )
        message = f'<p id="email-error" class="error" role="alert">{html.escape(problem)}</p>' if problem else ""
        described = ' aria-describedby="email-error" aria-invalid="true"' if problem else ""
        page = _PAGE.format(
            title="Sign in",
            body=f"""<h1>Sign in to Event reminders</h1>
<p>The local issuer: any email address signs in (no password). On AWS this is the Cognito login.</p>
<form method="post" action="{self.prefix}/authorize">
{hidden}
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="email" required autofocus
 value="{html.escape(email)}"{described}>
{message}
<button type="submit">Sign in</button>
</form>""",
        )
        return 400 if problem else 200, _HTML, page.encode()

    def _authorize(self, form: dict[str, str]) -> Reply:
        refused = self._check_client(form)
        if refused:
            return _error_page(400, refused)
        email = form.get("email", "").strip()
        local, _, domain = email.partition("@")
        if not local or "." not in domain or any(c.isspace() for c in email) or len(email) > 254:
            return self._authorize_page(form, "Enter an email address, like ana@example.com.", email)
        code = secrets.token_urlsafe(32)
        pending = PendingCode(
            email=email,
            client_id=form["client_id"],
            redirect_uri=form["redirect_uri"],
            code_challenge=form["code_challenge"],
            expires=time.monotonic() + CODE_TTL_SECONDS,
        )
        with self._lock:
            now = time.monotonic()
            self._codes = {k: v for k, v in self._codes.items() if v.expires > now}
            if len(self._codes) >= MAX_PENDING_CODES:
                return _error_page(503, "Too many sign-ins in progress; try again in a minute.")
            self._codes[code] = pending
        answer = {"code": code, **({"state": form["state"]} if form.get("state") else {})}
        separator = "&" if urlsplit(form["redirect_uri"]).query else "?"
        location = f"{form['redirect_uri']}{separator}{urlencode(answer)}"
        return 302, [("Location", location), ("Cache-Control", "no-store")], b""

    def _token(self, form: dict[str, str]) -> Reply:
        if form.get("grant_type") != "authorization_code":
            return _token_error(400, "unsupported_grant_type", "only authorization_code")
        with self._lock:
            pending = self._codes.pop(form.get("code", ""), None)  # a code works once
        if pending is None or pending.expires < time.monotonic():
            return _token_error(400, "invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != pending.redirect_uri or form.get("client_id") != pending.client_id:
            return _token_error(400, "invalid_grant", "redirect_uri or client_id differs from the authorization's")
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != pending.code_challenge:
            return _token_error(400, "invalid_grant", "code_verifier does not match the code_challenge")
        token = self.issuer.mint(pending.email, ttl_seconds=TOKEN_TTL_SECONDS)
        body = {
            "id_token": token,
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL_SECONDS,
        }
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store"), *_CORS]
        return 200, headers, json.dumps(body).encode()


_CORS = [("Access-Control-Allow-Origin", "*")]
_HTML = [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="icon" href="data:,">
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 28rem; margin: 4rem auto; padding: 0 1rem; color: #1d2330; }}
label {{ display: block; font-weight: 600; margin-top: 1rem; }}
input[type=email] {{ width: 100%; padding: .5rem; font: inherit; box-sizing: border-box; }}
button {{ margin-top: 1rem; padding: .5rem 1.25rem; font: inherit; background: #1f5fbf; color: #fff; border: 0;
  border-radius: 4px; cursor: pointer; }}
button:focus-visible, input:focus-visible {{ outline: 3px solid #f2a900; outline-offset: 2px; }}
.error {{ color: #a4161a; }}
</style></head>
<body><main>
{body}
</main></body></html>
"""


def _form(body: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return {}


def _error_page(status: int, message: str) -> Reply:
    page = _PAGE.format(
        title="Sign-in error", body=f'<h1>Cannot sign in</h1><p role="alert">{html.escape(message)}</p>'
    )
    return status, _HTML, page.encode()


def _token_error(status: int, error: str, description: str) -> Reply:
    body = json.dumps({"error": error, "error_description": description}).encode()
    return status, [("Content-Type", "application/json"), ("Cache-Control", "no-store"), *_CORS], body
