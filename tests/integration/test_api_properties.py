"""Property-based tests of the API handler (hypothesis), against a real PostgreSQL: any JSON value
in any field, any body bytes and Content-Type, any query string, any path id answers 2xx or 4xx
with a JSON error body, never an exception or a 5xx; and after every one of them another user
still reads their own event."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from tests.support.apigw import ApiResponse, rest_event
from tests.support.lambdas import FakeLambdaContext, load_function
from tests.support.strategies import BODIES, DATE_TIME_STRINGS, JSON_VALUES

ANA, BEN = "ana@example.com", "ben@example.com"
PROPERTY = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
CONTENT_TYPES = (
    st.none()
    | st.sampled_from(
        [
            "application/json",
            "APPLICATION/JSON; charset=UTF-8",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=b",
            "application/json; charset=latin-1",
            "",
        ]
    )
    | st.text(max_size=40)
)
RAW_BODIES = (
    st.binary(max_size=200)
    | st.text(max_size=200)
    | JSON_VALUES.map(json.dumps)
    | BODIES.map(json.dumps)
    | st.integers(min_value=1, max_value=20_000).map(lambda depth: "[" * depth + "]" * depth)
)
QUERY_VALUES = st.text(max_size=80) | DATE_TIME_STRINGS | st.integers().map(str) | st.floats().map(str)
QUERIES = st.dictionaries(
    st.sampled_from(["starts_after", "starts_before", "limit", "cursor", "other"]) | st.text(max_size=10),
    QUERY_VALUES | st.lists(QUERY_VALUES, min_size=1, max_size=3),
    max_size=5,
)


class Api:
    def __init__(self) -> None:
        self.handler = load_function("api").lambda_handler

    def __call__(self, method: str, path: str, *, as_user: str = ANA, **kwargs: Any) -> ApiResponse:
        return ApiResponse(self.handler(rest_event(method, path, as_user=as_user, **kwargs), FakeLambdaContext()))


@pytest.fixture
def api(engine: Engine) -> Api:
    return Api()


@pytest.fixture
def bens_event(api: Api) -> dict[str, Any]:
    starts = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = api("POST", "/events", as_user=BEN, body={"title": "Ben's", "starts_at": starts})
    assert created.status == 201, created
    return dict(created.json())


def assert_answered_4xx_or_2xx(response: ApiResponse) -> None:
    assert response.status < 500, response
    if response.status >= 400:
        body = response.json()
        assert body["statusCode"] == response.status and body["message"], response


def assert_ben_reads_his_own(api: Api, event: dict[str, Any]) -> None:
    response = api("GET", f"/events/{event['id']}", as_user=BEN)
    assert response.status == 200 and response.json() == event, response


def send(api: Api, method: str, path: str, raw_body: str | bytes, content_type: str | None) -> ApiResponse:
    event = rest_event(method, path, raw_body=raw_body)
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("Content-Type", None)
    if content_type is not None:
        event["headers"]["Content-Type"] = content_type
        event["multiValueHeaders"]["Content-Type"] = [content_type]
    return ApiResponse(api.handler(event, FakeLambdaContext()))


@PROPERTY
@given(body=BODIES)
def test_any_json_fields_on_post(api: Api, bens_event: dict[str, Any], body: dict[str, Any]) -> None:
    assert_answered_4xx_or_2xx(api("POST", "/events", body=body))
    assert_ben_reads_his_own(api, bens_event)


@PROPERTY
@given(body=BODIES)
def test_any_json_fields_on_patch(api: Api, bens_event: dict[str, Any], body: dict[str, Any]) -> None:
    starts = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    mine = api("POST", "/events", body={"title": "Ana's", "starts_at": starts}).json()
    assert_answered_4xx_or_2xx(api("PATCH", f"/events/{mine['id']}", body=body))
    assert_ben_reads_his_own(api, bens_event)


@PROPERTY
@given(method=st.sampled_from(["POST", "PATCH"]), raw_body=RAW_BODIES, content_type=CONTENT_TYPES)
def test_any_body_bytes_with_any_content_type(
    api: Api, bens_event: dict[str, Any], method: str, raw_body: str | bytes, content_type: str | None
) -> None:
    path = "/events" if method == "POST" else f"/events/{bens_event['id']}"
    assert_answered_4xx_or_2xx(send(api, method, path, raw_body, content_type))
    assert_ben_reads_his_own(api, bens_event)


@PROPERTY
@given(query=QUERIES)
def test_any_query_string_on_the_listing(api: Api, bens_event: dict[str, Any], query: dict[str, Any]) -> None:
    assert_answered_4xx_or_2xx(api("GET", "/events", query=query))
    assert_ben_reads_his_own(api, bens_event)


@PROPERTY
@given(
    event_id=st.text(min_size=1, max_size=60).filter(lambda s: "/" not in s),
    method=st.sampled_from(["GET", "PATCH", "DELETE"]),
)
def test_any_event_id_in_the_path(api: Api, bens_event: dict[str, Any], event_id: str, method: str) -> None:
    body = {"title": "x"} if method == "PATCH" else None
    # Ana owns no event: whatever the id, no route may answer her with success (a path that only
    # looks like /events/{id} must not be served by another route, e.g. "/events/\n" by the list).
    for response in (api(method, f"/events/{event_id}", body=body), api("GET", f"/events/{event_id}/notifications")):
        assert_answered_4xx_or_2xx(response)
        assert response.status >= 400, response
    assert_ben_reads_his_own(api, bens_event)


@PROPERTY
@given(
    suffix=st.text(st.characters(max_codepoint=0x7F, categories=["Cc"]), min_size=1, max_size=3),
    route=st.sampled_from(["/events", "/events/{id}", "/events/{id}/notifications", "/agenda", "/calendar/feed"]),
)
def test_a_route_with_control_characters_after_it_is_not_that_route(
    api: Api, bens_event: dict[str, Any], suffix: str, route: str
) -> None:
    response = api("GET", route.format(id=bens_event["id"]) + suffix, as_user=BEN)
    assert response.status == 404, response
