"""No input, however malformed, produces a 5xx, and one caller's bad request never affects another
caller's next request (CONTRACT.md, "Errors"): through ApiFunction's lambda_handler against a real
PostgreSQL, with the API's own pool (one connection unless a test says otherwise)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, text

from reminders import db, events
from reminders.schemas import EventCreate
from reminders.settings import api_settings
from tests.support.apigw import ApiResponse, rest_event
from tests.support.lambdas import FakeLambdaContext, load_function

ANA, BEN, MALLORY = "ana@example.com", "ben@example.com", "mallory@example.com"
# Date-times a parser accepts whose UTC instant lies outside what Python (and so pg8000) can hold.
BEYOND_9999 = "9999-12-31T23:59:59-12:00"
BEFORE_YEAR_1 = "0001-01-01T00:00:00+14:00"


@pytest.fixture
def api(engine: Engine) -> Any:
    handler = load_function("api").lambda_handler

    def call(method: str, path: str, *, as_user: str = ANA, **kwargs: Any) -> ApiResponse:
        return ApiResponse(handler(rest_event(method, path, as_user=as_user, **kwargs), FakeLambdaContext()))

    return call


def future(hours: float = 2) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def new_event(**overrides: Any) -> dict[str, Any]:
    return {"title": "Team sync", "starts_at": future(), **overrides}


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def deep_json(depth: int) -> str:
    return '{"title": ' + "[" * depth + "]" * depth + ', "starts_at": "2030-01-01T00:00:00Z"}'


def own_events(api: Any) -> dict[str, dict[str, Any]]:
    """Ana's and Ben's events, as each created them."""
    return {user: api("POST", "/events", as_user=user, body=new_event(title=f"{user}'s")).json() for user in (ANA, BEN)}


def assert_everyone_reads_their_own(api: Any, mine: dict[str, dict[str, Any]], rounds: int = 4) -> None:
    for _ in range(rounds):
        for user, event in mine.items():
            response = api("GET", f"/events/{event['id']}", as_user=user)
            assert response.status == 200, (user, response)
            assert response.json() == event, f"{user} got someone else's data"
            listing = api("GET", "/events", as_user=user)
            assert listing.status == 200, (user, listing)
            assert [e["id"] for e in listing.json()["items"]] == [event["id"]]


# Every kind of bad request the issue found, as Mallory sends it: (method, path, request kwargs).
# "{event}" in a path is Mallory's own event.
BAD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/events", {"body": new_event(starts_at=BEYOND_9999)}),
    ("POST", "/events", {"body": new_event(starts_at=BEFORE_YEAR_1)}),
    ("PATCH", "/events/{event}", {"body": {"starts_at": BEYOND_9999}}),
    ("PATCH", "/events/{event}", {"body": {"starts_at": BEFORE_YEAR_1}}),
    ("GET", "/events", {"query": {"starts_before": BEFORE_YEAR_1}}),
    ("GET", "/events", {"query": {"starts_after": BEYOND_9999}}),
    ("GET", "/events", {"query": {"cursor": cursor_of([BEYOND_9999, str(uuid.uuid4())])}}),
    ("GET", "/events", {"query": {"cursor": cursor_of([BEFORE_YEAR_1, str(uuid.uuid4())])}}),
    ("POST", "/events", {"body": new_event(title="nul\x00byte")}),
    ("POST", "/events", {"body": new_event(description="nul\x00byte")}),
    ("PATCH", "/events/{event}", {"body": {"title": "nul\x00byte"}}),
    ("PATCH", "/events/{event}", {"body": {"description": "bell\x07"}}),
    ("POST", "/events", {"raw_body": '{"title": "lone \\ud800 surrogate", "starts_at": "2030-01-01T00:00:00Z"}'}),
    ("POST", "/events", {"body": new_event(timezone="Europe/Berlin\x00")}),
    ("POST", "/events", {"raw_body": deep_json(100_000)}),
    ("POST", "/events", {"raw_body": '{"title": "x", "starts_at": "2030-01-01T00:00:00Z", "reminders": ' + "9" * 5000}),
    ("POST", "/events", {"raw_body": '{"title": "x", "starts_at": NaN}'}),
    ("POST", "/events", {"body": new_event(starts_at=1_900_000_000)}),
    ("GET", "/events", {"query": {"starts_before": "0.5"}}),
    ("GET", "/events", {"query": {"limit": "9" * 5000}}),
    ("GET", "/events", {"query": {"cursor": cursor_of(["2030-01-01T00:00:00Z", 5])}}),
    ("POST", "/events", {"body": new_event(), "headers": {"Content-Type": "text/csv"}}),
    ("PATCH", "/events/{event}", {"body": {"title": "x"}, "headers": {"Content-Type": "application/xml"}}),
]


@pytest.mark.parametrize(("method", "path", "request_kwargs"), BAD_REQUESTS)
def test_a_bad_request_gets_a_4xx_and_the_next_requests_of_others_get_their_own_data(
    api: Any, engine: Engine, method: str, path: str, request_kwargs: dict[str, Any]
) -> None:
    # Given Ana and Ben each have an event, and Mallory has one of hers
    mine = own_events(api)
    mallorys = api("POST", "/events", as_user=MALLORY, body=new_event(title="Mallory's")).json()

    # When Mallory sends a bad request
    response = api(method, path.format(event=mallorys["id"]), as_user=MALLORY, **request_kwargs)

    # Then she gets a JSON 4xx, nothing of hers changed, and everyone's next requests are served their own data
    assert 400 <= response.status < 500, response
    assert response.json()["statusCode"] == response.status
    assert api("GET", f"/events/{mallorys['id']}", as_user=MALLORY).json() == mallorys
    assert [e["id"] for e in api("GET", "/events", as_user=MALLORY).json()["items"]] == [mallorys["id"]]
    assert_everyone_reads_their_own(api, mine)


@pytest.mark.parametrize("pool_size", [1, 3])
def test_a_driver_error_mid_statement_never_leaves_its_connection_in_the_pool(
    api: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch, pool_size: int
) -> None:
    """Past validation (a value that slipped through, a driver bug): pg8000 raises OverflowError
    after sending part of a statement. The connection must be discarded, not reused out of step."""
    monkeypatch.setenv("DB_POOL_SIZE", str(pool_size))
    db.dispose_engine()
    mine = own_events(api)
    beyond = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-12)))
    unvalidated = EventCreate.model_construct(
        title="x", description=None, starts_at=beyond, timezone="UTC", recipients=None, reminders=[]
    )

    for _ in range(pool_size + 1):
        with pytest.raises(OverflowError), db.session_scope(settings=api_settings) as session:
            events.create_event(session, MALLORY, unvalidated, datetime.now(UTC), default_recipient=MALLORY)
        with pytest.raises(OverflowError), db.session_scope(settings=api_settings) as session:
            events.list_events(session, MALLORY, starts_before=beyond)
        assert_everyone_reads_their_own(api, mine, rounds=pool_size + 1)


def test_an_unexpected_exception_in_a_session_discards_its_connection(engine: Engine) -> None:
    with db.session_scope(settings=api_settings) as session:
        first = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with pytest.raises(RuntimeError), db.session_scope(settings=api_settings) as session:
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() == first
        raise RuntimeError("a bug between two statements")
    with db.session_scope(settings=api_settings) as session:
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() != first


def test_a_domain_error_keeps_the_connection(api: Any, engine: Engine) -> None:
    """404s and 422s are answered between statements: their connection is in step and is kept."""
    with db.session_scope(settings=api_settings) as session:
        first = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert api("GET", f"/events/{uuid.uuid4()}").status == 404
    with db.session_scope(settings=api_settings) as session:
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() == first


# --- Content-Type -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "APPLICATION/JSON",
        "Application/Json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "text/plain",
        "TEXT/PLAIN; charset=utf-8",
        None,
    ],
)
def test_json_in_any_case_with_or_without_charset_is_accepted(api: Any, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    event = rest_event("POST", "/events", body=new_event(), headers=headers)
    if content_type is None:
        del event["headers"]["Content-Type"], event["multiValueHeaders"]["Content-Type"]
    response = ApiResponse(load_function("api").lambda_handler(event, FakeLambdaContext()))
    assert response.status == 201, response


@pytest.mark.parametrize(
    "content_type",
    [
        "text/csv",
        "text/plain; charset=latin-1",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json; charset=latin-1",
        "application/jsonx",
        "json",
        ";;;",
    ],
)
def test_other_media_types_get_415_and_create_nothing(api: Any, content_type: str) -> None:
    response = api("POST", "/events", body=new_event(), headers={"Content-Type": content_type})
    assert response.status == 415, response
    assert "application/json" in response.json()["message"]  # the message names what works
    assert api("GET", "/events").json()["items"] == []
    event = api("POST", "/events", body=new_event()).json()
    patch = api("PATCH", f"/events/{event['id']}", body={"title": "new"}, headers={"Content-Type": content_type})
    assert patch.status == 415, patch
    assert api("GET", f"/events/{event['id']}").json()["title"] == "Team sync"


# --- Bodies the JSON parser refuses ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw_body",
    [
        deep_json(100_000),
        "[" * 100_000,
        '{"title": "x", "starts_at": "2030-01-01T00:00:00Z", "reminders": [{"minutes_before": ' + "1" * 4301 + "}]}",
        '{"title": "x", "starts_at": Infinity}',
        '{"title": -NaN}',
    ],
    ids=["nested-object", "nested-unclosed", "4301-digit-integer", "Infinity", "NaN"],
)
def test_bodies_python_cannot_parse_are_400(api: Any, raw_body: str) -> None:
    response = api("POST", "/events", raw_body=raw_body)
    assert response.status == 400, response
    assert response.json() == {"statusCode": 400, "message": "request body is not UTF-8 JSON"}


def test_deep_json_inside_a_field_is_422(api: Any) -> None:
    response = api("POST", "/events", raw_body=deep_json(500))
    assert response.status == 422, response


# --- Text fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\n", "\r", "\t"])
def test_titles_reject_control_characters(api: Any, char: str) -> None:
    response = api("POST", "/events", body=new_event(title=f"Team{char}sync"))
    assert response.status == 422, response
    assert "control characters" in json.dumps(response.json()["detail"])


@pytest.mark.parametrize("char", ["\x00", "\x08", "\x1b", "\x7f", "\x9f"])
def test_descriptions_reject_control_characters_but_keep_line_breaks(api: Any, char: str) -> None:
    assert api("POST", "/events", body=new_event(description=f"Room{char}4")).status == 422
    created = api("POST", "/events", body=new_event(description="Room 4\r\n\tsecond floor"))
    assert created.status == 201, created
    assert created.json()["description"] == "Room 4\r\n\tsecond floor"


# --- Date-times are RFC 3339 strings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "starts_at",
    [
        1_900_000_000,
        1.9e9,
        "1900000000",
        "0.5",
        True,
        "2030-01-01",
        "2030-01-01T09:00",
        "20300101T090000Z",
        "2030-W01-1T09:00:00Z",
        "2030-01-01T09:00:00+0100",
        "2030-01-01T09:00:60Z",
        "2030-02-30T09:00:00Z",
        BEYOND_9999,
        BEFORE_YEAR_1,
        "9999-12-31T00:00:00Z",
        ["2030-01-01T09:00:00Z"],
        {"at": "x"},
    ],
)
def test_starts_at_must_be_an_rfc3339_string_in_range(api: Any, starts_at: Any) -> None:
    response = api("POST", "/events", body=new_event(starts_at=starts_at))
    assert response.status == 422, response
    assert api("GET", "/events").json()["items"] == []


@pytest.mark.parametrize(
    "starts_at", ["2030-01-01t09:00:00z", "2030-01-01 09:00:00+01:00", "2030-01-01T09:00:00.123456789-05:30"]
)
def test_rfc3339_variants_are_accepted(api: Any, starts_at: str) -> None:
    assert api("POST", "/events", body=new_event(starts_at=starts_at)).status == 201


@pytest.mark.parametrize("name", ["starts_before", "starts_after"])
@pytest.mark.parametrize("value", ["0.5", "1900000000", "-1", "2030-01-01", BEYOND_9999, BEFORE_YEAR_1])
def test_list_filters_must_be_rfc3339_strings_in_range(api: Any, name: str, value: str) -> None:
    response = api("GET", "/events", query={name: value})
    assert response.status == 422, response
    assert response.json()["detail"][0]["loc"] == ["query", name]


# --- Cursors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        ["2030-01-01T00:00:00Z", 5],
        [5, str(uuid.uuid4())],
        ["2030-01-01T00:00:00Z"],
        ["2030-01-01T00:00:00Z", str(uuid.uuid4()), "extra"],
        {"starts_at": "2030-01-01T00:00:00Z"},
        None,
        42,
        "text",
        [None, None],
        [["2030"], {"id": 1}],
        ["2030-01-01T00:00:00", str(uuid.uuid4())],
        ["1900000000", str(uuid.uuid4())],
        ["2030-01-01T00:00:00Z", "not-a-uuid"],
    ],
)
def test_cursors_with_the_wrong_shape_are_422(api: Any, payload: Any) -> None:
    response = api("GET", "/events", query={"cursor": cursor_of(payload)})
    assert response.status == 422, response
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("raw", ["[" * 300, "9" * 400, "\xff\xfe", "=", "%%%"])
def test_cursors_that_are_not_json_are_422(api: Any, raw: str) -> None:
    cursor = base64.urlsafe_b64encode(raw.encode("utf-8", "surrogateescape")).decode().rstrip("=")
    response = api("GET", "/events", query={"cursor": cursor[:512]})
    assert response.status == 422, response
