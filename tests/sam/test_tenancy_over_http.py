"""Users and tenancy through a Docker-backed runtime's API: the same assertions as make run's
(tests/e2e/test_tenancy_over_http.py), with the template's TOKEN authorizer in front of the API.

Every refused token is a 401 on every runtime. Where the runtime renders the template's gateway
responses (API Gateway, make run), the body is CONTRACT.md's error shape with the reason. LocalStack
4.14 applies only their status codes, with its own body (the reason in "Message" for a denied token);
SAM's emulator ignores them: there a missing header gets SAM's own 401 body, and a refused token
ApiFunction's 401 (functions/authorizer/app.py says why).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from devserver.issuer import LocalIssuer
from tests.sam.conftest import ANA, BEN, ContractApi


def call(api: ContractApi, method: str, path: str, token: str | None, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return api.call(method, path, auth=False, headers=headers, **kwargs)


def starts() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()


def test_another_user_gets_404_on_every_route_and_never_lists_the_event(contract_api: ContractApi) -> None:
    ana, ben = contract_api.tokens[ANA], contract_api.tokens[BEN]
    created = call(contract_api, "POST", "/events", ana, json={"title": "Ana only", "starts_at": starts()})
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["recipients"] == [ANA]  # defaulted to the caller's email
    path = f"/events/{event['id']}"

    assert call(contract_api, "GET", path, ben).status_code == 404
    assert call(contract_api, "PATCH", path, ben, json={"title": "mine now"}).status_code == 404
    assert call(contract_api, "DELETE", path, ben).status_code == 404
    assert call(contract_api, "GET", f"{path}/notifications", ben).status_code == 404
    listed = call(contract_api, "GET", "/events", ben, params={"limit": "100"}).json()["items"]
    assert event["id"] not in {e["id"] for e in listed}

    assert call(contract_api, "GET", path, ana).json() == event
    assert event["id"] in {e["id"] for e in call(contract_api, "GET", "/events", ana).json()["items"]}


def _forged(issuer: LocalIssuer, key: Any = None, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": issuer.issuer_url, "aud": issuer.audience, "sub": "ana", "iat": now, "exp": now + 600, **claims}
    return jwt.encode({"alg": "RS256", "kid": issuer.kid}, payload, key or issuer._key)


def _stranger(issuer: LocalIssuer, tmp: Path) -> str:
    """A well-formed token for the same issuer URL, signed by a key that issuer does not publish."""
    return LocalIssuer(tmp / "stranger", issuer.issuer_url).mint(ANA)


BAD_TOKENS: list[tuple[str, Callable[[LocalIssuer, Path], str | None], str]] = [
    ("no header", lambda i, t: None, "Bearer"),
    ("not a JWT", lambda i, t: "not-a-jwt", "malformed token"),
    ("expired", lambda i, t: i.mint(ANA, ttl_seconds=-300), "expired"),
    ("bad signature", lambda i, t: _forged(i, key=RSAKey.generate_key(2048)), "signature"),
    ("unknown key", _stranger, "key the issuer does not publish"),
    ("another issuer", lambda i, t: _forged(i, iss="https://elsewhere.example.com"), "another issuer"),
    ("another audience", lambda i, t: _forged(i, aud="another-app"), "another audience"),
]


@pytest.mark.parametrize(
    ("make_token", "reason"), [(m, r) for _, m, r in BAD_TOKENS], ids=[n for n, _, _ in BAD_TOKENS]
)
def test_bad_tokens_get_401(contract_api: ContractApi, make_token: Any, reason: str, tmp_path: Path) -> None:
    token = make_token(contract_api.issuer, tmp_path)
    # A valid body and an invalid one: a refused caller gets 401 before any body is read.
    valid = {"title": "x", "starts_at": starts()}
    invalid = {"title": "", "starts_at": 5}
    for method, path, body in [
        ("GET", "/events", None),
        ("POST", "/events", valid),
        ("POST", "/events", invalid),
        ("GET", "/events/x/notifications", None),
    ]:
        response = call(contract_api, method, path, token, json=body)
        assert response.status_code == 401, (contract_api.runtime, method, path, response.text)
        body = response.json()
        if contract_api.gateway_responses == "templates":
            assert body["statusCode"] == 401 and reason in body["message"], body
        elif token is None:
            assert body == {"message": "Unauthorized"}  # SAM's and LocalStack's own body for a missing header
        elif contract_api.gateway_responses == "status":
            assert reason in body["Message"], body  # LocalStack's ACCESS_DENIED body carries the message
        else:
            # SAM: ApiFunction's 401 for the anonymous caller the authorizer let through.
            assert body["statusCode"] == 401 and body["message"], body


def test_a_malformed_authorization_header_gets_401(contract_api: ContractApi) -> None:
    response = contract_api.call("GET", "/events", auth=False, headers={"Authorization": "Basic YW5hOnB3"})
    assert response.status_code == 401, response.text
    body = response.json()
    assert "Bearer" in (body["Message"] if contract_api.gateway_responses == "status" else body["message"]), body


def test_the_documents_need_no_token(contract_api: ContractApi) -> None:
    assert contract_api.call("GET", "/openapi.json", auth=False).status_code == 200
    assert contract_api.call("GET", "/swagger", auth=False).status_code == 200
