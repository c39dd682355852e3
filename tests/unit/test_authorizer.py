"""AuthorizerFunction with real tokens from the local issuer, whose JWKS is served over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from devserver.issuer import LocalIssuer
from reminders import auth
from tests.support.jwks import JwksServer, served_issuer
from tests.support.lambdas import FakeLambdaContext, load_function

EVENT = json.loads((Path(__file__).parents[1] / "events" / "apigateway_token_authorizer.json").read_text())


SERVERS: dict[int, JwksServer] = {}  # id(issuer) -> its JWKS endpoint's state


@pytest.fixture
def issuer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIssuer]:
    """A local issuer whose JWKS is served over HTTP (other test modules import this fixture alone)."""
    with served_issuer(tmp_path / "keys", monkeypatch) as (served, state):
        SERVERS[id(served)] = state
        yield served
        del SERVERS[id(served)]


@pytest.fixture
def jwks_server(issuer: LocalIssuer) -> JwksServer:
    return SERVERS[id(issuer)]


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


def signed_with_unknown_kid(issuer: LocalIssuer) -> str:
    """A well-formed token naming a key id the issuer never published (a random one each time)."""
    now = int(time.time())
    claims = {"iss": issuer.issuer_url, "aud": issuer.audience, "sub": "ana", "iat": now, "exp": now + 600}
    return jwt.encode({"alg": "RS256", "kid": uuid.uuid4().hex}, claims, issuer._key)


def test_tokens_with_random_key_ids_do_not_each_fetch_the_jwks(issuer: LocalIssuer, jwks_server: JwksServer) -> None:
    # Given a warm authorizer that has the issuer's keys
    assert effect(authorize(f"Bearer {issuer.mint('ana@example.com')}")) == "Allow"
    fetches_before = jwks_server.fetches

    # When a caller sends 30 tokens, each naming a key id nobody published
    results = [authorize(f"Bearer {signed_with_unknown_kid(issuer)}") for _ in range(30)]

    # Then each is denied for its key, and the issuer is asked again at most once
    assert {effect(r) for r in results} == {"Deny"}
    assert {r["context"]["reason"] for r in results} == {"token is signed by a key the issuer does not publish"}
    assert jwks_server.fetches - fetches_before <= 1


def test_a_key_the_issuer_starts_publishing_is_picked_up(
    issuer: LocalIssuer, jwks_server: JwksServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a warm authorizer, and no wait between refreshes
    monkeypatch.setenv("JWKS_REFRESH_INTERVAL_SECONDS", "0")
    auth.reset_cache()
    assert effect(authorize(f"Bearer {issuer.mint('ana@example.com')}")) == "Allow"

    # When the issuer rotates: a new key, published beside the old one, signs new tokens
    rotated = LocalIssuer(tmp_path / "rotated", issuer.issuer_url)
    jwks_server.keys = rotated.jwks()["keys"]

    # Then tokens signed with the new key are accepted
    assert effect(authorize(f"Bearer {rotated.mint('ana@example.com')}")) == "Allow"


def test_when_the_issuer_is_down_the_keys_already_fetched_keep_serving(
    issuer: LocalIssuer, jwks_server: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given keys that are stale at once (max age 0), fetched while the issuer was up
    monkeypatch.setenv("JWKS_MAX_AGE_SECONDS", "0")
    auth.reset_cache()
    assert effect(authorize(f"Bearer {issuer.mint('ana@example.com')}")) == "Allow"

    # When the issuer's JWKS endpoint goes down
    jwks_server.down = True
    fetches_before = jwks_server.fetches
    results = [authorize(f"Bearer {issuer.mint('ana@example.com')}") for _ in range(20)]

    # Then valid tokens are still allowed with the keys we have, and the issuer is not asked on every request
    assert {effect(r) for r in results} == {"Allow"}
    assert jwks_server.fetches - fetches_before <= 1


def _ssm_of_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Powertools' SSM reads go to moto's in-process mock (inside ``mock_aws``), never elsewhere."""
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

    # Powertools keeps one SSM client per process: one made for another region or endpoint must go.
    monkeypatch.delitem(DEFAULT_PROVIDERS, "ssm", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")


def test_the_dashboard_clients_tokens_are_accepted_through_the_extra_audiences_parameter(
    issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the template's setup on AWS: the dashboard's app client id in an SSM parameter (a Ref in
    # the authorizer's environment would be a cycle), named by JWT_EXTRA_AUDIENCES_PARAMETER
    import boto3
    from moto import mock_aws

    _ssm_of_moto(monkeypatch)
    name = f"/stack-{uuid.uuid4().hex[:8]}/dashboard-client-id"
    monkeypatch.setenv("JWT_EXTRA_AUDIENCES_PARAMETER", name)
    auth.reset_cache()
    with mock_aws():
        boto3.client("ssm").put_parameter(Name=name, Value="dashboard-client", Type="String")
        # When tokens for the API's own client, the dashboard's and a stranger's arrive
        own = authorize(f"Bearer {issuer.mint('ana@example.com')}")
        dashboard = authorize(f"Bearer {issuer.mint('ana@example.com', aud='dashboard-client')}")
        stranger = authorize(f"Bearer {issuer.mint('ana@example.com', aud='some-other-app')}")
    # Then the first two are allowed, the last denied
    assert effect(own) == "Allow" and effect(dashboard) == "Allow"
    assert effect(stranger) == "Deny" and "another audience" in stranger["context"]["reason"]


def test_an_unreadable_extra_audiences_parameter_is_a_configuration_error(
    issuer: LocalIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import mock_aws

    _ssm_of_moto(monkeypatch)
    monkeypatch.setenv("JWT_EXTRA_AUDIENCES_PARAMETER", f"/missing-{uuid.uuid4().hex[:8]}")
    auth.reset_cache()
    with mock_aws():
        result = authorize(f"Bearer {issuer.mint('ana@example.com', aud='dashboard-client')}")
    assert effect(result) == "Deny"
    assert result["context"]["reason"] == "the API cannot verify tokens right now"
