"""Users and tenancy through the local runtime's API port: the token authorizer from template.yaml
runs in front of the API, exactly as API Gateway runs it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from devserver.issuer import LocalIssuer
from tests.e2e.runtime import LocalRuntime

pytestmark = pytest.mark.e2e
ANA, BEN = "ana@example.com", "ben@example.com"


def call(runtime: LocalRuntime, method: str, path: str, token: str | None, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{runtime.api}{path}", headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def tokens(product: LocalRuntime) -> dict[str, str]:
    return {ANA: product.mint_token(ANA), BEN: product.mint_token(BEN)}


def test_another_user_gets_404_on_every_route_and_never_lists_the_event(
    product: LocalRuntime, tokens: dict[str, str]
) -> None:
    starts = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = call(product, "POST", "/events", tokens[ANA], json={"title": "Ana only", "starts_at": starts})
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["recipients"] == [ANA]  # defaulted to the caller's email
    path = f"/events/{event['id']}"

    assert call(product, "GET", path, tokens[BEN]).status_code == 404
    assert call(product, "PATCH", path, tokens[BEN], json={"title": "mine now"}).status_code == 404
    assert call(product, "DELETE", path, tokens[BEN]).status_code == 404
    assert call(product, "GET", f"{path}/notifications", tokens[BEN]).status_code == 404
    listed = call(product, "GET", "/events", tokens[BEN], params={"limit": "100"}).json()["items"]
    assert event["id"] not in {e["id"] for e in listed}

    assert call(product, "GET", path, tokens[ANA]).json() == event
    assert event["id"] in {e["id"] for e in call(product, "GET", "/events", tokens[ANA]).json()["items"]}


def _forged(issuer: LocalIssuer, key: Any = None, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": issuer.issuer_url, "aud": issuer.audience, "sub": "ana", "iat": now, "exp": now + 600, **claims}
    return jwt.encode({"alg": "RS256", "kid": issuer.kid}, payload, key or issuer._key)


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda i: None, "Bearer"),
        (lambda i: "not-a-jwt", "malformed token"),
        (lambda i: i.mint(ANA, ttl_seconds=-300), "expired"),
        (lambda i: _forged(i, key=RSAKey.generate_key(2048)), "signature"),
        (lambda i: _forged(i, iss="https://elsewhere.example.com"), "another issuer"),
        (lambda i: _forged(i, aud="another-app"), "another audience"),
    ],
)
def test_bad_tokens_get_401_with_the_reason(product: LocalRuntime, make_token: Any, reason: str) -> None:
    issuer = LocalIssuer(Path(product.data_dir) / "issuer", f"{product.api}/_local/issuer")
    for method, path in [("GET", "/events"), ("POST", "/events"), ("GET", "/events/x/notifications")]:
        response = call(product, method, path, make_token(issuer), json={} if method == "POST" else None)
        assert response.status_code == 401, (method, path, response.text)
        body = response.json()
        assert body["statusCode"] == 401 and reason in body["message"], body


def test_a_malformed_authorization_header_gets_401(product: LocalRuntime) -> None:
    response = requests.get(f"{product.api}/events", headers={"Authorization": "Basic YW5hOnB3"}, timeout=30)
    assert response.status_code == 401
    assert "Bearer" in response.json()["message"]


def test_the_documents_need_no_token(product: LocalRuntime) -> None:
    assert requests.get(f"{product.api}/openapi.json", timeout=30).status_code == 200
    assert requests.get(f"{product.api}/swagger", timeout=30).status_code == 200
