"""AuthorizerFunction under `sam local` (AWS_SAM_LOCAL=true): a refused token still ends in a 401.

SAM's emulator ignores the template's gateway responses: it answers a Deny with its own 403 and an
authorizer error (even API Gateway's ``Unauthorized`` convention) with a 502. So under SAM the
authorizer lets the anonymous principal through with the reason, and ApiFunction answers the 401.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from devserver.issuer import LocalIssuer
from tests.support.apigw import ApiResponse, rest_event
from tests.support.lambdas import FakeLambdaContext, load_function
from tests.unit.test_authorizer import authorize, effect
from tests.unit.test_authorizer import issuer as issuer  # the fixture: a local issuer with its JWKS served

BAD_HEADERS = [None, "Basic YW5hOnB3", "Bearer not.a.jwt"]


@pytest.fixture
def sam_local(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")  # what SAM CLI sets in every function container
    yield


@pytest.mark.parametrize("header", BAD_HEADERS)
def test_under_sam_a_refused_token_passes_only_the_anonymous_principal_and_the_reason(
    issuer: LocalIssuer,
    sam_local: None,
    header: str | None,
) -> None:
    result = authorize(header)
    assert effect(result) == "Allow"
    assert result["principalId"] == "anonymous"
    assert result["context"] == {"reason": result["context"]["reason"]} and result["context"]["reason"]


def test_under_sam_an_expired_token_is_refused_the_same_way(issuer: LocalIssuer, sam_local: None) -> None:
    result = authorize(f"Bearer {issuer.mint('ana@example.com', ttl_seconds=-120)}")
    assert effect(result) == "Allow"
    assert result["principalId"] == "anonymous"
    assert "expired" in result["context"]["reason"]


def test_under_sam_a_valid_token_is_allowed_with_the_callers_identity(issuer: LocalIssuer, sam_local: None) -> None:
    result = authorize(f"Bearer {issuer.mint('Ana@Example.com')}")
    assert effect(result) == "Allow"
    assert result["principalId"] == "ana@example.com"
    assert result["context"]["email"] == "Ana@Example.com"


@pytest.mark.parametrize("value", ["", "false", "0"])
def test_without_sam_a_refused_token_is_denied(
    issuer: LocalIssuer,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
) -> None:
    monkeypatch.setenv("AWS_SAM_LOCAL", value)
    result = authorize("Bearer not.a.jwt")
    assert effect(result) == "Deny"
    assert "malformed token" in result["context"]["reason"]


def test_the_api_answers_401_to_what_the_authorizer_passes_under_sam(
    issuer: LocalIssuer,
    sam_local: None,
    engine: Engine,
) -> None:
    refused = authorize("Bearer not.a.jwt")
    handler = load_function("api").lambda_handler
    valid = {"title": "x", "starts_at": "2031-01-01T10:00:00Z", "recipients": ["ana@example.com"]}
    invalid = {"title": "", "starts_at": 5, "recipients": "nobody"}
    # Who is calling is asked before the body or the query is validated, as API Gateway does.
    for method, path, body, query in [
        ("GET", "/events", None, None),
        ("GET", "/events", None, {"limit": "-1"}),
        ("POST", "/events", valid, None),
        ("POST", "/events", invalid, None),
        ("PATCH", "/events/x", invalid, None),
        ("GET", "/events/x/notifications", None, None),
    ]:
        event: dict[str, Any] = rest_event(method, path, as_user=None, body=body, query=query)
        # What API Gateway (and SAM) put in the event after an Allow: the context plus the principal.
        event["requestContext"]["authorizer"] = {**refused["context"], "principalId": refused["principalId"]}
        response = ApiResponse(handler(event, FakeLambdaContext()))
        assert response.status == 401, (method, path, response)
        assert response.json()["statusCode"] == 401
