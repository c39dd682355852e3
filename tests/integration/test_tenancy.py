"""Every event is owned: another user gets 404 on every route and never sees it in a listing.
The caller comes only from the authorizer's context, never from the body."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.support.apigw import ApiResponse, rest_event
from tests.support.lambdas import FakeLambdaContext, load_function

ANA, BEN = "ana@example.com", "ben@example.com"


@pytest.fixture
def api(engine: Engine) -> Any:
    handler = load_function("api").lambda_handler

    def call(method: str, path: str, *, as_user: str | None, **kwargs: Any) -> ApiResponse:
        return ApiResponse(handler(rest_event(method, path, as_user=as_user, **kwargs), FakeLambdaContext()))

    return call


def body(**overrides: Any) -> dict[str, Any]:
    starts = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    return {"title": "Ana's dentist", "starts_at": starts, "recipients": [ANA], **overrides}


def test_another_user_gets_404_on_every_route(api: Any) -> None:
    event = api("POST", "/events", as_user=ANA, body=body()).json()
    path = f"/events/{event['id']}"
    assert api("GET", path, as_user=BEN).status == 404
    assert api("PATCH", path, as_user=BEN, body={"title": "hijacked"}).status == 404
    assert api("DELETE", path, as_user=BEN).status == 404
    assert api("GET", f"{path}/notifications", as_user=BEN).status == 404
    # Ana's event is untouched and still hers.
    assert api("GET", path, as_user=ANA).json() == event
    assert api("GET", f"{path}/notifications", as_user=ANA).status == 200


def test_listings_never_contain_another_users_events(api: Any) -> None:
    ana_ids = {api("POST", "/events", as_user=ANA, body=body(title=f"a{i}")).json()["id"] for i in range(3)}
    ben_ids = {api("POST", "/events", as_user=BEN, body=body(title="b", recipients=[BEN])).json()["id"]}
    assert {e["id"] for e in api("GET", "/events", as_user=ANA).json()["items"]} == ana_ids
    assert {e["id"] for e in api("GET", "/events", as_user=BEN).json()["items"]} == ben_ids


def test_recipients_default_to_the_callers_email(api: Any) -> None:
    payload = body()
    del payload["recipients"]
    response = api("POST", "/events", as_user=BEN, body=payload)
    assert response.status == 201, response
    assert response.json()["recipients"] == [BEN]


def test_owner_in_the_body_is_refused(api: Any) -> None:
    assert api("POST", "/events", as_user=BEN, body=body(owner=ANA)).status == 422


def test_no_authorizer_context_is_401_not_anonymous_access(api: Any) -> None:
    for method, path in [("GET", "/events"), ("POST", "/events"), ("GET", "/events/x")]:
        response = api(method, path, as_user=None, body=body() if method == "POST" else None)
        assert response.status == 401, (method, path, response)
        assert "Bearer" in response.json()["message"]


def test_documents_need_no_identity(api: Any) -> None:
    assert api("GET", "/openapi.json", as_user=None).status == 200
    assert api("GET", "/swagger", as_user=None).status == 200
