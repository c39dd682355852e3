"""AuthorizerFunction with real tokens from the local issuer, whose JWKS is served over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from devserver.issuer import LocalIssuer
from reminders import auth
from tests.support.lambdas import FakeLambdaContext, load_function

EVENT = json.loads((Path(__file__).parents[1] / "events" / "apigateway_token_authorizer.json").read_text())


@pytest.fixture
def issuer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIssuer]:
    holder: dict[str, LocalIssuer] = {}

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(holder["issuer"].jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/issuer"
    holder["issuer"] = LocalIssuer(tmp_path / "keys", url)
    for key, value in holder["issuer"].function_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JWKS_URL", f"http://127.0.0.1:{server.server_port}/jwks.json")
    auth.reset_cache()
    yield holder["issuer"]
    server.shutdown()
    auth.reset_cache()


def authorize(header: str | None) -> dict[str, Any]:
    event = {**EVENT, "authorizationToken": header}
    return load_function("authorizer").lambda_handler(event, FakeLambdaContext())


def effect(result: dict[str, Any]) -> str:
    [statement] = result["policyDocument"]["Statement"]
    return statement["Effect"]


def test_a_valid_token_is_allowed_with_the_callers_identity(issuer: LocalIssuer) -> None:
    result = authorize(f"Bearer {issuer.mint('Ana@Example.com')}")
    assert effect(result) == "Allow"
    assert result["principalId"] == "ana@example.com"
    assert result["context"]["email"] == "Ana@Example.com"
    # One policy for the whole API, so the cached answer serves every route.
    [statement] = result["policyDocument"]["Statement"]
    assert statement["Resource"] == ["arn:aws:execute-api:us-east-1:123456789012:example/prod/*/*"]


def forged(issuer: LocalIssuer, claims: dict[str, Any], key: Any = None, alg: str = "RS256") -> str:
    now = int(time.time())
    base = {"iss": issuer.issuer_url, "aud": issuer.audience, "sub": "ana", "iat": now, "exp": now + 600}
    header = {"alg": alg, "kid": issuer.kid}
    return jwt.encode(header, {**base, **claims}, key or issuer._key, algorithms=[alg])


@pytest.mark.parametrize(
    ("make_header", "reason"),
    [
        (lambda i: None, "missing bearer token"),
        (lambda i: "", "missing bearer token"),
        (lambda i: i.mint("ana@example.com"), "malformed Authorization header"),
        (lambda i: "Basic YW5hOnB3", "malformed Authorization header"),
        (lambda i: "Bearer ", "malformed Authorization header"),
        (lambda i: "Bearer not.a.jwt", "malformed token"),
        (lambda i: "Bearer " + "x" * 10_000, "malformed token"),
        (lambda i: f"Bearer {i.mint('ana@example.com', ttl_seconds=-120)}", "expired"),
        (lambda i: f"Bearer {forged(i, {'iss': 'https://evil.example.com'})}", "another issuer"),
        (lambda i: f"Bearer {forged(i, {'aud': 'some-other-app'})}", "another audience"),
        (lambda i: f"Bearer {forged(i, {}, key=RSAKey.generate_key(2048))}", "signature is invalid"),
        (lambda i: f"Bearer {forged(i, {}, key=OctKey.generate_key(256), alg='HS256')}", "not signed with RS256"),
        (lambda i: f"Bearer {forged(i, {'sub': None})}", "claim"),
    ],
)
def test_bad_tokens_are_denied_with_a_clear_reason(issuer: LocalIssuer, make_header: Any, reason: str) -> None:
    result = authorize(make_header(issuer))
    assert effect(result) == "Deny"
    assert reason in result["context"]["reason"]


def test_a_token_signed_by_another_issuers_key_is_denied(issuer: LocalIssuer, tmp_path: Path) -> None:
    stranger = LocalIssuer(tmp_path / "stranger", issuer.issuer_url)
    result = authorize(f"Bearer {stranger.mint('ana@example.com')}")
    assert effect(result) == "Deny"
    assert "key the issuer does not publish" in result["context"]["reason"]


def test_an_unreachable_jwks_denies_without_a_traceback(issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWKS_URL", "http://127.0.0.1:9/jwks.json")
    auth.reset_cache()
    result = authorize(f"Bearer {issuer.mint('ana@example.com')}")
    assert effect(result) == "Deny"
    assert result["context"]["reason"] == "the API cannot verify tokens right now"
